"""Segment everything: prompt a SAM with a grid of points and keep the good, distinct masks.

The algorithm and every default are those of Meta's ``SamAutomaticMaskGenerator``; the work is
reordered so that the output is the same while far less of it is done:

- prompts are decoded in batches through the engine (:meth:`SamPredictor.decode_low_res`), so
  whatever per-image work the engine shares between prompts is shared here too;
- the predicted-IoU filter runs on the low-res outputs, before any upsampling;
- only the survivors are upsampled, a chunk at a time, and each chunk is reduced at once to
  stability counts, a box and a run-length encoding in the crop frame: no full-resolution float
  mask outlives its chunk, and nothing is ever padded to the full image before the per-crop NMS.

The model may be a torch ``Sam`` or an ONNX Runtime :class:`~samkit.backends.onnxruntime.
OnnxPredictor`: decoding and upsampling go through the array backend of
:mod:`samkit.amg.arrays`, chosen once; filters, NMS and RLEs are NumPy on both (the ONNX path
never imports torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from samkit.amg.arrays import make_arrays
from samkit.amg.grid import (
    boxes_near_crop_edge,
    build_all_layer_point_grids,
    generate_crop_boxes,
    uncrop_rle,
)
from samkit.amg.nms import batched_nms_numpy
from samkit.amg.records import Candidates, postprocess_small_regions, to_records
from samkit.errors import SamkitError
from samkit.masks import mask_to_box, masks_to_rle
from samkit.postprocess import filter_stable, upsample_exact
from samkit.postprocess.exact import (
    Geometry,
    emulation_matches_torch,
    exact_masks,
    exact_stats,
)
from samkit.validation import check_image

if TYPE_CHECKING:
    from samkit.backends.onnxruntime import OnnxPredictor
    from samkit.modeling import Sam

OutputMode = Literal["binary_mask", "uncompressed_rle", "coco_rle"]
OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")

# Upsampled float logits held at once: 64 Mi elements (256 MiB in float32).
_CHUNK_ELEMENTS = 64 * 1024 * 1024


@dataclass
class Speed:
    """Opt-in settings that trade exactness for speed (all off = the reference's output).

    low_res_filter: compute stability scores and the boxes used for filtering and NMS on the
        low-res (256 x 256) logits; only masks that survive every filter and the per-crop NMS are
        upsampled (their final boxes, areas and RLEs come from the full-resolution mask).
    bf16: run the decoder under bfloat16 autocast (CPUs with AVX512-BF16/AMX, CUDA).
    """

    low_res_filter: bool = False
    bf16: bool = False
    decode_batch: int | None = None


class SamAutomaticMaskGenerator:
    """A drop-in for Meta's generator: same parameters, defaults and records.

    Args (all as in Meta's): ``points_per_side`` grid size (``None`` to use ``point_grids``),
    ``points_per_batch`` prompts decoded per decoder call (a memory knob; larger batches were
    measured no faster on CPU), ``pred_iou_thresh`` / ``stability_score_thresh`` filters (0
    disables), ``stability_score_offset``, ``box_nms_thresh`` (within a crop),
    ``crop_n_layers``, ``crop_nms_thresh`` (across crops), ``crop_overlap_ratio``,
    ``crop_n_points_downscale_factor``, ``point_grids`` (list of ``(N, 2)`` grids in [0, 1], one
    per crop layer), ``min_mask_region_area`` (fill holes / drop islands below this many pixels,
    then NMS again), ``output_mode`` ``"binary_mask"`` | ``"uncompressed_rle"`` | ``"coco_rle"``.

    Opt-in, output-changing speed-ups (keyword-only): ``low_res_filter`` and ``bf16``, see
    :class:`Speed`. ``decode_batch`` (default: ``points_per_batch``) overrides how many prompts
    one decoder call takes.
    """

    def __init__(
        self,
        model: Sam | OnnxPredictor | Any,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: list[np.ndarray] | None = None,
        min_mask_region_area: int = 0,
        output_mode: OutputMode = "binary_mask",
        *,
        low_res_filter: bool = False,
        bf16: bool = False,
        decode_batch: int | None = None,
    ) -> None:
        if (points_per_side is None) == (point_grids is None):
            raise SamkitError("give exactly one of points_per_side or point_grids")
        if points_per_side is not None:
            if int(points_per_side) != points_per_side or points_per_side < 1:
                raise SamkitError(
                    f"points_per_side must be a positive int, got {points_per_side!r}"
                )
            if crop_n_points_downscale_factor < 1:
                raise SamkitError(
                    "crop_n_points_downscale_factor must be >= 1, got "
                    f"{crop_n_points_downscale_factor!r}"
                )
            self.point_grids = build_all_layer_point_grids(
                int(points_per_side), crop_n_layers, crop_n_points_downscale_factor
            )
        else:
            self.point_grids = [_check_grid(g, i) for i, g in enumerate(point_grids or [])]
        if int(crop_n_layers) != crop_n_layers or crop_n_layers < 0:
            raise SamkitError(f"crop_n_layers must be an int >= 0, got {crop_n_layers!r}")
        if len(self.point_grids) < crop_n_layers + 1:
            raise SamkitError(
                f"point_grids must hold one grid per crop layer ({crop_n_layers + 1}), "
                f"got {len(self.point_grids)}"
            )
        if output_mode not in OUTPUT_MODES:
            raise SamkitError(f"output_mode must be one of {OUTPUT_MODES}, got {output_mode!r}")
        for name, value in (("points_per_batch", points_per_batch), ("decode_batch", decode_batch)):
            if value is not None and (int(value) != value or value < 1):
                raise SamkitError(f"{name} must be a positive int, got {value!r}")
        self.arrays = make_arrays(model)
        if not self.arrays.is_torch and (low_res_filter or bf16):
            raise SamkitError(
                "low_res_filter and bf16 need the torch backend; the ONNX Runtime generator "
                "runs the exact path only"
            )
        self.predictor = self.arrays.predictor
        self.points_per_batch = int(points_per_batch)
        self.pred_iou_thresh = float(pred_iou_thresh)
        self.stability_score_thresh = float(stability_score_thresh)
        self.stability_score_offset = float(stability_score_offset)
        self.box_nms_thresh = float(box_nms_thresh)
        self.crop_n_layers = int(crop_n_layers)
        self.crop_nms_thresh = float(crop_nms_thresh)
        self.crop_overlap_ratio = float(crop_overlap_ratio)
        self.crop_n_points_downscale_factor = int(crop_n_points_downscale_factor)
        self.min_mask_region_area = min_mask_region_area
        self.output_mode: OutputMode = output_mode
        self.speed = Speed(low_res_filter=low_res_filter, bf16=bf16, decode_batch=decode_batch)

    # ------------------------------------------------------------------------------ public
    def generate(self, image: np.ndarray) -> list[dict[str, Any]]:
        """Masks for everything in an ``(H, W, 3)`` uint8 RGB image.

        Returns one record per mask: ``segmentation`` (``(H, W)`` bool, or an RLE dict per
        ``output_mode``), ``area`` (int pixels), ``bbox`` (XYWH, ints, inclusive-max convention),
        ``predicted_iou``, ``point_coords`` (``[[x, y]]`` original pixels), ``stability_score``,
        ``crop_box`` (XYWH).
        """
        with self.arrays.context():
            return to_records(self.generate_candidates(image), self.output_mode)

    def generate_candidates(self, image: np.ndarray) -> Candidates:
        """Like :meth:`generate` but returns the kept masks as columns (RLEs, boxes XYXY,
        scores, points, crop boxes), before conversion to records."""
        image = check_image(image)
        orig_h, orig_w = image.shape[:2]
        crop_boxes, layer_idxs = generate_crop_boxes(
            (orig_h, orig_w), self.crop_n_layers, self.crop_overlap_ratio
        )
        parts = [
            self._process_crop(image, box, layer)
            for box, layer in zip(crop_boxes, layer_idxs, strict=True)
        ]
        data = Candidates.cat(parts)
        if len(crop_boxes) > 1 and len(data):
            crop = data.crop_boxes
            area = (crop[:, 2] - crop[:, 0]) * (crop[:, 3] - crop[:, 1])
            scores = (1.0 / area).astype(np.float32)  # smaller crops win, as in the reference
            keep = batched_nms_numpy(data.boxes, scores, None, self.crop_nms_thresh)
            data = data.take(keep)
        if self.min_mask_region_area > 0:
            data = postprocess_small_regions(
                data, self.min_mask_region_area, max(self.box_nms_thresh, self.crop_nms_thresh)
            )
        return data

    # ----------------------------------------------------------------------------- crops
    def _process_crop(self, image: np.ndarray, crop_box: list[int], layer: int) -> Candidates:
        x0, y0, x1, y1 = crop_box
        orig_h, orig_w = image.shape[:2]
        crop = image[y0:y1, x0:x1, :]
        crop_size = (crop.shape[0], crop.shape[1])
        self.arrays.set_image(crop)
        input_size, _ = self.arrays.sizes()
        size = self.arrays.image_size
        geometry = Geometry(size // 4, size, tuple(input_size), crop_size)  # type: ignore[arg-type]
        points = self.point_grids[layer] * np.array(crop_size)[None, ::-1]
        batch = self.speed.decode_batch or self.points_per_batch
        parts = [
            self._process_batch(points[i : i + batch], geometry, crop_box, (orig_h, orig_w))
            for i in range(0, len(points), batch)
        ]
        if not self.speed.low_res_filter:
            self.arrays.reset_image()
        data = Candidates.cat(parts)
        if len(data) == 0:
            return data
        keep = batched_nms_numpy(data.boxes, data.iou_preds, None, self.box_nms_thresh)
        data = data.take(keep)
        if self.speed.low_res_filter:
            data = self._upsample_survivors(data, crop_box, (orig_h, orig_w))
            self.arrays.reset_image()
        else:
            data = self._finish_exact(data, geometry)
        data.rles = [uncrop_rle(r, crop_box, orig_h, orig_w) for r in data.rles]
        data.boxes = data.boxes + np.array([x0, y0, x0, y0])
        data.points = data.points + np.array([x0, y0], dtype=np.float64)
        data.crop_boxes = np.tile(np.asarray(crop_box, dtype=np.int64), (len(data), 1))
        return data

    def _process_batch(
        self,
        points: np.ndarray,
        geometry: Geometry,
        crop_box: list[int],
        orig_size: tuple[int, int],
    ) -> Candidates:
        arrays = self.arrays
        crop_size = geometry.original_size
        low, iou = arrays.decode(points, crop_size, self.speed.bf16)
        n_masks = low.shape[0] // len(points)
        pts = np.repeat(points, n_masks, axis=0)
        if self.pred_iou_thresh > 0.0:
            keep = arrays.iou_above(iou, self.pred_iou_thresh)
            low, iou, pts = arrays.take(low, keep), arrays.take(iou, keep), pts[keep]
        if self.speed.low_res_filter:
            data = self._filter_low_res(low, iou, pts, crop_size)
        else:
            data = self._filter_full_res(low, arrays.to_numpy(iou), pts, geometry)
        if len(data):
            near = boxes_near_crop_edge(data.boxes, crop_box, [0, 0, orig_size[1], orig_size[0]])
            if near.any():
                data = data.take(np.flatnonzero(~near))
        return data

    # ------------------------------------------------------------------------- filtering
    def _filter_full_res(
        self, low: Any, iou: np.ndarray, pts: np.ndarray, geometry: Geometry
    ) -> Candidates:
        """Exact path: stability scores and boxes of the reference's full-resolution logits,
        computed on the low-res logits where they are decided and pixel by pixel where not
        (:func:`samkit.postprocess.exact.exact_stats`). The low-res logits of the masks that
        pass are kept; their RLEs are made after the crop's NMS (:meth:`_finish_exact`).
        ``low`` ``(N, s, s)`` is the array backend's, ``iou`` ``(N,)`` float32."""
        if self.arrays.is_torch and not emulation_matches_torch(geometry):
            return self._filter_torch_full_res(low, iou, pts, geometry)
        rows, cols = geometry.used_low_res()
        low_np = np.ascontiguousarray(self.arrays.to_numpy(low)[:, :rows, :cols])
        stats = exact_stats(
            low_np, geometry, self.arrays.mask_threshold, self.stability_score_offset
        )
        keep = np.arange(len(low_np))
        if self.stability_score_thresh > 0.0:
            keep = np.flatnonzero(stats.stability >= np.float32(self.stability_score_thresh))
        return Candidates(
            rles=[],
            boxes=stats.boxes[keep],
            iou_preds=iou[keep],
            stability=stats.stability[keep],
            points=pts[keep],
            low_res=low_np[keep],
        )

    def _filter_torch_full_res(
        self, low: Any, iou: np.ndarray, pts: np.ndarray, geometry: Geometry
    ) -> Candidates:
        """Exact path where the NumPy kernel emulation does not reproduce torch's rounding for
        this geometry: torch's two resizes, a chunk at a time, reduced at once."""
        crop_h, crop_w = geometry.original_size
        chunk = max(1, _CHUNK_ELEMENTS // (crop_h * crop_w))
        parts = []
        for start in range(0, low.shape[0], chunk):
            sl = slice(start, start + chunk)
            logits = upsample_exact(
                low[sl], geometry.input_size, geometry.original_size, geometry.image_size
            )
            idx, stability, masks = filter_stable(
                logits,
                self.arrays.mask_threshold,
                self.stability_score_offset,
                self.stability_score_thresh,
            )
            parts.append(
                Candidates(
                    rles=masks_to_rle(masks),
                    boxes=mask_to_box(masks),
                    iou_preds=iou[sl][idx],
                    stability=stability,
                    points=pts[sl][idx],
                )
            )
        return Candidates.cat(parts)

    def _finish_exact(self, data: Candidates, geometry: Geometry) -> Candidates:
        """RLEs of the masks that survived the crop's NMS, from their kept low-res logits."""
        if isinstance(data.low_res, np.ndarray):
            data.rles = exact_masks(data.low_res, geometry, self.arrays.mask_threshold)
            data.low_res = None
        return data

    def _filter_low_res(
        self, low: Any, iou: Any, pts: np.ndarray, crop_size: tuple[int, int]
    ) -> Candidates:
        from samkit.amg import lowres

        state = self.predictor.get_image_state()
        return lowres.low_res_candidates(
            low,
            iou,
            pts,
            state.input_size,
            crop_size,
            self.arrays.image_size,
            self.arrays.mask_threshold,
            self.stability_score_offset,
            self.stability_score_thresh,
        )

    def _upsample_survivors(
        self, data: Candidates, crop_box: list[int], orig_size: tuple[int, int]
    ) -> Candidates:
        from samkit.amg import lowres

        state = self.predictor.get_image_state()
        data = lowres.upsample_survivors(
            data,
            state.input_size,
            state.original_size,
            self.arrays.image_size,
            self.arrays.mask_threshold,
            self.stability_score_offset,
            self.stability_score_thresh,
            _CHUNK_ELEMENTS,
        )
        near = boxes_near_crop_edge(data.boxes, crop_box, [0, 0, orig_size[1], orig_size[0]])
        return data.take(np.flatnonzero(~near)) if near.any() else data


def _check_grid(grid: np.ndarray, index: int) -> np.ndarray:
    arr = np.asarray(grid, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise SamkitError(
            f"point_grids[{index}] must have shape (N, 2) as (x, y) in [0, 1], got {arr.shape}"
        )
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        raise SamkitError(f"point_grids[{index}] must hold points normalised to [0, 1]")
    return arr
