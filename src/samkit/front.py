"""SamFront: one engine, one image in, :class:`~samkit.results.Results` out.

The part of :class:`samkit.model.SAM` that owns the network and its engine: the backend is
chosen once, in :meth:`SamFront._make_engine` (:class:`~samkit.engine.TorchEngine`, the ONNX
Runtime engine or GrabCut), and prompts (:meth:`~SamFront.segment_prompts`) and segment
everything (:meth:`~SamFront.segment_everything`) both decode through it, so ``device``,
``dtype``, ``compile`` and ``decoder_batch`` hold on every path. :class:`samkit.model.SAM` adds
sources, ``predict`` and the workflows (``val``, ``train``, ``export``, ``info``); the features
behind those workflows take a SamFront and never import :mod:`samkit.model`. Nothing in this
module imports torch at import time.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from samkit.call_args import decoder_batch_arg
from samkit.engine import Engine
from samkit.errors import SamkitError
from samkit.masks import record_rle
from samkit.prompts import ObjectPrompt, group_objects, normalize_prompts
from samkit.results import Results

if TYPE_CHECKING:
    from samkit.entrance import Loaded
    from samkit.modeling import Sam

__all__ = ["SamFront"]

_Front = TypeVar("_Front", bound="SamFront")


class SamFront:
    """A network (or an ONNX export, or GrabCut) behind one engine, segmenting one image at a
    time. Takes :class:`samkit.model.SAM`'s arguments, documented there."""

    def __init__(
        self,
        model: str | os.PathLike[str] | Sam | Loaded = "sam_b.pt",
        device: str | None = None,
        backend: str | None = None,
        half: bool = False,
        dtype: str | None = None,
        compile: bool | str = False,
        decoder_batch: int | None = None,
        threads: int | None = None,
    ) -> None:
        from samkit.entrance import Loaded, Precision, load

        self.precision = Precision(half, dtype, compile, decoder_batch, threads)
        self._generator: tuple[str, Any] | None = None
        if isinstance(model, Loaded):  # made by the entrance already
            loaded = load(model)
            self.precision = loaded.precision
        elif isinstance(model, (str, os.PathLike)) or _is_network(model):
            if backend == "onnxruntime" and not _runs_as_is(model):
                from samkit.export import onnx_export_for

                model = onnx_export_for(model)  # exported once, then run by ONNX Runtime
            # a network given in memory moves to the device (auto when None), as it always has
            loaded = load(model, device=device or "", backend=backend, precision=self.precision)
        else:
            raise SamkitError(
                "model must be a model name, a checkpoint or ONNX export path, 'grabcut' or a "
                f"Sam network; got {type(model).__name__}"
            )
        self.loaded = loaded
        self.grabcut = loaded.grabcut
        self.onnx_folder = loaded.onnx_folder
        self.checkpoint: str | None = loaded.checkpoint
        self.model: Sam = loaded.model  # type: ignore[assignment]  # None: ONNX / GrabCut
        self.engine: Engine = loaded.engine

    @property
    def _precision(self) -> dict[str, Any]:
        """The precision settings as a dict (read :attr:`precision` instead)."""
        return self.precision.as_dict()

    def _make_engine(self) -> Engine:
        """A new engine over the current network (after it moved or was retrained)."""
        from samkit.entrance import load

        if self.model is None:
            return self.engine
        return load(self.model, precision=self.precision).engine

    @property
    def results_device(self) -> str | None:
        """Where Results' views put tensors (:func:`samkit.call_args.results_device`)."""
        from samkit.call_args import results_device

        return results_device(self.model)

    def _require_torch(self, what: str) -> None:
        if self.model is None:
            runs = (
                "GrabCut, which has none" if self.grabcut else f"the ONNX export {self.onnx_folder}"
            )
            raise SamkitError(
                f"{what} needs the torch network; this SAM runs {runs} (load a checkpoint instead)"
            )

    def to(self: _Front, device: Any) -> _Front:
        """Move the network to ``device`` (as ``predict(device=...)`` does); the engine and the
        segment-everything generator follow. ONNX Runtime runs on the CPU only."""
        from samkit.call_args import move_front

        move_front(self, device)
        return self

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


def _is_network(model: Any) -> bool:
    """Whether ``model`` is a torch ``Sam`` (imported only when it could be one)."""
    if not hasattr(model, "image_encoder"):
        return False
    from samkit.modeling import Sam

    return isinstance(model, Sam)


def _runs_as_is(model: Any) -> bool:
    """Whether ``model`` is an ONNX export or ``"grabcut"`` (nothing to export)."""
    from samkit.backends import is_onnx_export
    from samkit.backends.grabcut import is_grabcut

    return is_onnx_export(model) or is_grabcut(model)
