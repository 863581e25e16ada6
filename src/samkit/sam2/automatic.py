"""``SAM2AutomaticMaskGenerator``: Meta's SAM 2 segment-everything API and defaults on samkit's
generator (:class:`~samkit.amg.generator.SamAutomaticMaskGenerator`: grids, crops, filters,
NMS, records) and the SAM 2 engine; adds Meta's ``use_m2m`` refinement and
``multimask_output`` switch."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from samkit.amg.boxes import boxes_near_crop_edge
from samkit.amg.exact_path import filter_exact
from samkit.amg.generator import SamAutomaticMaskGenerator
from samkit.amg.records import Candidates
from samkit.engine import engine_geometry
from samkit.errors import ArgumentError
from samkit.modeling.sam2 import Sam2
from samkit.postprocess.exact import Geometry
from samkit.sam2.engine import Sam2Engine

__all__ = ["SAM2AutomaticMaskGenerator"]


class SAM2AutomaticMaskGenerator(SamAutomaticMaskGenerator):
    """Drop-in for ``sam2.automatic_mask_generator.SAM2AutomaticMaskGenerator``: the same
    parameters, defaults (``pred_iou_thresh=0.8``...) and records.

    ``model``: a SAM 2 network (an engine is made for it, with Meta's low-res hole / sprinkle
    clean-up at ``min_mask_region_area``), or a SAM 2 ``SAM`` front / engine (shared as is).
    ``use_m2m``: decode every candidate once more with its own low-res logits as the mask
    prompt (one mask each) before the filters. ``multimask_output``: three masks per grid
    point (True) or one. ``mask_threshold`` must be the model's (0.0). Further keywords
    (``fast``, ``verbose``, ``decoder_batch``...) are samkit's generator's.
    """

    def __init__(
        self,
        model: Any,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.8,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        mask_threshold: float = 0.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: list[np.ndarray] | None = None,
        min_mask_region_area: int = 0,
        output_mode: Any = "binary_mask",
        use_m2m: bool = False,
        multimask_output: bool = True,
        **kwargs: Any,
    ) -> None:
        if isinstance(model, Sam2):
            area = float(min_mask_region_area)
            model = Sam2Engine(model, max_hole_area=area, max_sprinkle_area=area)
        if (points_per_side is None) == (point_grids is None):
            raise ArgumentError("give exactly one of points_per_side and point_grids")
        if use_m2m and (kwargs.get("fast") or kwargs.get("skip_covered")):
            raise ArgumentError("use_m2m runs the exact path only (no fast / skip_covered)")
        super().__init__(
            model,
            points_per_side=points_per_side,
            points_per_batch=points_per_batch,
            pred_iou_thresh=pred_iou_thresh,
            stability_score_thresh=stability_score_thresh,
            stability_score_offset=stability_score_offset,
            box_nms_thresh=box_nms_thresh,
            crop_n_layers=crop_n_layers,
            crop_nms_thresh=crop_nms_thresh,
            crop_overlap_ratio=crop_overlap_ratio,
            crop_n_points_downscale_factor=crop_n_points_downscale_factor,
            point_grids=point_grids,
            min_mask_region_area=min_mask_region_area,
            output_mode=output_mode,
            **kwargs,
        )
        if not isinstance(self.engine, Sam2Engine):
            raise ArgumentError(
                f"SAM2AutomaticMaskGenerator needs a SAM 2 model, got a "
                f"{type(self.engine).__name__} (use SamAutomaticMaskGenerator for SAM)"
            )
        if float(mask_threshold) != self.engine.mask_threshold:
            raise ArgumentError(
                f"mask_threshold must be the model's ({self.engine.mask_threshold}), got "
                f"{mask_threshold}"
            )
        self.mask_threshold = float(mask_threshold)
        self.use_m2m = bool(use_m2m)
        self.multimask_output = bool(multimask_output)

    @classmethod
    def from_pretrained(cls, model_id: str, **kwargs: Any) -> SAM2AutomaticMaskGenerator:
        """A published model by Hugging Face id or samkit name (see
        :meth:`samkit.sam2.SAM2ImagePredictor.from_pretrained`)."""
        from samkit.sam2.build import build_sam2_model

        return cls(build_sam2_model(model_id, device=kwargs.pop("device", "cpu")), **kwargs)

    def _refine(self, coords: np.ndarray, low: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Meta's mask-to-mask step: each candidate's point (n, 1, 2) input frame and its own
        low-res logits (n, s, s) as the mask prompt, one mask each."""
        predictor = self.engine.predictor  # type: ignore[attr-defined]
        pts = torch.as_tensor(coords, dtype=torch.float32, device=predictor.device)
        labels = torch.ones(pts.shape[:2], dtype=torch.int, device=pts.device)
        new_low, new_iou = predictor.decode_low_res(
            pts, labels, None, low[:, None].float(), False, decoder_batch=self.decoder_batch
        )
        return new_low[:, 0], new_iou[:, 0]

    def _process_batch(
        self,
        points: np.ndarray,
        geometry: Geometry,
        crop_box: list[int],
        orig_size: tuple[int, int],
    ) -> Candidates:
        """Meta's ``_process_batch``: decode the grid points, optionally refine (m2m), then the
        IoU and stability filters, boxes and the crop-edge filter."""
        engine = self.engine
        coords = engine_geometry(engine).apply_coords(points, geometry.original_size)[:, None, :]
        labels = np.ones(coords.shape[:2], dtype=np.int64)
        low, iou = engine.decode_points(
            coords, labels, self.multimask_output, decoder_batch=self.decoder_batch
        )
        s = low.shape[-1]
        low, iou = low.reshape(-1, s, s), iou.reshape(-1)  # point-major
        n_masks = low.shape[0] // len(points)
        pts = np.repeat(points, n_masks, axis=0)
        if self.use_m2m:
            low, iou = self._refine(np.repeat(coords, n_masks, axis=0), low)
        if self.pred_iou_thresh > 0.0:
            keep = engine.iou_above(iou, self.pred_iou_thresh)
            low, iou, pts = engine.take(low, keep), engine.take(iou, keep), pts[keep]
        offset, stable = self.stability_score_offset, self.stability_score_thresh
        data = filter_exact(engine, low, engine.to_numpy(iou), pts, geometry, offset, stable)
        if len(data):
            near = boxes_near_crop_edge(data.boxes, crop_box, [0, 0, orig_size[1], orig_size[0]])
            if near.any():
                data = data.take(np.flatnonzero(~near))
        return data
