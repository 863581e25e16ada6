"""SAM: the high-level front. Sources in, :class:`~samkit.results.Results` out.

``SAM("mobile_sam.pt").predict(source, points=..., labels=..., bboxes=..., masks=...)`` encodes
each image once and decodes every prompted object from that one embedding, in batches. With no
prompt it segments everything. Prompt shapes are those of :mod:`samkit.prompts`.

All network work goes through one engine object, ``SAM(...).engine`` (an
:class:`~samkit.engine.Engine`: :class:`~samkit.engine.TorchEngine` or the ONNX Runtime
engine), made once by :class:`~samkit.front.SamFront`, which SAM extends: prompts, segment
everything and auto-annotation all use it, so ``device``, ``dtype``, ``compile`` and
``decoder_batch`` hold on every path. This module adds sources (:meth:`SAM.predict`) and the
workflows (``val``, ``train``, ``export``, ``info``), each a thin call into its feature.
Nothing in this module imports torch at import time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from samkit.call_args import decoder_batch_arg
from samkit.errors import SamkitError, SourceError
from samkit.front import SamFront
from samkit.results import Results
from samkit.sources import count_items, is_collection, iter_source

if TYPE_CHECKING:
    from samkit.modeling import Sam
    from samkit.summary import ModelInfo

__all__ = ["SAM", "PredictRun", "RunLog"]

logger = logging.getLogger("samkit")


@dataclass
class RunLog:
    """What happened in the last :meth:`SAM.predict` run: images done and items skipped
    (``{"path": ..., "error": ...}``)."""

    images: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)


@dataclass
class PredictRun:
    """``SAM.predictor`` after a :meth:`SAM.predict` call: what Ultralytics code reads from
    its predictor. ``args``: the call's Ultralytics arguments (``conf``, ``save``,
    ``project`` ...); ``save_dir``: the run folder written into (None until a result was
    saved); ``model``: the SAM. For a cached embedding and repeated prompts use
    ``samkit.Predictor(model=sam)``."""

    args: dict[str, Any]
    model: Any
    save_dir: Path | None = None


class SAM(SamFront):
    """Segment Anything, high level: :meth:`predict` over sources, plus ``val``, ``train``,
    ``export`` and ``info``; one image at a time through :class:`~samkit.front.SamFront`'s
    ``segment_prompts`` / ``segment_everything``.

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
        self.last_run = RunLog()
        self.predictor: PredictRun | None = None  # set by predict, as Ultralytics'
        super().__init__(model, device, backend, half, dtype, compile, decoder_batch, threads)
        self.model_name = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None
        # Ultralytics' per-model defaults: its call arguments set here apply to every predict.
        self.overrides: dict[str, Any] = {"model": self.checkpoint, "task": self.task}

    # ------------------------------------------------------------------ Ultralytics' attributes
    task = "segment"

    @property
    def ckpt_path(self) -> str | None:
        """The checkpoint file (or export folder, or "grabcut"); None for a built network."""
        return self.checkpoint

    @property
    def device(self) -> Any:
        """The network's torch device (the CPU for ONNX Runtime and GrabCut)."""
        if self.model is not None:
            return self.model.device
        from importlib.util import find_spec

        if find_spec("torch") is None:
            return "cpu"
        import torch

        return torch.device("cpu")

    def eval(self) -> SAM:
        """Put the network in inference mode (it already is after loading); returns self."""
        if self.model is not None:
            self.model.eval()
        return self

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
            kwargs: Ultralytics' call arguments (``device``, ``imgsz``, ``verbose`` (False:
                no progress bar), ``save`` (a video source: one video), ``save_txt``,
                ``save_conf``, ``project``, ``name``, ``exist_ok``, ``max_det`` (the best
                scores kept), ``vid_stride``, ``show_labels``, ``show_conf``, ``show_boxes``,
                ``line_width``; others such as ``retina_masks`` accepted and ignored:
                :mod:`samkit.call_args`; defaults from :attr:`overrides`); without
                prompts, segment-everything settings (Meta's or Ultralytics' names), among
                them ``prompts_from=det``: a detector's boxes instead of the point grid
                (:class:`~samkit.automatic.SamAutomaticMaskGenerator`).

        Returns:
            A list of Results (one per image / frame), or a generator with ``stream``.
        """
        from samkit.call_args import CALL_ARGS, check_imgsz, check_predict_args, with_outputs

        prompted = any(v is not None for v in (points, labels, bboxes, masks))
        kwargs = {k: v for k, v in self.overrides.items() if k in CALL_ARGS} | kwargs
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
        if progress is None and call.verbose is False:
            progress = False  # verbose=False: nothing printed, as Ultralytics
        runner = self._run(
            source, prompted, prompts, options, everything, recursive, progress, call.vid_stride
        )
        self.predictor = PredictRun(args={**kwargs, "conf": conf}, model=self)
        runner = with_outputs(runner, call, self.predictor)
        return runner if stream else list(runner)

    def _run(
        self,
        source: Any,
        prompted: bool,
        prompts: dict[str, Any],
        options: dict[str, Any],
        everything: dict[str, Any],
        recursive: bool,
        progress: bool | None,
        vid_stride: int = 1,
    ) -> Iterator[Results]:
        from tqdm.auto import tqdm

        log = self.last_run = RunLog()
        total = count_items(source, recursive, vid_stride)
        show = (total or 0) > 1 if progress is None else progress
        bar = tqdm(total=total, disable=not show, unit="img", desc="samkit")
        multi = is_collection(source)
        try:
            for item in iter_source(source, recursive, vid_stride):
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
        from samkit.evaluation.runner import val

        return val(self, data, images, protocols, **kwargs)
