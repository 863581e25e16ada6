"""SAM: the high-level front. Sources in, :class:`~samkit.results.Results` out.

``SAM("mobile_sam.pt").predict(source, points=..., labels=..., bboxes=..., masks=...)`` encodes
each image once and decodes every prompted object from that one embedding, in batches. With no
prompt it segments everything. Prompt shapes are those of :mod:`samkit.prompts`.

All network work goes through one engine object, ``SAM(...).engine`` (an
:class:`~samkit.engine.Engine`: :class:`~samkit.engine.TorchEngine` or the ONNX Runtime
engine), made once in :meth:`SAM._make_engine`: prompts, segment everything and
auto-annotation all use it, so ``device``, ``dtype``, ``compile`` and ``decoder_batch`` hold on
every path. Nothing in this module imports torch at import time.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from samkit.call_args import decoder_batch_arg
from samkit.engine import Engine, TorchEngine
from samkit.errors import SamkitError, SourceError
from samkit.masks import record_rle
from samkit.prompts import ObjectPrompt, group_objects, normalize_prompts
from samkit.results import Results
from samkit.sources import count_items, is_collection, iter_source

if TYPE_CHECKING:
    from samkit.modeling import Sam
    from samkit.summary import ModelInfo

__all__ = ["SAM", "RunLog"]

logger = logging.getLogger("samkit")


@dataclass
class RunLog:
    """What happened in the last :meth:`SAM.predict` run: images done and items skipped
    (``{"path": ..., "error": ...}``)."""

    images: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)


class SAM:
    """Segment Anything, high level.

    Args:
        model: a checkpoint file or model name (``"sam_b.pt"``, ``"mobile_sam.pt"``,
            ``"vit_h"`` ...; the architecture is recognised from the tensors), or a built
            :class:`~samkit.modeling.Sam`.
        device: torch device (:func:`samkit.device.select_device`): default CUDA, else MPS, else
            CPU; ``"cpu"``, ``"cuda:1"``, ``"0"``, ``"mps"``.
        backend: ``"torch"`` or ``"onnxruntime"``; default ONNX Runtime for an export folder
            (``SAM("mobile_sam_onnx/")``, written by ``export(format="onnx")``; runs without
            torch) and torch otherwise. ``backend="onnxruntime"`` with a checkpoint exports it
            once into the cache.
        half / dtype: reduced precision (``half=True``: fp16 on GPU, bf16 on CPU; ``dtype`` one
            of ``"fp32"``, ``"bf16"``, ``"fp16"``); see :class:`~samkit.predictor.SamPredictor`.
        compile: ``torch.compile`` the encoder and/or decoder (``True``, ``"encoder"``,
            ``"decoder"``).
        decoder_batch: prompts per decoder pass on every path (default: 4 on CPU, 512 on GPU
            for torch; 64 for ONNX Runtime).
        threads: CPU intra-op threads (default: ``SAMKIT_THREADS`` or torch's choice).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | Sam = "sam_b.pt",
        device: str | None = None,
        backend: str | None = None,
        half: bool = False,
        dtype: str | None = None,
        compile: bool | str = False,
        decoder_batch: int | None = None,
        threads: int | None = None,
    ) -> None:
        from samkit.backends import onnx_source
        from samkit.backends.grabcut import is_grabcut

        self.grabcut = is_grabcut(model)
        self.onnx_folder = None if self.grabcut else onnx_source(model, backend)
        self.last_run = RunLog()
        self._precision: dict[str, Any] = {"half": half, "dtype": dtype, "compile": compile}
        self._precision.update(decoder_batch=decoder_batch, threads=threads)
        self._generator: tuple[str, Any] | None = None
        if self.grabcut:  # OpenCV GrabCut: no network, no weights
            self.checkpoint: str | None = "grabcut"
            self.model: Sam = None  # type: ignore[assignment]
            self.engine: Engine = self._make_engine()
            return
        if self.onnx_folder is not None:  # ONNX Runtime: no torch network is built
            self.checkpoint = str(self.onnx_folder)
            self.model = None  # type: ignore[assignment]
            self.engine = self._make_engine()
            return
        from samkit.build import build_sam
        from samkit.device import select_device

        dev = select_device(device)  # a bad device fails before any weights are read
        if isinstance(model, (str, os.PathLike)):
            from samkit.weights import resolve_checkpoint

            self.checkpoint = str(resolve_checkpoint(model))
            net = build_sam(self.checkpoint)
        else:
            self.checkpoint = None
            net = model
        self.model = net.to(dev).eval()
        self.engine = self._make_engine()

    def _make_engine(self) -> Engine:
        """The one place where the backend is chosen."""
        if self.grabcut:
            from samkit.backends.grabcut import GrabCutEngine

            return GrabCutEngine()
        if self.onnx_folder is not None:
            from samkit.backends.onnxruntime import OnnxEngine, OnnxPredictor

            batch = self._precision["decoder_batch"]
            predictor = OnnxPredictor(self.onnx_folder, threads=self._precision["threads"])
            return OnnxEngine(predictor, decoder_batch=batch)
        return TorchEngine(self.model, **self._precision)

    @property
    def results_device(self) -> str | None:
        """Where Results' views put tensors (:func:`samkit.call_args.results_device`)."""
        from samkit.call_args import results_device

        return results_device(self.model)

    # ------------------------------------------------------------------ info / export
    def info(self, detailed: bool = False, verbose: bool = True) -> ModelInfo:
        """Print (with ``verbose``) the model summary and return Ultralytics' tuple
        ``(layers, parameters, gradients, GFLOPs)``, whose attributes are the
        :class:`~samkit.summary.ModelSummary`'s (``.params_total``, ``.table()`` ...).
        ``detailed`` is accepted for Ultralytics code (no per-layer table)."""
        from samkit.summary import ModelInfo, model_summary

        self._require_torch("info()")
        summary = model_summary(self.model, self.checkpoint)
        if verbose:
            print(summary.table())
        return ModelInfo(self.model, summary)

    def train(self, data: str | os.PathLike[str], **kwargs: Any) -> Any:
        """Fine-tune this model on a labelled dataset (``samkit train``'s settings as keywords,
        see :func:`samkit.train.api.train`); afterwards this object holds the best weights.
        Returns the :class:`~samkit.train.TrainResult` (run folder, weights paths, rows)."""
        from samkit.build import build_sam
        from samkit.train.api import train

        self._require_torch("train()")
        start = {"model": self.checkpoint} if self.checkpoint else {"network": self.model}
        result = train(data=os.fspath(data), **start, **kwargs)
        if result is not None and result.best is not None:
            self.checkpoint = str(result.best)
            self.model = build_sam(self.checkpoint).to(self.model.device).eval()
            self.engine = self._make_engine()
            self._generator = None
        return result

    def export(self, format: str = "onnx", **kwargs: Any) -> Any:
        """Export the model; a thin call into ``samkit.export.export``."""
        try:
            from samkit.export import export
        except ImportError as exc:
            raise SamkitError(f"export is not available in this installation ({exc})") from None
        self._require_torch("export()")
        if self.checkpoint is not None:
            kwargs.setdefault("name", Path(self.checkpoint).stem)
        return export(self.model, format=format, **kwargs)

    def _require_torch(self, what: str) -> None:
        if self.model is None:
            runs = (
                "GrabCut, which has none" if self.grabcut else f"the ONNX export {self.onnx_folder}"
            )
            raise SamkitError(
                f"{what} needs the torch network; this SAM runs {runs} (load a checkpoint instead)"
            )

    # ------------------------------------------------------------------ predict
    def __call__(self, source: Any = None, **kwargs: Any) -> list[Results] | Iterator[Results]:
        """Same as :meth:`predict`."""
        return self.predict(source, **kwargs)

    def predict(
        self,
        source: Any = None,
        *,
        points: Any = None,
        labels: Any = None,
        bboxes: Any = None,
        masks: Any = None,
        multimask_output: bool = False,
        keep_all: bool | None = None,
        conf: float | None = None,
        stream: bool = False,
        recursive: bool = False,
        progress: bool | None = None,
        decoder_batch: int | None = None,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> list[Results] | Iterator[Results]:
        """Segment ``source`` with the given prompts, or everything when none is given.

        Args:
            source: image path, folder, glob, URL, video, NumPy array (BGR), PIL image (RGB),
                or a list of these (:mod:`samkit.sources`); the prompts apply to every image.
            points, labels, bboxes, masks: prompts in original-image pixels, shapes as in
                :mod:`samkit.prompts` (as Ultralytics: (K, 2) positive points = K objects,
                (N, K, 2) = N objects of K points; a flat list with a negative point = one
                object; bboxes (N, 4) XYXY; binary masks (N, H, W) or low-res logits
                (N, 1, 256, 256), e.g. an earlier Results).
            multimask_output: 3 candidate masks per object (3N masks, object-major;
                ``Results.object_ids`` tells the object), as Ultralytics.
            keep_all: with ``multimask_output``, False keeps each object's best candidate.
            conf: drop masks scoring below ``conf``; no filter unless given (Ultralytics drops
                scores <= 0.25 by default).
            stream: return a generator yielding one Results at a time (bounded memory).
            recursive: descend into subfolders of a folder source.
            progress: show a progress bar; default: for sources of more than one image.
            decoder_batch: objects per decoder pass for this call (default: the engine's, as
                set by ``SAM(decoder_batch=...)``); ``batch_size`` is its old spelling.
            kwargs: Ultralytics' call arguments (``device``, ``imgsz``, ``verbose``, ``save``,
                ``save_txt``, ``project``, ``name``, ``exist_ok``; others such as
                ``retina_masks`` accepted and ignored: :mod:`samkit.call_args`); without
                prompts, segment-everything settings (Meta's or Ultralytics' names), among
                them ``prompts_from=det``: a detector's boxes instead of the point grid
                (:class:`~samkit.automatic.SamAutomaticMaskGenerator`).

        Returns:
            A list of Results (one per image / frame), or a generator with ``stream``.
        """
        from samkit.call_args import check_imgsz, check_predict_args, with_outputs

        prompted = any(v is not None for v in (points, labels, bboxes, masks))
        call, everything = check_predict_args(
            source, prompted, kwargs, multimask_output, keep_all, conf
        )
        if call.device is not None:
            self.to(call.device)
        check_imgsz(call.imgsz, self.engine.image_size)
        prompts = {"points": points, "labels": labels, "bboxes": bboxes, "masks": masks}
        options = {
            "multimask_output": multimask_output,
            "keep_all": multimask_output if keep_all is None else keep_all,
            "conf": conf,
            "decoder_batch": decoder_batch_arg(decoder_batch, batch_size),
        }
        if not prompted:
            if options["decoder_batch"] is not None:
                everything.setdefault("decoder_batch", options["decoder_batch"])
            self._automatic(everything)  # validate settings before the first image
        runner = self._run(source, prompted, prompts, options, everything, recursive, progress)
        if call.writes or call.verbose:
            runner = with_outputs(runner, call)
        return runner if stream else list(runner)

    def to(self, device: Any) -> SAM:
        """Move the network to ``device`` (as ``predict(device=...)`` does); the engine and the
        segment-everything generator follow. ONNX Runtime runs on the CPU only."""
        from samkit.call_args import move_front

        move_front(self, device)
        return self

    def _run(
        self,
        source: Any,
        prompted: bool,
        prompts: dict[str, Any],
        options: dict[str, Any],
        everything: dict[str, Any],
        recursive: bool,
        progress: bool | None,
    ) -> Iterator[Results]:
        from tqdm.auto import tqdm

        log = self.last_run = RunLog()
        total = count_items(source, recursive)
        show = (total or 0) > 1 if progress is None else progress
        bar = tqdm(total=total, disable=not show, unit="img", desc="samkit")
        multi = is_collection(source)
        try:
            for item in iter_source(source, recursive):
                error = item.error
                if item.image is not None:
                    try:
                        if prompted:
                            result = self.segment_prompts(
                                item.image, path=item.path, frame=item.frame, **prompts, **options
                            )
                        else:
                            result = self.segment_everything(
                                item.image, path=item.path, frame=item.frame,
                                progress=progress is not False, **everything,
                            )  # fmt: skip
                    except (SourceError, MemoryError) as exc:  # this image, not the run
                        if not multi:
                            raise
                        error = str(exc) or type(exc).__name__
                bar.update(1)  # the item is done (or skipped)
                if error is not None:
                    logger.warning("skipped %s: %s", item.path, error)
                    log.skipped.append({"path": item.path, "error": str(error)})
                    continue
                log.images += 1
                yield result
        finally:
            bar.close()

    # ------------------------------------------------------------------ one image
    def segment_prompts(
        self,
        image_rgb: np.ndarray | None,
        *,
        points: Any = None,
        labels: Any = None,
        bboxes: Any = None,
        masks: Any = None,
        multimask_output: bool = False,
        keep_all: bool | None = None,
        conf: float | None = None,
        decoder_batch: int | None = None,
        batch_size: int | None = None,
        path: str = "",
        frame: int | None = None,
        current_rgb: np.ndarray | None = None,
    ) -> Results:
        """Prompted masks of one (H, W, 3) uint8 RGB image; ``image_rgb=None`` reuses the
        engine's current embedding (then ``current_rgb`` must be the image it was made from)."""
        t0 = time.perf_counter()
        if image_rgb is not None:
            self.engine.set_image(image_rgb)
            current_rgb = image_rgb
        elif current_rgb is None or not self.engine.is_image_set:
            raise SamkitError("no image is set: call set_image(...) or pass a source")
        t1 = time.perf_counter()
        h, w = current_rgb.shape[:2]
        objects = normalize_prompts((h, w), points, labels, bboxes, masks, self.engine.low_res)
        keep_all = multimask_output if keep_all is None else keep_all
        batch = decoder_batch_arg(decoder_batch, batch_size)
        low, scores, object_ids = self._decode(objects, multimask_output, keep_all, batch)
        if conf is not None:
            keep = scores >= conf
            low, scores, object_ids = low[keep], scores[keep], object_ids[keep]
        masks_out = self._upscale(low, (h, w))
        t2 = time.perf_counter()
        return Results(
            image=current_rgb,
            mask_array=masks_out,
            scores=scores,
            path=path,
            object_ids=object_ids,
            low_res_logits=low,
            frame=frame,
            speed={
                "encode": (t1 - t0) * 1e3 if image_rgb is not None else 0.0,
                "decode": (t2 - t1) * 1e3,
            },
            device=self.results_device,
        )

    def _decode(
        self, objects: list[ObjectPrompt], multimask: bool, keep_all: bool, batch: int | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """-> low-res logits (M, 1, s, s), scores (M,), object ids (M,) in object order."""
        s = self.engine.low_res
        per_obj = 3 if keep_all else 1
        n = len(objects)
        low = np.zeros((n, per_obj, s, s), dtype=np.float32)
        scores = np.zeros((n, per_obj), dtype=np.float32)
        for idx in group_objects(objects, max(n, 1)):  # the engine splits into decoder passes
            lr, sc = self.engine.decode([objects[i] for i in idx], multimask, batch)
            if multimask and not keep_all:
                best = np.argmax(sc, axis=1)
                rows = np.arange(len(idx))
                lr, sc = lr[rows, best][:, None], sc[rows, best][:, None]
            low[idx], scores[idx] = lr, sc
        ids = np.repeat(np.arange(n, dtype=np.int64), per_obj)
        return low.reshape(n * per_obj, 1, s, s), scores.reshape(-1), ids

    def _upscale(self, low: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
        """Low-res logits (M, 1, s, s) -> masks (M, H, W) bool, ~256 MB of float logits at once."""
        out = np.zeros((len(low), *hw), dtype=bool)
        step = max(1, int(256e6 // (4 * hw[0] * hw[1])))
        for start in range(0, len(low), step):
            out[start : start + step] = self.engine.upscale(low[start : start + step])
        return out

    # ------------------------------------------------------------------ validation
    def val(
        self,
        data: str | os.PathLike[str],
        images: str | os.PathLike[str] | None = None,
        protocols: Any = ("box", "point"),
        **kwargs: Any,
    ) -> Any:
        """Measure this model on a labelled dataset, as Ultralytics' ``model.val(data=...)``;
        see :func:`samkit.evaluation.val` for protocols and options. Returns its ValResults
        (``.metrics["box"]["miou"]`` ...)."""
        from samkit.evaluation import val

        return val(self, data, images, protocols, **kwargs)

    # ------------------------------------------------------------------ everything
    def _automatic(self, settings: dict[str, Any]) -> Any:
        """The mask generator for these segment-everything settings (the last one is cached).

        Settings take Meta's names or Ultralytics' (``points_stride``, ``conf_thres``, ...).
        """
        try:
            from samkit.amg.params import settings_key
            from samkit.automatic import SamAutomaticMaskGenerator, everything_params
        except ImportError:
            raise SamkitError(
                "segment everything is not available yet in this installation: give prompts "
                "(points=, bboxes=, masks=)"
            ) from None
        params = everything_params(**settings)
        params["output_mode"] = "uncompressed_rle"  # Results keep RLEs, never a dense stack
        key = settings_key(params)
        if self._generator is None or self._generator[0] != key:
            try:
                # One engine per SAM: the generator decodes through this front's engine.
                generator = SamAutomaticMaskGenerator(self.engine, **params)
            except TypeError as exc:
                raise SamkitError(f"bad segment-everything setting: {exc}") from None
            self._generator = (key, generator)
        return self._generator[1]

    def segment_everything(
        self,
        image_rgb: np.ndarray,
        *,
        path: str = "",
        frame: int | None = None,
        progress: bool = True,
        **settings: Any,
    ) -> Results:
        """Every object of one (H, W, 3) uint8 RGB image, as found by the automatic mask
        generator (masks sorted by area, largest first, as the generator returns them).
        ``progress``: a bar of the grid points decoded so far (a large image takes minutes).

        The Results hold the masks as RLEs (``Results.rles``); the dense ``Results.masks``
        stack is only decoded if accessed (N * H * W bytes)."""
        generator = self._automatic(settings)
        generator.progress = bool(progress)
        t0 = time.perf_counter()
        records = generator.generate(image_rgb, path=path)
        t1 = time.perf_counter()
        h, w = image_rgb.shape[:2]
        return Results(
            image=image_rgb,
            rles=[record_rle(r["segmentation"], (h, w)) for r in records],
            scores=np.array([r["predicted_iou"] for r in records], dtype=np.float32).reshape(-1),
            stability_scores=np.array(
                [r["stability_score"] for r in records], dtype=np.float32
            ).reshape(-1),
            path=path,
            frame=frame,
            speed={"everything": (t1 - t0) * 1e3},
            stats=generator.stats.as_dict(),
            device=self.results_device,
        )
