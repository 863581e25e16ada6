"""Meta's video API (``sam2.sam2_video_predictor.SAM2VideoPredictor``, sam2 1.1.0) on
samkit's tracker, so code written for it runs with only the import changed.

The ``inference_state`` these calls take and return is a
:class:`~samkit.video.session.TrackingSession`; frames are read when needed (not all loaded
by ``init_state``). Returned masks are logits at the video's size, (N, 1, H, W), objects in
``obj_ids`` order, as Meta's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from samkit.errors import ArgumentError
from samkit.modeling.sam2 import Sam2
from samkit.sam2.build import build_sam2
from samkit.video import step
from samkit.video.session import TrackingSession
from samkit.video.step import Points, TrackSettings
from samkit.video.tracker import FrameResult, Sam2Tracker

__all__ = ["SAM2VideoPredictor", "build_sam2_video_predictor", "prompt_points"]

Output = tuple[int, list[int], torch.Tensor]


def _as_tensor(value: Any, dtype: torch.dtype) -> torch.Tensor:
    return (
        value.to(dtype) if torch.is_tensor(value) else torch.tensor(np.asarray(value), dtype=dtype)
    )


class SAM2VideoPredictor:
    """Meta's predictor calls. ``fill_hole_area`` (8 with Meta's post-processing) and
    ``non_overlap_masks`` as in Meta's constructor."""

    def __init__(
        self,
        model: Sam2,
        fill_hole_area: int = 0,
        non_overlap_masks: bool = False,
        binarize_mask_from_points: bool = True,
    ) -> None:
        self.model = model
        settings = TrackSettings(
            num_maskmem=step.video_modules(model).num_maskmem,
            binarize_mask_from_points=binarize_mask_from_points,
        )
        self.tracker = Sam2Tracker(model, fill_hole_area, non_overlap_masks, settings)

    @property
    def image_size(self) -> int:
        return self.model.image_size

    @property
    def device(self) -> torch.device:
        return self.model.device

    def init_state(
        self,
        video_path: str | os.PathLike[str] | Sequence[np.ndarray],
        offload_video_to_cpu: bool = False,
        offload_state_to_cpu: bool = False,
        async_loading_frames: bool = False,
    ) -> TrackingSession:
        """A session on a folder of frames or a video file. Frames are always decoded on
        demand, so ``offload_video_to_cpu`` and ``async_loading_frames`` change nothing."""
        return self.tracker.start(video_path, offload_state_to_cpu=offload_state_to_cpu)

    def add_new_points_or_box(
        self,
        inference_state: TrackingSession,
        frame_idx: int,
        obj_id: int,
        points: Any = None,
        labels: Any = None,
        clear_old_points: bool = True,
        normalize_coords: bool = True,
        box: Any = None,
    ) -> Output:
        """Clicks (N, 2) with labels (N,) and / or a box (4,) XYXY, in video pixels (or in
        [0, 1] with ``normalize_coords=False``), as Meta's."""
        pts = prompt_points(
            points,
            labels,
            box,
            clear_old_points,
            normalize_coords,
            inference_state.video_size,
            self.image_size,
            inference_state.device,
        )
        result = self.tracker.add_points(inference_state, frame_idx, obj_id, pts, clear_old_points)
        return _output(result)

    def add_new_points(self, *args: Any, **kwargs: Any) -> Output:
        """Meta's deprecated name of :meth:`add_new_points_or_box`."""
        return self.add_new_points_or_box(*args, **kwargs)

    def add_new_mask(
        self, inference_state: TrackingSession, frame_idx: int, obj_id: int, mask: Any
    ) -> Output:
        """A binary mask (H, W) for the object on ``frame_idx``."""
        return _output(self.tracker.add_mask(inference_state, frame_idx, obj_id, mask))

    def propagate_in_video(
        self,
        inference_state: TrackingSession,
        start_frame_idx: int | None = None,
        max_frame_num_to_track: int | None = None,
        reverse: bool = False,
    ) -> Iterator[Output]:
        """Yields (frame_idx, obj_ids, video_res_masks) frame by frame."""
        for result in self.tracker.propagate(
            inference_state, start_frame_idx, max_frame_num_to_track, reverse
        ):
            yield _output(result)

    def clear_all_prompts_in_frame(
        self,
        inference_state: TrackingSession,
        frame_idx: int,
        obj_id: int,
        need_output: bool = True,
    ) -> Output | None:
        result = self.tracker.clear_frame(inference_state, frame_idx, obj_id)
        return _output(result) if need_output else None

    def remove_object(
        self,
        inference_state: TrackingSession,
        obj_id: int,
        strict: bool = False,
        need_output: bool = True,
    ) -> tuple[list[int], list[tuple[int, torch.Tensor]]]:
        results = self.tracker.remove_object(inference_state, obj_id, strict)
        updated = [(r.frame, r.video_logits) for r in results] if need_output else []
        return inference_state.obj_ids, updated

    def reset_state(self, inference_state: TrackingSession) -> None:
        self.tracker.reset(inference_state)


def prompt_points(
    points: Any,
    labels: Any,
    box: Any,
    clear_old_points: bool,
    normalize_coords: bool,
    video_size: tuple[int, int],
    image_size: int,
    device: torch.device,
) -> Points:
    """Meta's prompt arguments -> :class:`Points` in the input frame: clicks (N, 2) with labels
    (N,) and / or a box (4,) XYXY (its corners first, labels 2 and 3), in video pixels (or in
    [0, 1] with ``normalize_coords=False``)."""
    if (points is None) != (labels is None):
        raise ArgumentError("points and labels must be provided together")
    if points is None and box is None:
        raise ArgumentError("at least one of points or box must be provided as input")
    coords = torch.zeros(0, 2) if points is None else _as_tensor(points, torch.float32)
    labs = torch.zeros(0, dtype=torch.int32) if labels is None else _as_tensor(labels, torch.int32)
    coords = coords.reshape(1, -1, 2)
    labs = labs.reshape(1, -1)
    if coords.shape[1] != labs.shape[1]:
        raise ArgumentError(
            f"points ({coords.shape[1]}) and labels ({labs.shape[1]}) differ in number"
        )
    if box is not None:
        if not clear_old_points:
            raise ArgumentError(
                "cannot add a box without clearing old points (use clear_old_points=True)"
            )
        corners = _as_tensor(box, torch.float32).reshape(1, 2, 2)
        coords = torch.cat([corners, coords], dim=1)
        labs = torch.cat([torch.tensor([[2, 3]], dtype=torch.int32), labs], dim=1)
    if normalize_coords:
        h, w = video_size
        coords = coords / torch.tensor([w, h])
    coords = (coords * image_size).to(device)
    return Points(coords, labs.to(device))


def _output(result: FrameResult) -> Output:
    return result.frame, result.obj_ids, result.video_logits


def build_sam2_video_predictor(
    config_file: str,
    ckpt_path: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cuda",
    mode: str = "eval",
    hydra_overrides_extra: Sequence[str] = (),
    apply_postprocessing: bool = True,
    vos_optimized: bool = False,
    **kwargs: Any,
) -> SAM2VideoPredictor:
    """Meta's builder: a SAM 2.1 config name and its checkpoint. ``apply_postprocessing``
    (default) is Meta's: dynamic single-mask fallback, clicked masks binarised for memory,
    holes up to 8 low-res pixels filled. ``vos_optimized`` (compilation) is ignored;
    ``non_overlap_masks`` may be passed as in Meta's predictor."""
    unknown = set(kwargs) - {"non_overlap_masks", "fill_hole_area"}
    if unknown:
        raise ArgumentError(f"build_sam2_video_predictor: unsupported arguments {sorted(unknown)}")
    model = build_sam2(
        config_file, ckpt_path, device, mode, hydra_overrides_extra, apply_postprocessing
    )
    fill = int(kwargs.get("fill_hole_area", 8 if apply_postprocessing else 0))
    overlap = bool(kwargs.get("non_overlap_masks", False))
    return SAM2VideoPredictor(model, fill, overlap, binarize_mask_from_points=apply_postprocessing)
