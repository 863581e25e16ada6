"""One object on one frame: SAM 2's tracking step on samkit's network.

A frame's image features are computed once (:func:`encode_frame`); an object's step
conditions them on its memory bank (:func:`condition_on_memory`), decodes a mask from the
prompts (:func:`decode_object`, or :func:`mask_as_output` for a mask prompt) and, when asked,
encodes the result as a new memory (:func:`encode_memory`). Grids: ``s`` = input side / 16;
low-res logits are (1, 1, 4s, 4s), the input frame is (S, S).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from samkit.errors import ArgumentError
from samkit.modeling.fpn import sine_position_encoding
from samkit.modeling.memory import MemoryAttention, MemoryEncoder
from samkit.modeling.sam2 import Sam2

NO_OBJECT = -1024.0  # low-res logit of "no object here" (Meta's NO_OBJ_SCORE)


@dataclass(frozen=True)
class FrameFeatures:
    """One frame's image features. level (1, C, s, s) without ``no_mem_embed``; pos its sine
    encoding (1, C, s, s); high_res the decoder's projected skips (1, C/8, 4s, 4s),
    (1, C/4, 2s, 2s)."""

    level: torch.Tensor
    pos: torch.Tensor
    high_res: tuple[torch.Tensor, torch.Tensor]


@dataclass
class FrameOutput:
    """An object's result on one frame. masks: low-res logits (1, 1, 4s, 4s); obj_ptr (1, C);
    object_score: logit (1, 1), the object is present where > 0; memory: (1, mem_dim, s, s)
    in bfloat16, None until encoded."""

    masks: torch.Tensor
    obj_ptr: torch.Tensor
    object_score: torch.Tensor
    memory: torch.Tensor | None = None


@dataclass(frozen=True)
class Points:
    """Prompt points in the input frame: coords (1, K, 2) XY, labels (1, K) (1 positive,
    0 negative, 2 / 3 box corners)."""

    coords: torch.Tensor
    labels: torch.Tensor


@dataclass(frozen=True)
class TrackSettings:
    """Meta's SAM 2.1 video settings (``build_sam2_video_predictor`` with post-processing)."""

    num_maskmem: int = 7
    max_obj_ptrs: int = 16
    binarize_mask_from_points: bool = True
    sigmoid_scale: float = 20.0
    sigmoid_bias: float = -10.0
    multimask_min_points: int = 0
    multimask_max_points: int = 1


@dataclass(frozen=True)
class VideoModules:
    """The network's video parts, typed (they are attached to :class:`Sam2` by name)."""

    memory_attention: MemoryAttention
    memory_encoder: MemoryEncoder
    obj_ptr_proj: nn.Module
    obj_ptr_tpos_proj: nn.Module
    mask_downsample: nn.Module
    maskmem_tpos_enc: torch.Tensor
    no_obj_ptr: torch.Tensor
    no_obj_embed_spatial: torch.Tensor

    @property
    def num_maskmem(self) -> int:
        return int(self.maskmem_tpos_enc.shape[0])

    @property
    def mem_dim(self) -> int:
        return int(self.maskmem_tpos_enc.shape[-1])


def video_modules(model: Sam2) -> VideoModules:
    """The video parts of ``model`` (built by :func:`samkit.sam2.build.attach_video_modules`)."""
    parts = {f.name: getattr(model, f.name) for f in fields(VideoModules)}
    if not isinstance(parts["memory_attention"], MemoryAttention):
        raise ArgumentError("this SAM 2 network was built without its video modules")
    return VideoModules(**parts)


def encode_frame(model: Sam2, image: torch.Tensor) -> FrameFeatures:
    """image (1, 3, S, S) resized and normalised -> its features."""
    level0, level1, level2 = model.image_encoder(image)
    s0, s1 = model.sam_mask_decoder.project_high_res(level0, level1)
    size = (level2.shape[-2], level2.shape[-1])
    pos = sine_position_encoding(1, size, level2.shape[1], device=level2.device)
    return FrameFeatures(level2, pos.to(level2.dtype), (s0, s1))


def _tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h * w, C)."""
    return x.flatten(2).transpose(1, 2)


def _memory_frames(
    frame: int,
    cond: Mapping[int, FrameOutput],
    non_cond: Mapping[int, FrameOutput],
    settings: TrackSettings,
    reverse: bool,
) -> list[tuple[int, FrameOutput]]:
    """(temporal slot, output) of the memories the frame attends to: every conditioning frame
    in slot 0, then the previous ``num_maskmem - 1`` frames in the direction of tracking."""
    picked = [(0, out) for out in cond.values()]
    n = settings.num_maskmem
    for slot in range(1, n):
        back = n - slot
        prev = frame + back if reverse else frame - back
        out = non_cond.get(prev)
        if out is not None:
            picked.append((slot, out))
    return picked


def _pointers(
    frame: int,
    cond: Mapping[int, FrameOutput],
    non_cond: Mapping[int, FrameOutput],
    settings: TrackSettings,
    reverse: bool,
    num_frames: int | None,
) -> list[tuple[int, torch.Tensor]]:
    """(signed temporal distance, pointer): conditioning frames not in the future, then up to
    ``max_obj_ptrs - 1`` previous frames."""
    sign = -1 if reverse else 1
    out = [
        ((frame - t) * sign, o.obj_ptr)
        for t, o in cond.items()
        if (t >= frame if reverse else t <= frame)
    ]
    limit = _pointer_limit(settings, num_frames)
    for dt in range(1, limit):
        t = frame + dt if reverse else frame - dt
        if t < 0 or (num_frames is not None and t >= num_frames):
            break
        o = non_cond.get(t)
        if o is not None:
            out.append((dt, o.obj_ptr))
    return out


def _pointer_limit(settings: TrackSettings, num_frames: int | None) -> int:
    return settings.max_obj_ptrs if num_frames is None else min(num_frames, settings.max_obj_ptrs)


def _sine_1d(pos: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """(n,) positions -> (n, dim): sines then cosines of pos / temperature^(2i / dim)."""
    half = dim // 2
    dim_t = torch.arange(half, dtype=torch.float32, device=pos.device)
    dim_t = temperature ** (2 * (dim_t // 2) / half)
    x = pos.unsqueeze(-1) / dim_t
    return torch.cat([x.sin(), x.cos()], dim=-1)


def condition_on_memory(
    model: Sam2,
    feats: FrameFeatures,
    frame: int,
    initial: bool,
    cond: Mapping[int, FrameOutput],
    non_cond: Mapping[int, FrameOutput],
    settings: TrackSettings,
    reverse: bool,
    num_frames: int | None,
) -> torch.Tensor:
    """The frame's features (1, C, s, s) after attending to the object's memory bank; on the
    object's first conditioning frame (``initial``) the features plus ``no_mem_embed``."""
    b, c, h, w = feats.level.shape
    if initial:
        return feats.level + model.no_mem_embed.reshape(1, -1, 1, 1)
    v = video_modules(model)
    mem_pos_const = _memory_positions(model, h, w, feats.level.device)
    memory, memory_pos = [], []
    for slot, out in _memory_frames(frame, cond, non_cond, settings, reverse):
        if out.memory is None:
            continue
        memory.append(_tokens(out.memory.to(feats.level.device).float()))
        tpos = v.maskmem_tpos_enc[settings.num_maskmem - slot - 1].reshape(1, 1, -1)
        memory_pos.append(mem_pos_const + tpos)
    ptrs = _pointers(frame, cond, non_cond, settings, reverse, num_frames)
    num_ptr_tokens = 0
    if ptrs:
        mem_dim = v.mem_dim
        dists = torch.tensor([d for d, _ in ptrs], dtype=torch.float32, device=feats.level.device)
        scale = _pointer_limit(settings, num_frames) - 1
        ptr_pos = v.obj_ptr_tpos_proj(_sine_1d(dists / scale, c))  # (n, mem_dim)
        split = c // mem_dim
        stacked = torch.cat([p.to(feats.level.device) for _, p in ptrs], dim=0)  # (n, C)
        memory.append(stacked.reshape(1, -1, mem_dim))  # each pointer as C / mem_dim tokens
        memory_pos.append(ptr_pos.repeat_interleave(split, dim=0).unsqueeze(0))
        num_ptr_tokens = len(ptrs) * split
    out_tokens = v.memory_attention(
        _tokens(feats.level),
        _tokens(feats.pos),
        torch.cat(memory, dim=1),
        torch.cat(memory_pos, dim=1),
        num_ptr_tokens,
    )
    return out_tokens.transpose(1, 2).reshape(b, c, h, w)


def _memory_positions(model: Sam2, h: int, w: int, device: torch.device) -> torch.Tensor:
    """The memories' sine positions as tokens (1, h * w, mem_dim) (the same for every memory)."""
    mem_dim = video_modules(model).mem_dim
    return _tokens(sine_position_encoding(1, (h, w), mem_dim, device=device))


def _no_points(device: torch.device) -> Points:
    """Meta's "no prompt" input: one padding point at the origin."""
    return Points(
        torch.zeros(1, 1, 2, device=device), -torch.ones(1, 1, dtype=torch.int32, device=device)
    )


def decode_object(
    model: Sam2,
    pix: torch.Tensor,
    high_res: tuple[torch.Tensor, torch.Tensor],
    points: Points | None,
    mask_logits: torch.Tensor | None,
    multimask: bool,
) -> tuple[FrameOutput, torch.Tensor]:
    """SAM 2's heads on the (memory-conditioned) features pix (1, C, s, s) -> the output (the
    best mask by predicted IoU when ``multimask``) and its mask at the input size (1, 1, S, S).
    ``mask_logits`` (1, 1, 4s, 4s) or a full-size mask is the dense prompt."""
    enc = model.sam_prompt_encoder
    pts = points if points is not None else _no_points(pix.device)
    if mask_logits is not None and tuple(mask_logits.shape[-2:]) != enc.mask_input_size:
        mask_logits = F.interpolate(
            mask_logits.float(), enc.mask_input_size, mode="bilinear", antialias=True
        )
    sparse, dense = enc((pts.coords, pts.labels), None, mask_logits)
    decoder = model.sam_mask_decoder
    raw = decoder.predict_all(pix, enc.get_dense_pe(), sparse, dense, list(high_res))
    masks, iou = decoder.select(raw, multimask)
    present = raw.object_scores > 0
    masks = torch.where(present[:, None, None], masks, NO_OBJECT).float()
    token = raw.tokens[:, 0]
    if multimask:
        best = int(iou[0].argmax())
        masks = masks[:, best : best + 1]
        token = raw.tokens[:, 1 + best]
    lam = present.float()
    v = video_modules(model)
    obj_ptr = lam * v.obj_ptr_proj(token) + (1 - lam) * v.no_obj_ptr
    full = F.interpolate(masks, (model.image_size, model.image_size), mode="bilinear")
    return FrameOutput(masks, obj_ptr, raw.object_scores), full


def mask_as_output(
    model: Sam2, feats: FrameFeatures, mask: torch.Tensor
) -> tuple[FrameOutput, torch.Tensor]:
    """A mask prompt (1, 1, S, S) in {0, 1} taken as the output itself (logits +-10); the
    pointer comes from the heads prompted by the downsampled mask."""
    full = mask.float() * 20.0 - 10.0
    side = full.shape[-1] // 4
    low = F.interpolate(full, (side, side), mode="bilinear", antialias=True)
    v = video_modules(model)
    prompt = v.mask_downsample(mask.float())
    inner, _ = decode_object(model, feats.level, feats.high_res, None, prompt, False)
    lam = (mask.flatten(1) > 0).any(dim=1, keepdim=True).float()
    obj_ptr = lam * inner.obj_ptr + (1 - lam) * v.no_obj_ptr
    return FrameOutput(low, obj_ptr, 20.0 * lam - 10.0), full


def encode_memory(
    model: Sam2,
    feats: FrameFeatures,
    full_masks: torch.Tensor,
    object_score: torch.Tensor,
    from_points: bool,
    settings: TrackSettings,
) -> torch.Tensor:
    """The memory of one object on one frame (1, mem_dim, s, s), bfloat16. full_masks
    (1, 1, S, S) logits: binarised when they answer clicks (Meta's post-processing setting),
    else squashed by a sigmoid; then scaled and shifted."""
    if from_points and settings.binarize_mask_from_points:
        squashed = (full_masks > 0).float()
    else:
        squashed = torch.sigmoid(full_masks)
    squashed = squashed * settings.sigmoid_scale + settings.sigmoid_bias
    v = video_modules(model)
    memory, _ = v.memory_encoder(feats.level, squashed)
    absent = (object_score <= 0).float()[..., None, None]
    memory = memory + absent * v.no_obj_embed_spatial[..., None, None]
    return memory.to(torch.bfloat16)


def use_multimask(points: Points | None, settings: TrackSettings) -> bool:
    """Three candidate masks for 0 or 1 clicks (SAM 2.1 tracks with multimask output)."""
    n = 0 if points is None else points.labels.shape[1]
    return settings.multimask_min_points <= n <= settings.multimask_max_points
