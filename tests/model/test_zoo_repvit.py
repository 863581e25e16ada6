"""RepViT-SAM and EdgeSAM parity on seeded random weights in their official layout.

Reference (no package ships these models): timm's RepViT (``timm.models.repvit.RepVit``, the
RepViT authors' blocks; ``legacy=True`` is EdgeSAM's RepVGG form, ``legacy=False`` RepViT-SAM's)
with the official tensors renamed to timm's layout, plus, written here from the published
equations, EdgeSAM's FPN (``conv1x1(stride-16 map) + bicubic2x(conv1x1(last map))``) and SAM's
neck, inside Meta's ``segment_anything`` ``Sam`` and ``SamPredictor``. RepViT-SAM keeps stride
16 by a stride-1 last downsample (patched into timm's). Reduced configs run by default; the
published sizes are marked slow.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import samkit
from reference import make_image, randomize, save_checkpoint
from samkit.zoo.configs import EDGE_SAM_M1, REPVIT_SAM_M23, RepViTConfig
from zoo_reference import CASES, IMAGES, compare_masks, report, scale

pytestmark = pytest.mark.parity

_ROWS = [(16, 1, 1), (16, 0, 1), (32, 0, 2), (32, 1, 1), (32, 0, 1), (64, 0, 2), (64, 1, 1)]
_ROWS += [(64, 0, 1), (128, 0, 2), (128, 1, 1), (128, 0, 1)]


def _small(fpn: bool) -> RepViTConfig:
    return RepViTConfig(
        widths=tuple(c for c, _, _ in _ROWS),
        se=tuple(bool(e) for _, e, _ in _ROWS),
        downsample=tuple(s == 2 for _, _, s in _ROWS),
        fpn=fpn,
        dw_norm_after_sum=not fpn,
    )


def _timm_layout(cfg: RepViTConfig) -> tuple[dict[int, str], tuple[int, ...], tuple[int, ...]]:
    """Official block index -> timm prefix, and timm's embed_dim / depth."""
    names: dict[int, str] = {}
    downs = [i for i, d in enumerate(cfg.downsample) if d]
    bounds = [0, *downs, len(cfg.widths)]
    embed, depth = [], []
    for s in range(len(bounds) - 1):
        lo, hi = bounds[s], bounds[s + 1]
        plain = [i for i in range(lo, hi) if not cfg.downsample[i]]
        last = s == len(bounds) - 2
        if s > 0:
            names[lo] = f"stages.{s}.downsample"
        blocks = plain if last else plain[:-1]
        for j, i in enumerate(blocks):
            names[i] = f"stages.{s}.blocks.{j}"
        if not last:
            names[plain[-1]] = f"stages.{s + 1}.downsample.pre_block"
        embed.append(cfg.widths[lo])
        depth.append(len(blocks))
    return names, tuple(embed), tuple(depth)


_PLAIN = (
    ("token_mixer.0.", "token_mixer."),
    ("token_mixer.1.", "se."),
    ("channel_mixer.m.0.", "channel_mixer.conv1."),
    ("channel_mixer.m.2.", "channel_mixer.conv2."),
)
_DOWN = (
    ("token_mixer.0.", "spatial_downsample."),
    ("token_mixer.2.", "channel_downsample."),
    ("channel_mixer.m.0.", "ffn.conv1."),
    ("channel_mixer.m.2.", "ffn.conv2."),
)


def _to_timm(state: dict[str, torch.Tensor], cfg: RepViTConfig) -> dict[str, torch.Tensor]:
    names, _, _ = _timm_layout(cfg)
    out = {}
    for key, value in state.items():
        if not key.startswith("image_encoder.features."):
            continue
        rest = key[len("image_encoder.features.") :]
        index, tail = rest.split(".", 1)
        if index == "0":
            tail = tail.replace("0.", "conv1.", 1) if tail.startswith("0.") else tail
            tail = tail.replace("2.", "conv2.", 1) if tail.startswith("2.") else tail
            out[f"stem.{tail}"] = value
            continue
        i = int(index) - 1
        rules = _DOWN if cfg.downsample[i] else _PLAIN
        for old, new in rules:
            if tail.startswith(old):
                tail = new + tail[len(old) :]
                break
        out[f"{names[i]}.{tail}"] = value
    return out


class TimmEncoder(nn.Module):
    """timm's RepViT body + the FPN / neck equations, from the official state dict."""

    def __init__(self, cfg: RepViTConfig, state: dict[str, torch.Tensor]) -> None:
        from segment_anything.modeling.common import LayerNorm2d
        from timm.models.repvit import RepVit

        super().__init__()
        self.img_size = 1024
        self.fpn = cfg.fpn
        _, embed, depth = _timm_layout(cfg)
        self.body = RepVit(
            embed_dim=embed, depth=depth, legacy=not cfg.dw_norm_after_sum, num_classes=0
        )
        if not cfg.fpn:  # RepViT-SAM: the last downsample keeps stride 16
            self.body.stages[-1].downsample.spatial_downsample.c.stride = (1, 1)
        missing = self.body.load_state_dict(_to_timm(state, cfg), strict=False)
        assert not [k for k in missing.missing_keys if not k.startswith("head")], missing
        assert not missing.unexpected_keys, missing.unexpected_keys
        enc = {
            k[len("image_encoder.") :]: v
            for k, v in state.items()
            if k.startswith("image_encoder.")
        }
        c_last, c_in = cfg.widths[-1], 256 if cfg.fpn else cfg.widths[-1]
        if cfg.fpn:
            self.fuse16 = nn.Conv2d(enc["fuse_stage2.weight"].shape[1], 256, 1, bias=False)
            self.fuse32 = nn.Conv2d(c_last, 256, 1, bias=False)
            self.fuse16.weight.data.copy_(enc["fuse_stage2.weight"])
            self.fuse32.weight.data.copy_(enc["fuse_stage3.op_list.0.weight"])
        self.neck = nn.Sequential(
            nn.Conv2d(c_in, 256, 1, bias=False),
            LayerNorm2d(256),
            nn.Conv2d(256, 256, 3, padding=1, bias=False),
            LayerNorm2d(256),
        )
        self.neck.load_state_dict(
            {k[len("neck.") :]: v for k, v in enc.items() if k.startswith("neck.")}
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body.stem(x)
        for s, stage in enumerate(self.body.stages):
            if self.fpn and s == len(self.body.stages) - 1:
                ds = stage.downsample
                c16 = ds.pre_block(x)
                y = ds.channel_downsample(ds.spatial_downsample(c16))
                x = stage.blocks(y + ds.ffn(y))
                up = F.interpolate(
                    self.fuse32(x), scale_factor=2.0, mode="bicubic", align_corners=False
                )
                x = self.fuse16(c16) + up
            else:
                x = stage(x)
        return self.neck(x)


def _reference(encoder: nn.Module, state: dict[str, torch.Tensor]) -> Any:
    from segment_anything import SamPredictor
    from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    sam = Sam(
        encoder,
        PromptEncoder(
            embed_dim=256,
            image_embedding_size=(64, 64),
            input_image_size=(1024, 1024),
            mask_in_chans=16,
        ),
        MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
            transformer_dim=256,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    ).eval()
    rest = {k: v for k, v in state.items() if not k.startswith("image_encoder.")}
    result = sam.load_state_dict(rest, strict=False)
    assert not result.unexpected_keys
    assert all(k.startswith("image_encoder.") for k in result.missing_keys)
    return SamPredictor(sam)


def _pair(cfg: RepViTConfig, seed: int, path: Path) -> tuple[Any, samkit.SamPredictor]:
    net = samkit.build_sam(config=samkit.registry.SamConfig(encoder=cfg))
    state = randomize(net, seed)
    ckpt = save_checkpoint(state, path)
    ours = samkit.SamPredictor(samkit.build_sam(ckpt))
    assert ours.model.config.encoder == cfg
    return _reference(TimmEncoder(cfg, state).eval(), state), ours


def _check(ref: Any, ours: samkit.SamPredictor, four_masks: bool = False) -> None:
    from segment_anything.utils.amg import calculate_stability_score

    from samkit.zoo.selection import predict_four_masks

    for name, (h, w) in IMAGES.items():
        image = make_image(h, w, seed=len(name))
        ref.set_image(image)
        ours.set_image(image)
        print(f"[{name} {w}x{h}]")
        report("embedding", ours.features.numpy(), ref.features.numpy(), 1e-4)
        for case_name, case in CASES.items():
            kwargs = scale(case, h, w)
            print(f" case {case_name}")
            m_r, s_r, l_r = ref.predict(**kwargs)
            m_o, s_o, l_o = ours.predict(**kwargs)
            report("low-res logits", l_o, l_r, 1e-3)
            report("iou", s_o, s_r, 1e-3)
            compare_masks(m_o, m_r)
        if four_masks:
            kwargs = scale(CASES["point"], h, w)
            m4, s4, l4 = predict_four_masks(ours, **kwargs)
            m1, _, l1 = ref.predict(**kwargs, multimask_output=False)
            m3, _, l3 = ref.predict(**kwargs, multimask_output=True)
            l_ref = np.concatenate([l1, l3])
            stab = calculate_stability_score(torch.from_numpy(l_ref), 0.0, 1.0).numpy()
            print(" four masks, stability scores")
            report("4-mask logits", l4, l_ref, 1e-3)
            report("stability", s4, stab, 1e-3)
            compare_masks(m4, np.concatenate([m1, m3]))


def test_repvit_sam_layout_reduced_matches_timm_reference(tmp_path: Path) -> None:
    ref, ours = _pair(_small(fpn=False), 41, tmp_path / "renamed_repvit.pt")
    _check(ref, ours)


def test_edge_sam_layout_reduced_matches_timm_reference(tmp_path: Path) -> None:
    ref, ours = _pair(_small(fpn=True), 42, tmp_path / "renamed_edge.pth")
    _check(ref, ours, four_masks=True)


def test_edge_sam_warns_its_licence(tmp_path: Path) -> None:
    net = samkit.build_sam(config=samkit.registry.SamConfig(encoder=EDGE_SAM_M1))
    ckpt = save_checkpoint(randomize(net, 43), tmp_path / "my_finetune.pth")
    with pytest.warns(UserWarning, match="non-commercial"):
        model = samkit.build_sam(ckpt)
    assert model.variant == "edge_sam"
    assert re.search("non-commercial", samkit.registry.get_variant("edge_sam").licence)


@pytest.mark.slow
def test_repvit_sam_and_edge_sam_full_size(tmp_path: Path) -> None:
    ref, ours = _pair(REPVIT_SAM_M23, 44, tmp_path / "repvit_sam.pt")
    assert ours.model.variant == "repvit_sam"
    _check(ref, ours)
    with pytest.warns(UserWarning, match="non-commercial"):
        ref, ours = _pair(EDGE_SAM_M1, 45, tmp_path / "edge_sam.pth")
    _check(ref, ours, four_masks=True)
