"""``Predictor``: the encode-once / click-many front with an overrides dict.

::

    predictor = Predictor(overrides=dict(conf=0.25, task="segment", mode="predict",
                                         imgsz=1024, model="mobile_sam.pt"))
    predictor.set_image("image.jpg")           # or a BGR array from cv2.imread
    results = predictor(bboxes=[439, 437, 524, 709])
    results = predictor(points=[900, 370], labels=[1])   # same embedding, no new encoder pass
    predictor.reset_image()
    results = predictor(source="image.jpg", crop_n_layers=1, points_stride=64)  # everything

Calls return a list of :class:`~samkit.results.Results` (one per image). Unlike the front it
mirrors, a ``conf`` given here is applied as asked and nothing else is filtered.
"""

from __future__ import annotations

import difflib
from typing import Any

import numpy as np

from samkit.errors import SamkitError
from samkit.model import SAM
from samkit.results import Results
from samkit.sources import iter_source

__all__ = ["OVERRIDE_KEYS", "Predictor"]

# key -> (default, meaning)
OVERRIDE_KEYS: dict[str, tuple[Any, str]] = {
    "model": ("sam_b.pt", "checkpoint file or model name"),
    "device": (None, "torch device (default: CUDA when available, else CPU)"),
    "conf": (None, "drop masks scoring below this; None = keep every mask"),
    "multimask_output": (False, "decode 3 candidates per object (3 masks each)"),
    "keep_all": (None, "with multimask_output, False keeps each object's best candidate"),
    "batch_size": (None, "objects per decoder pass (default: the engine's)"),
    "imgsz": (None, "model input size; must equal the model's (1024 for published models)"),
    "task": ("segment", "only 'segment'"),
    "mode": ("predict", "only 'predict'"),
    "verbose": (False, "print a line per result"),
}


class Predictor:
    """Interactive segmentation with a cached image embedding.

    Args:
        overrides: settings by name (see :data:`OVERRIDE_KEYS`); unknown keys are an error
            with a close-match suggestion. The model loads on first use.
    """

    def __init__(self, overrides: dict[str, Any] | None = None, model: SAM | None = None) -> None:
        given = dict(overrides or {})
        unknown = [k for k in given if k not in OVERRIDE_KEYS]
        if unknown:
            key = unknown[0]
            close = difflib.get_close_matches(key, OVERRIDE_KEYS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise SamkitError(
                f"unknown override {key!r}.{hint} Known: {', '.join(sorted(OVERRIDE_KEYS))}"
            )
        self.args = {k: v for k, (v, _) in OVERRIDE_KEYS.items()} | given
        if self.args["task"] != "segment":
            raise SamkitError(f"task must be 'segment', got {self.args['task']!r}")
        if self.args["mode"] != "predict":
            raise SamkitError(f"mode must be 'predict', got {self.args['mode']!r}")
        self._sam = model
        self._image_rgb: np.ndarray | None = None
        self._path = ""
        self._state: Any = None

    @property
    def sam(self) -> SAM:
        """The :class:`~samkit.model.SAM` front (loaded on first access)."""
        if self._sam is None:
            self._sam = SAM(self.args["model"], device=self.args["device"])
        imgsz = self.args["imgsz"]
        if imgsz is not None:
            sizes = {int(v) for v in np.atleast_1d(np.asarray(imgsz))}
            if sizes != {self._sam.engine.image_size}:
                raise SamkitError(
                    f"imgsz must be the model's fixed input size {self._sam.engine.image_size}, "
                    f"got {imgsz!r} (SAM's encoder cannot run at another size)"
                )
        return self._sam

    # ------------------------------------------------------------------ image
    def set_image(self, image: Any) -> None:
        """Encode ``image`` (path, URL, BGR array as from ``cv2.imread``, or PIL RGB) once;
        later prompt calls decode from this embedding."""
        items = list(iter_source(image))
        if len(items) != 1 or items[0].image is None:
            raise SamkitError(f"set_image needs exactly one image, got {len(items)} from {image!r}")
        item = items[0]
        assert item.image is not None  # narrowed above
        engine = self.sam.engine
        engine.set_image(item.image)
        self._state = engine.get_state()
        self._image_rgb = item.image
        self._path = item.path

    def reset_image(self) -> None:
        """Forget the image and its embedding."""
        self._image_rgb = None
        self._state = None
        self._path = ""
        if self._sam is not None:
            self._sam.engine.reset_image()

    # ------------------------------------------------------------------ predict
    def _options(self, multimask_output: bool | None) -> dict[str, Any]:
        mm = self.args["multimask_output"] if multimask_output is None else multimask_output
        return {
            "multimask_output": bool(mm),
            "keep_all": bool(mm and self.args["keep_all"] in (None, True)),
            "conf": self.args["conf"],
            "batch_size": self.args["batch_size"],
        }

    def __call__(
        self,
        source: Any = None,
        points: Any = None,
        labels: Any = None,
        bboxes: Any = None,
        masks: Any = None,
        multimask_output: bool | None = None,
        stream: bool = False,
        **everything: Any,
    ) -> list[Results] | Any:
        """Prompts on the set image (no encoder pass), or on ``source`` when given; with no
        prompt, segment everything (``everything``: Meta's or Ultralytics' setting names)."""
        prompts = {"points": points, "labels": labels, "bboxes": bboxes, "masks": masks}
        prompted = any(v is not None for v in prompts.values())
        sam = self.sam
        if source is not None:
            kwargs = self._options(multimask_output) if prompted else {}
            out = sam.predict(source, stream=stream, **prompts, **kwargs, **everything)
            self._restore()
            return out
        if self._image_rgb is None:
            raise SamkitError("no image: call set_image(...) first or pass source=")
        if not prompted:
            out = [sam.segment_everything(self._image_rgb, path=self._path, **everything)]
            self._restore()
            return out
        if everything:
            raise SamkitError(f"unknown argument(s): {', '.join(sorted(everything))}")
        self._restore()
        result = sam.segment_prompts(
            None,
            current_rgb=self._image_rgb,
            path=self._path,
            **prompts,
            **self._options(multimask_output),
        )
        if self.args["verbose"]:
            print(f"{result!r} scores={np.round(result.scores, 3).tolist()}")
        return [result]

    @staticmethod
    def remove_small_regions(masks: Any, min_area: float = 0, nms_thresh: float = 0.7) -> Any:
        """Ultralytics' static cleanup: fill holes and drop islands smaller than ``min_area``
        pixels in each (N, H, W) mask, then NMS (IoU ``nms_thresh``) on the new boxes,
        preferring masks that needed no change. Returns ``(masks[keep], keep)``, torch
        tensors for a torch input (same device and dtype), NumPy arrays for NumPy."""
        from samkit.amg.nms import batched_nms_numpy
        from samkit.masks import mask_to_box, remove_small_regions

        is_torch = hasattr(masks, "detach")
        arr = masks.detach().cpu().numpy() if is_torch else np.asarray(masks)
        new = np.zeros(arr.shape, dtype=bool)
        scores = np.zeros(len(arr), dtype=np.float32)
        for i, mask in enumerate(arr.astype(bool)):
            mask, holes = remove_small_regions(mask, min_area, "holes")
            new[i], islands = remove_small_regions(mask, min_area, "islands")
            scores[i] = float(not (holes or islands))
        keep = batched_nms_numpy(mask_to_box(new), scores, None, nms_thresh)
        out = new[keep].astype(arr.dtype)
        if not is_torch:
            return out, keep
        import torch

        return torch.from_numpy(out).to(masks.device), torch.from_numpy(keep)

    def _restore(self) -> None:
        """Put the set image's embedding back after a run that used the engine for others."""
        if self._state is not None:
            self.sam.engine.set_state(self._state)
