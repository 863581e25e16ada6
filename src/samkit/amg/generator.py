"""Segment everything: prompt a SAM with a grid of points and keep the good, distinct masks.

The algorithm and every default are those of Meta's ``SamAutomaticMaskGenerator``; the work is
reordered so that the output is the same while far less of it is done:

- prompts are decoded in batches through the engine (:meth:`SamPredictor.decode_low_res`), so
  whatever per-image work the engine shares between prompts is shared here too;
- the predicted-IoU filter runs on the low-res outputs, before any upsampling;
- stability scores and boxes of the reference's full-resolution logits are computed from the
  low-res logits wherever a pixel's side of a threshold is already decided there, and pixel by
  pixel (with the reference's values wherever rounding could matter) only along the thresholds'
  contours (:mod:`samkit.postprocess.exact`); no full-resolution float mask is ever made, and no
  padded row or column of the model's square frame;
- the stability filter is decided from count bounds where they settle it, boxes from the
  contour outside each mask's decided box, and exact stability scores and run-length encodings
  are made only for the masks that survive the crop's NMS
  (:mod:`samkit.postprocess.exact_filter`).

Decoding and upsampling go through an :class:`~samkit.engine.Engine` (torch or ONNX Runtime; a
``SAM`` front's own engine, so its device, dtype and decoder batch hold here too); filters, NMS
and RLEs are NumPy on both (the ONNX path never imports torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

from samkit.amg.boxes import box_prompt_source, crops_from_boxes
from samkit.amg.exact_path import filter_exact, finish_exact
from samkit.amg.fast import (
    Coverage,
    EverythingStats,
    Speed,
    confident_masks,
    covered_by,
    sparse_first,
)
from samkit.amg.grid import (
    boxes_near_crop_edge,
    generate_crop_boxes,
    layer_point_grids,
    uncrop_rle,
)
from samkit.amg.nms import batched_nms_numpy
from samkit.amg.progress import CountingEngine, points_bar
from samkit.amg.records import Candidates, postprocess_small_regions, to_records
from samkit.engine import (
    Engine,
    EverythingEngine,
    as_engine,
    engine_geometry,
    require_everything,
)
from samkit.errors import ArgumentError
from samkit.postprocess.exact import Geometry
from samkit.validation import check_generator_settings, check_image

if TYPE_CHECKING:
    from samkit.annotate.detectors import BoxSource
    from samkit.modeling import Sam

OutputMode = Literal["binary_mask", "uncompressed_rle", "coco_rle"]
OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")

# Upsampled float logits held at once: 64 Mi elements (256 MiB in float32).
_CHUNK_ELEMENTS = 64 * 1024 * 1024


class SamAutomaticMaskGenerator:
    """A drop-in for Meta's generator: same parameters, defaults and records.

    ``model``: an :class:`~samkit.engine.Engine`, a ``SAM`` front (its engine is shared), a
    torch ``Sam``, a ``SamPredictor`` or an ``OnnxPredictor`` (see :func:`samkit.engine.as_engine`).

    Args (all as in Meta's): ``points_per_side`` grid size (``None`` to use ``point_grids``),
    ``points_per_batch`` grid points handled per step (bounds the memory of their upsampled
    masks; the decoder takes them ``decoder_batch`` at a time), ``pred_iou_thresh`` / ``stability_score_thresh`` filters (0
    disables), ``stability_score_offset``, ``box_nms_thresh`` (within a crop),
    ``crop_n_layers``, ``crop_nms_thresh`` (across crops), ``crop_overlap_ratio``,
    ``crop_n_points_downscale_factor``, ``point_grids`` (list of ``(N, 2)`` grids in [0, 1], one
    per crop layer), ``min_mask_region_area`` (fill holes / drop islands below this many pixels,
    then NMS again), ``output_mode`` ``"binary_mask"`` | ``"uncompressed_rle"`` | ``"coco_rle"``.

    Opt-in, output-changing speed-ups (keyword-only): ``fast=True`` (``skip_covered``: hierarchical
    sampling, masks from the exact path), or one by one ``low_res_filter``, ``bf16``, ``skip_covered``, see
    :class:`~samkit.amg.fast.Speed`. ``verbose=True``
    prints what each ``generate`` did (points decoded and skipped, masks kept); it is in
    :attr:`stats` either way. ``decoder_batch`` prompts per decoder pass (default: the engine's;
    ``decode_batch`` is its old spelling, still accepted).

    ``prompts_from=det``: box prompts from a detector instead of the point grid, as MobileSAMv2
    does with its object-aware boxes (:mod:`samkit.amg.boxes`). ``det``: an Ultralytics YOLO
    model or checkpoint (``"yolov8n.pt"``), a folder of YOLO box labels or a COCO JSON (matched
    by the image's file name: ``generate(image, path=...)``), a
    :class:`~samkit.annotate.detectors.BoxSource` (e.g. ``UltralyticsDetector(m, conf=0.4)``),
    or a callable ``f(image_rgb) -> boxes (N, 4) XYXY [, class_ids, scores]``. The detector runs
    once per image; each box (clipped to each crop it overlaps, when ``crop_n_layers > 0``) is
    decoded with ``multimask_output=False``, one mask per box, and the masks pass the same
    filters, NMS and cleanup as grid masks (``pred_iou_thresh=0`` keeps every box's mask);
    ``point_coords`` is the box centre and records keep Meta's keys (class ids and detector
    scores are not kept). ``points_per_batch`` boxes are handled per step; the point-grid
    speed-ups (``fast``, ``skip_covered``, ``low_res_filter``, ``bf16``) do not apply. No
    detection -> no masks.
    """

    def __init__(
        self,
        model: Engine | Sam | Any,
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
        skip_covered: bool | None = None,
        fast: bool = False,
        verbose: bool = False,
        decoder_batch: int | None = None,
        decode_batch: int | None = None,
        progress: bool = False,
        prompts_from: Any = None,
    ) -> None:
        if fast and skip_covered is False:
            raise ArgumentError(
                "fast=True is hierarchical sampling that skips covered points; it cannot be "
                "combined with skip_covered=False (drop one of them)"
            )
        decoder_batch = decoder_batch if decoder_batch is not None else decode_batch
        check_generator_settings(
            points_per_side=points_per_side, points_per_batch=points_per_batch,
            pred_iou_thresh=pred_iou_thresh, stability_score_thresh=stability_score_thresh,
            stability_score_offset=stability_score_offset, box_nms_thresh=box_nms_thresh,
            crop_n_layers=crop_n_layers, crop_nms_thresh=crop_nms_thresh,
            crop_overlap_ratio=crop_overlap_ratio, min_mask_region_area=min_mask_region_area,
            crop_n_points_downscale_factor=crop_n_points_downscale_factor,
            decoder_batch=decoder_batch,
        )  # fmt: skip
        self.point_grids = layer_point_grids(
            points_per_side, point_grids, crop_n_layers, crop_n_points_downscale_factor
        )
        if output_mode not in OUTPUT_MODES:
            raise ArgumentError(f"output_mode must be one of {OUTPUT_MODES}, got {output_mode!r}")
        self.box_source = None if prompts_from is None else box_prompt_source(prompts_from)
        self.engine = self._engine(model, low_res_filter or bf16)
        if fast:  # TinySAM-style hierarchical sampling; the other switches stay opt-in (Speed)
            skip_covered = True
        self.decoder_batch = None if decoder_batch is None else int(decoder_batch)
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
        self.speed = Speed(
            low_res_filter=low_res_filter, bf16=bf16, skip_covered=bool(skip_covered)
        )
        self.progress = bool(progress)  # a bar per image: grid points decoded / total
        self.verbose = bool(verbose)
        self.stats = EverythingStats()
        self._skipped: list[np.ndarray] = []
        self._bar: Any = None

    def _engine(self, model: Any, torch_only: bool) -> EverythingEngine:
        """The engine for ``model``, refused where a setting needs another backend or the
        engine lacks the segment-everything capability."""
        engine = as_engine(model)
        if self.box_source is not None and engine.backend == "grabcut":
            raise ArgumentError(
                "prompts_from needs a SAM model: GrabCut's masks have no logits to filter "
                "(for detector boxes -> GrabCut masks use auto_annotate / samkit annotate)"
            )
        require_everything(engine)
        if engine.backend != "torch" and torch_only:
            raise ArgumentError(
                "low_res_filter and bf16 need the torch backend; the ONNX Runtime generator "
                "runs the exact path only"
            )
        return cast(EverythingEngine, engine)

    @property
    def skipped_points(self) -> np.ndarray:
        """``(k, 2)`` float64 ``(x, y)`` original-image grid points the last ``generate`` left
        out (``skip_covered``): each lies inside a mask kept for its crop."""
        return np.concatenate(self._skipped) if self._skipped else np.zeros((0, 2))

    # ------------------------------------------------------------------------------ public
    def generate(self, image: np.ndarray, *, path: str = "") -> list[dict[str, Any]]:
        """Masks for everything in an ``(H, W, 3)`` uint8 RGB image.

        Returns one record per mask: ``segmentation`` (``(H, W)`` bool, or an RLE dict per
        ``output_mode``), ``area`` (int pixels), ``bbox`` (XYWH, ints, inclusive-max convention),
        ``predicted_iou``, ``point_coords`` (``[[x, y]]`` original pixels), ``stability_score``,
        ``crop_box`` (XYWH).

        ``path``: the image's file, read only by a label-folder or COCO ``prompts_from`` (by
        file name). The engine's current image (it may be shared with a ``SAM`` front) is
        restored after.
        """
        engine = self.engine
        saved = engine.get_state() if engine.is_image_set else None
        try:
            return to_records(self.generate_candidates(image, path=path), self.output_mode)
        finally:
            if saved is None:
                engine.reset_image()
            else:
                engine.set_state(saved)

    def generate_candidates(self, image: np.ndarray, *, path: str = "") -> Candidates:
        """Like :meth:`generate` but returns the kept masks as columns (RLEs, boxes XYXY,
        scores, points, crop boxes), before conversion to records."""
        image = check_image(image)
        if self.box_source is not None:
            return self._generate_from_boxes(self.box_source, image, path)
        fast = self.speed.low_res_filter or self.speed.skip_covered or self.speed.bf16
        self.stats = EverythingStats(mode="fast" if fast else "exact")
        self._skipped = []
        orig_h, orig_w = image.shape[:2]
        crop_boxes, layer_idxs = generate_crop_boxes(
            (orig_h, orig_w), self.crop_n_layers, self.crop_overlap_ratio
        )
        total = sum(len(self.point_grids[layer]) for layer in layer_idxs)
        engine, bar = self.engine, points_bar(total, self.progress)
        self.engine, self._bar = CountingEngine(engine, bar), bar
        try:
            parts = [
                self._process_crop(image, box, layer)
                for box, layer in zip(crop_boxes, layer_idxs, strict=True)
            ]
        finally:
            self.engine = engine
            bar.close()
        return self._merge_crops(parts, len(crop_boxes))

    def _generate_from_boxes(self, source: BoxSource, image: np.ndarray, path: str) -> Candidates:
        """``prompts_from``: the detector's boxes as prompts (:mod:`samkit.amg.boxes`)."""
        self.stats = EverythingStats(mode="boxes")
        self._skipped = []
        parts, n_crops = crops_from_boxes(self, source, image, path)
        return self._merge_crops(parts, n_crops)

    def _merge_crops(self, parts: list[Candidates], n_crops: int) -> Candidates:
        """The crops' masks (original frame) -> NMS across crops, small-region cleanup."""
        data = Candidates.cat(parts)
        if n_crops > 1 and len(data):
            crop = data.crop_boxes
            area = (crop[:, 2] - crop[:, 0]) * (crop[:, 3] - crop[:, 1])
            scores = (1.0 / area).astype(np.float32)  # smaller crops win, as in the reference
            keep = batched_nms_numpy(data.boxes, scores, None, self.crop_nms_thresh)
            data = data.take(keep)
        if self.min_mask_region_area > 0:
            data = postprocess_small_regions(
                data, self.min_mask_region_area, max(self.box_nms_thresh, self.crop_nms_thresh)
            )
        self.stats.kept = len(data)
        if self.verbose:
            print(self.stats.line())
        return data

    # ----------------------------------------------------------------------------- crops
    def _process_crop(self, image: np.ndarray, crop_box: list[int], layer: int) -> Candidates:
        x0, y0, x1, y1 = crop_box
        orig_size = image.shape[:2]
        crop_size = (y1 - y0, x1 - x0)
        self.engine.set_image(image[y0:y1, x0:x1, :])
        input_size, _ = self.engine.sizes()
        frames = engine_geometry(self.engine)
        geometry = Geometry(frames.low_res, frames.prompt_side, tuple(input_size), crop_size)  # type: ignore[arg-type]
        points = self.point_grids[layer] * np.array(crop_size)[None, ::-1]
        self.stats.points += len(points)
        ctx = (geometry, crop_box, orig_size)
        try:
            if self.speed.skip_covered:
                cands, skipped = self._decode_sparse_first(points, ctx)
            else:
                cands, skipped = self._decode_points(points, ctx), np.zeros((0, 2))
            data = self._crop_survivors(cands, ctx)
            missed = skipped[~covered_by(data.rles, skipped)] if len(skipped) else skipped
            if len(missed):  # repair: skipped points no kept mask covers are decoded after all
                self.stats.skipped -= len(missed)
                skipped = skipped[covered_by(data.rles, skipped)]
                cands = Candidates.cat([cands, self._decode_points(missed, ctx)])
                data = self._crop_survivors(cands, ctx)
            self._skipped.append(skipped + np.array([x0, y0], dtype=np.float64))
            self._bar.update(len(skipped))  # skipped points are done too
            self.stats.candidates += len(cands)
        finally:
            self.engine.reset_image()
        data.rles = [uncrop_rle(r, crop_box, orig_size[0], orig_size[1]) for r in data.rles]
        data.boxes = data.boxes + np.array([x0, y0, x0, y0])
        data.points = data.points + np.array([x0, y0], dtype=np.float64)
        data.crop_boxes = np.tile(np.asarray(crop_box, dtype=np.int64), (len(data), 1))
        return data

    def _decode_points(self, points: np.ndarray, ctx: tuple[Any, ...]) -> Candidates:
        """Candidates (crop frame, before NMS) of ``points`` ``(n, 2)``, a batch at a time."""
        batch = self.points_per_batch
        self.stats.decoded += len(points)
        parts = [
            self._process_batch(points[i : i + batch], *ctx) for i in range(0, len(points), batch)
        ]
        return Candidates.cat(parts)

    def _decode_sparse_first(
        self, points: np.ndarray, ctx: tuple[Any, ...]
    ) -> tuple[Candidates, np.ndarray]:
        """Fast mode: the sparse grid, then the points whose neighbours' accepted masks do not
        all cover them (:class:`~samkit.amg.fast.Coverage`). Returns the candidates and the
        skipped points ``(k, 2)``."""
        geometry = ctx[0]
        cover = Coverage(
            geometry.input_size, geometry.original_size, geometry.image_size, geometry.low, points
        )
        parts, skipped = [], []
        batch = self.points_per_batch
        threshold, stable = self.engine.mask_threshold, self.stability_score_thresh
        for stage, idx_all in enumerate(sparse_first(len(points))):
            for start in range(0, len(idx_all), batch):
                idx = idx_all[start : start + batch]
                if stage:
                    hit = cover.covered(idx)
                    skipped.append(points[idx[hit]])
                    idx = idx[~hit]
                if len(idx) == 0:
                    continue
                data = self._decode_points(points[idx], ctx)
                cover.add(*confident_masks(data, threshold, stable))
                parts.append(data)
        skip = np.concatenate(skipped) if skipped else np.zeros((0, 2))
        self.stats.skipped += len(skip)
        return Candidates.cat(parts), skip

    def _crop_survivors(self, data: Candidates, ctx: tuple[Any, ...]) -> Candidates:
        """The crop's NMS, then full-resolution RLEs of the survivors (crop frame)."""
        geometry, crop_box, orig_size = ctx
        if len(data) == 0:
            return data
        data = data.take(batched_nms_numpy(data.boxes, data.iou_preds, None, self.box_nms_thresh))
        if self.speed.low_res_filter:
            from samkit.amg import lowres

            e, offset, stable = (
                self.engine,
                self.stability_score_offset,
                self.stability_score_thresh,
            )
            data = lowres.upsample_kept(e, data, offset, stable, _CHUNK_ELEMENTS)
            near = boxes_near_crop_edge(data.boxes, crop_box, [0, 0, orig_size[1], orig_size[0]])
            return data.take(np.flatnonzero(~near)) if near.any() else data
        return finish_exact(data, geometry, self.engine.mask_threshold, self.stability_score_offset)

    def _process_batch(
        self,
        points: np.ndarray,
        geometry: Geometry,
        crop_box: list[int],
        orig_size: tuple[int, int],
    ) -> Candidates:
        engine = self.engine
        crop_size = geometry.original_size
        coords = engine_geometry(engine).apply_coords(points, crop_size)[:, None, :]
        labels = np.ones(coords.shape[:2], dtype=np.int64)
        low, iou = engine.decode_points(
            coords,
            labels,
            True,
            decoder_batch=self.decoder_batch,
            bf16=self.speed.bf16,
            limits=self._limits(geometry),
        )
        s = low.shape[-1]
        low, iou = low.reshape(-1, s, s), iou.reshape(-1)  # point-major: 3 masks of point 0 first
        n_masks = low.shape[0] // len(points)
        pts = np.repeat(points, n_masks, axis=0)
        if self.pred_iou_thresh > 0.0:
            keep = engine.iou_above(iou, self.pred_iou_thresh)
            low, iou, pts = engine.take(low, keep), engine.take(iou, keep), pts[keep]
        if self.speed.low_res_filter:
            from samkit.amg import lowres  # torch: not on the ONNX Runtime path

            data = lowres.filter_low_res(
                engine, low, iou, pts, crop_size, self.stability_score_offset,
                self.stability_score_thresh,
            )  # fmt: skip
        else:
            offset, stable = self.stability_score_offset, self.stability_score_thresh
            data = filter_exact(engine, low, engine.to_numpy(iou), pts, geometry, offset, stable)
        if len(data):
            near = boxes_near_crop_edge(data.boxes, crop_box, [0, 0, orig_size[1], orig_size[0]])
            if near.any():
                data = data.take(np.flatnonzero(~near))
        return data

    def _limits(self, geometry: Geometry) -> Any:
        """What the filters below read of the low-res logits: the resized image's rows and
        columns (plus the low-res filter's margin), and masks above the predicted-IoU filter
        (torch engines; None for others, which compute every logit)."""
        if self.engine.backend != "torch":
            return None
        from samkit.modeling.decoder_fast import OutputLimits

        rows, cols = geometry.used_low_res()
        floor = self.pred_iou_thresh if self.pred_iou_thresh > 0.0 else None
        return OutputLimits(rows=rows + 2, cols=cols + 2, iou_floor=floor)
