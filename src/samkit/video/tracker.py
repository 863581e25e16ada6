"""The SAM 2 tracker: per-object inference through a video on an explicit
:class:`~samkit.video.session.TrackingSession`.

Each object is tracked on its own (Meta's per-object inference, sam2 1.1.0): prompts on any
frame, objects added on any frame, also after tracking began. A prompted frame becomes a
conditioning frame when the object has not been tracked there yet; prompts on a tracked frame
refine that frame. :meth:`Sam2Tracker.propagate` first commits the prompted outputs to memory,
then tracks frame by frame forward or in reverse.

Memory: masks and memories are kept per object and frame. With ``window`` set, tracked outputs
farther than ``window`` frames from the frame being tracked are dropped, so memory stays flat
in the video's length (the default keeps every frame, as Meta's predictor does, so that any
frame can be refined later); frames are decoded when needed and only ``feature_cache`` frames'
features are kept.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from samkit.errors import ArgumentError
from samkit.modeling.sam2 import Sam2
from samkit.video import step
from samkit.video.frames import FrameSource, open_frames, to_model_input
from samkit.video.session import ObjectState, TrackingSession
from samkit.video.step import FrameFeatures, FrameOutput, Points, TrackSettings

__all__ = ["FrameResult", "Sam2Tracker"]


@dataclass(frozen=True)
class FrameResult:
    """Every object's result on one frame, objects in ``obj_ids`` order. logits: low-res
    (N, 1, 4s, 4s); video_logits: at the video's size (N, 1, H, W) (no-overlap rule applied
    when the tracker has it); present: (N,) bool, the object-score verdict (False also for
    objects with no output on this frame)."""

    frame: int
    obj_ids: list[int]
    logits: torch.Tensor
    video_logits: torch.Tensor
    present: torch.Tensor


class Sam2Tracker:
    """Tracks objects with a SAM 2 / 2.1 network.

    ``fill_hole_area``: background holes of at most this many low-res pixels become
    foreground (logit 0.1) in the stored and returned masks (Meta's post-processing; 8 in its
    video predictor). ``non_overlap_masks``: at each pixel only the highest-scoring object
    keeps a positive logit in the returned masks. ``window``: see the module docstring.
    """

    def __init__(
        self,
        model: Sam2,
        fill_hole_area: int = 0,
        non_overlap_masks: bool = False,
        settings: TrackSettings | None = None,
        window: int | None = None,
        feature_cache: int = 2,
    ) -> None:
        if model.config is not None and getattr(model.config, "version", "2.1") == "2.0":
            raise ArgumentError("the tracker needs a SAM 2.1 network (SAM 2.0 is not supported)")
        self.model = model
        self.settings = settings or TrackSettings(num_maskmem=step.video_modules(model).num_maskmem)
        need = max(self.settings.num_maskmem, self.settings.max_obj_ptrs)
        if window is not None and window < need:
            raise ArgumentError(f"window must be at least {need} frames, got {window}")
        self.fill_hole_area = fill_hole_area
        self.non_overlap_masks = non_overlap_masks
        self.window = window
        self.feature_cache = feature_cache

    # ---- session -------------------------------------------------------------------------
    def start(
        self,
        video: str | os.PathLike[str] | FrameSource | Sequence[np.ndarray],
        offload_state_to_cpu: bool = False,
    ) -> TrackingSession:
        """A session on ``video`` (a folder of frames, a video file, frames in memory or a
        :class:`FrameSource`)."""
        frames = open_frames(video)
        device = self.model.device
        n = len(frames)
        return TrackingSession(
            frames=frames,
            num_frames=n if n > 0 else None,
            video_size=frames.size,
            device=device,
            storage_device=torch.device("cpu") if offload_state_to_cpu else device,
            feature_cache_size=self.feature_cache,
        )

    def features(self, session: TrackingSession, frame: int) -> FrameFeatures:
        """The frame's image features, computed once while in the session's small cache."""
        feats = session.cached_features(frame)
        if feats is None:
            self._check_frame(session, frame)
            m = self.model
            image = to_model_input(
                session.frames.read(frame), m.image_size, m.pixel_mean, m.pixel_std, m.device
            )
            with torch.inference_mode():
                feats = step.encode_frame(m, image)
            session.cache_features(frame, feats)
        return feats

    @staticmethod
    def _check_frame(session: TrackingSession, frame: int) -> None:
        if frame < 0 or (session.num_frames is not None and frame >= session.num_frames):
            raise ArgumentError(f"frame_idx must be in [0, {session.num_frames}), got {frame}")

    # ---- one object on one frame ---------------------------------------------------------
    def _infer(
        self,
        session: TrackingSession,
        obj: ObjectState,
        frame: int,
        initial: bool,
        points: Points | None,
        mask: torch.Tensor | None,
        reverse: bool,
        encode: bool,
        prev_logits: torch.Tensor | None = None,
    ) -> FrameOutput:
        """The object's output on ``frame`` (memory encoded when ``encode``)."""
        m, s = self.model, self.settings
        feats = self.features(session, frame)
        if mask is not None:
            out, full = step.mask_as_output(m, feats, mask)
        else:
            pix = step.condition_on_memory(
                m, feats, frame, initial, obj.cond, obj.non_cond, s, reverse, session.num_frames
            )
            multimask = step.use_multimask(points, s)
            out, full = step.decode_object(m, pix, feats.high_res, points, prev_logits, multimask)
        if encode:
            out.memory = step.encode_memory(
                m, feats, full, out.object_score, points is not None, s
            ).to(session.storage_device)
        if self.fill_hole_area > 0:
            out.masks = fill_holes(out.masks, self.fill_hole_area)
        out.masks = out.masks.to(session.storage_device)
        return out

    def _commit(self, session: TrackingSession, obj: ObjectState) -> None:
        """Encode the memory of the object's prompted outputs and move them to its bank."""
        m = self.model
        for is_cond in (False, True):
            for frame, (kind, out) in list(obj.pending.items()):
                if kind != is_cond:
                    continue
                if out.memory is None:
                    full = F.interpolate(
                        out.masks.to(session.device), (m.image_size,) * 2, mode="bilinear"
                    )
                    out.memory = step.encode_memory(
                        m,
                        self.features(session, frame),
                        full,
                        out.object_score,
                        True,
                        self.settings,
                    ).to(session.storage_device)
                (obj.cond if is_cond else obj.non_cond)[frame] = out
                del obj.pending[frame]
        if not obj.cond:
            raise ArgumentError(f"object {obj.obj_id} has no prompt; add points, a box or a mask")
        for frame in obj.cond:
            obj.non_cond.pop(frame, None)

    # ---- prompts -------------------------------------------------------------------------
    @torch.inference_mode()
    def add_points(
        self,
        session: TrackingSession,
        frame: int,
        obj_id: int,
        points: Points,
        clear_old_points: bool = True,
    ) -> FrameResult:
        """Clicks (and box corners, first) in the model's input frame for one object."""
        self._check_frame(session, frame)
        obj = session.get_object(obj_id)
        old = obj.points.get(frame)
        if not clear_old_points and old is not None:
            points = Points(
                torch.cat([old.coords, points.coords], dim=1),
                torch.cat([old.labels, points.labels], dim=1),
            )
        obj.points[frame] = points
        obj.masks.pop(frame, None)
        initial = frame not in obj.tracked
        reverse = False if initial else obj.tracked[frame]
        prev = obj.output(frame, initial)
        prev_logits = None
        if prev is not None:
            prev_logits = prev.masks.to(session.device).clamp(-32.0, 32.0)
        out = self._infer(session, obj, frame, initial, points, None, reverse, False, prev_logits)
        obj.pending[frame] = (initial, out)
        return self.frame_result(session, frame, initial)

    @torch.inference_mode()
    def add_mask(
        self, session: TrackingSession, frame: int, obj_id: int, mask: torch.Tensor | np.ndarray
    ) -> FrameResult:
        """A binary mask (H, W) (any size; resized to the input side) for one object."""
        self._check_frame(session, frame)
        m = torch.as_tensor(np.asarray(mask) if not torch.is_tensor(mask) else mask)
        if m.ndim != 2:
            raise ArgumentError(f"mask must be 2-D (H, W), got shape {tuple(m.shape)}")
        full = m.bool()[None, None].float().to(session.device)
        side = self.model.image_size
        if full.shape[-2:] != (side, side):
            full = F.interpolate(full, (side, side), mode="bilinear", antialias=True)
            full = (full >= 0.5).float()
        obj = session.get_object(obj_id)
        obj.masks[frame] = full
        obj.points.pop(frame, None)
        initial = frame not in obj.tracked
        reverse = False if initial else obj.tracked[frame]
        out = self._infer(session, obj, frame, initial, None, full, reverse, False)
        obj.pending[frame] = (initial, out)
        return self.frame_result(session, frame, initial)

    # ---- tracking ------------------------------------------------------------------------
    @torch.inference_mode()
    def propagate(
        self,
        session: TrackingSession,
        start_frame: int | None = None,
        max_frames: int | None = None,
        reverse: bool = False,
    ) -> Iterator[FrameResult]:
        """Track every object from ``start_frame`` (default: the earliest prompted frame) for
        ``max_frames`` frames after it (default: to the end, or to frame 0 in reverse)."""
        if not session.objects:
            raise ArgumentError("no object has a prompt yet; add points, a box or a mask first")
        for obj in session.objects.values():
            self._commit(session, obj)
        if start_frame is None:
            start_frame = min(t for o in session.objects.values() for t in o.cond)
        total = session.num_frames
        if max_frames is None:
            max_frames = total if total is not None else 1 << 62
        if reverse:
            end = max(start_frame - max_frames, 0)
            order: Sequence[int] | Iterator[int] = (
                range(start_frame, end - 1, -1) if start_frame > 0 else []
            )
        else:
            last = start_frame + max_frames
            end = min(last, total - 1) if total is not None else last
            order = range(start_frame, end + 1)
        for frame in order:
            outs = []
            for obj in session.objects.values():
                out = obj.cond.get(frame)
                if out is None:
                    out = self._infer(session, obj, frame, False, None, None, reverse, True)
                    obj.non_cond[frame] = out
                obj.tracked[frame] = reverse
                outs.append(out)
                if self.window is not None:
                    self._forget(obj, frame)
            yield self._result(session, frame, outs)

    def _forget(self, obj: ObjectState, frame: int) -> None:
        """Drop tracked outputs ``window`` or more frames away from ``frame``."""
        assert self.window is not None
        for t in [t for t in obj.non_cond if abs(t - frame) >= self.window]:
            del obj.non_cond[t]

    # ---- corrections and removal ---------------------------------------------------------
    @torch.inference_mode()
    def clear_frame(self, session: TrackingSession, frame: int, obj_id: int) -> FrameResult:
        """Remove the object's prompts on ``frame``; a conditioning output there becomes an
        ordinary tracked one."""
        obj = session.get_object(obj_id)
        obj.points.pop(frame, None)
        obj.masks.pop(frame, None)
        obj.pending.pop(frame, None)
        out = obj.cond.pop(frame, None)
        if out is not None:
            obj.non_cond[frame] = out
            obj.tracked.pop(frame, None)
        is_cond = any(o.pending.get(frame, (False,))[0] for o in session.objects.values())
        return self.frame_result(session, frame, is_cond)

    @torch.inference_mode()
    def remove_object(
        self, session: TrackingSession, obj_id: int, strict: bool = False
    ) -> list[FrameResult]:
        """Forget an object; results of the frames where it had prompts, without it."""
        obj = session.objects.get(obj_id)
        if obj is None:
            if strict:
                raise ArgumentError(f"no object {obj_id}; objects: {session.obj_ids}")
            return []
        if len(session.objects) == 1:
            self.reset(session)
            return []
        frames = sorted(set(obj.points) | set(obj.masks))
        del session.objects[obj_id]
        results = []
        for frame in frames:
            is_cond = any(o.pending.get(frame, (False,))[0] for o in session.objects.values())
            results.append(self.frame_result(session, frame, is_cond))
        return results

    @staticmethod
    def reset(session: TrackingSession) -> None:
        """Remove every object and prompt (the frames and their cached features stay)."""
        session.objects.clear()

    # ---- outputs -------------------------------------------------------------------------
    def frame_result(self, session: TrackingSession, frame: int, is_cond: bool) -> FrameResult:
        """Every object's latest output on ``frame`` (objects without one: empty)."""
        outs = [o.output(frame, is_cond) for o in session.objects.values()]
        return self._result(session, frame, outs)

    def _result(
        self, session: TrackingSession, frame: int, outs: Sequence[FrameOutput | None]
    ) -> FrameResult:
        side = self.model.image_size // 4
        n = len(outs)
        logits = torch.full((n, 1, side, side), step.NO_OBJECT, device=session.device)
        present = torch.zeros(n, dtype=torch.bool)
        for i, out in enumerate(outs):
            if out is not None:
                logits[i : i + 1] = out.masks.to(session.device)
                present[i] = bool(out.object_score.reshape(-1)[0] > 0)
        video = F.interpolate(logits, session.video_size, mode="bilinear")
        if self.non_overlap_masks:
            video = non_overlapping(video)
        return FrameResult(frame, session.obj_ids, logits, video, present)


def non_overlapping(logits: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W): where an object is not the highest-scoring one, its logit is at most -10."""
    if logits.shape[0] == 1:
        return logits
    best = logits.argmax(dim=0, keepdim=True)
    keep = best == torch.arange(logits.shape[0], device=logits.device)[:, None, None, None]
    return torch.where(keep, logits, logits.clamp(max=-10.0))


def fill_holes(logits: torch.Tensor, max_area: int) -> torch.Tensor:
    """(B, 1, h, w): 8-connected background components (logit <= 0) of at most ``max_area``
    pixels become foreground with logit 0.1."""
    import cv2

    out = logits.clone()
    for b in range(logits.shape[0]):
        background = (logits[b, 0] <= 0).cpu().numpy().astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(background, connectivity=8)
        small = np.zeros(count, dtype=bool)
        small[1:] = stats[1:, cv2.CC_STAT_AREA] <= max_area
        hole = torch.from_numpy(small[labels]).to(logits.device)
        out[b, 0] = torch.where(hole, torch.full_like(out[b, 0], 0.1), out[b, 0])
    return out
