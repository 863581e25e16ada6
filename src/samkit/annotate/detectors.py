"""Box sources for auto-annotation: where the boxes that prompt SAM come from.

Every source is called once per image with the (H, W, 3) uint8 RGB image (EXIF orientation
applied) and the image's path relative to the data root, and returns :class:`Detections`:
boxes XYXY in that image's pixels, class ids and scores, which travel together through every
filter (:meth:`Detections.select`) so a class can never slide onto another object's box.

Sources:

- :class:`UltralyticsDetector`: an Ultralytics YOLO model (checkpoint path, model name or
  ``YOLO`` object; needs the optional ``ultralytics`` package).
- :class:`YoloBoxLabels`: a folder of YOLO detection txt files (``class cx cy w h``,
  normalised), with class names from a ``data.yaml`` or a list.
- :class:`CocoBoxes`: a COCO instances JSON with ``bbox`` annotations.
- :class:`CallableDetector`: any ``f(image_rgb) -> (boxes_xyxy (N, 4), class_ids (N,),
  scores (N,))``, or just the boxes (or boxes and class ids).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from samkit.errors import ArgumentError, SourceError
from samkit.formats.coco import read_coco_boxes
from samkit.formats.yolo import read_yolo_boxes

__all__ = [
    "BoxSource",
    "CallableDetector",
    "CocoBoxes",
    "Detections",
    "UltralyticsDetector",
    "YoloBoxLabels",
    "make_box_source",
    "normalize_names",
]


@dataclass(frozen=True)
class Detections:
    """Objects found on one image; row ``i`` of every field describes the same object.

    boxes: (N, 4) float64 XYXY in original-image pixels. class_ids: (N,) int64 (0-based class
    indices). scores: (N,) float64. masks: (N, H, W) bool once SAM has run, else None.
    """

    boxes: np.ndarray
    class_ids: np.ndarray
    scores: np.ndarray
    masks: np.ndarray | None = None

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0))

    @classmethod
    def create(cls, boxes: Any, class_ids: Any, scores: Any = None, where: str = "") -> Detections:
        """Validate and convert detector output; ``scores`` None means 1.0 for every box."""
        at = f" ({where})" if where else ""
        b = np.asarray(boxes, dtype=np.float64)
        if b.size == 0:
            b = b.reshape(0, 4)
        if b.ndim != 2 or b.shape[1] != 4:
            raise ArgumentError(f"boxes must have shape (N, 4) XYXY, got {b.shape}{at}")
        c = np.asarray(class_ids).reshape(-1)
        if c.shape != (len(b),):
            raise ArgumentError(
                f"class_ids must have shape ({len(b)},) to match boxes, got {c.shape}{at}"
            )
        if len(c) and (not np.all(np.mod(c, 1) == 0) or c.min() < 0):
            raise ArgumentError(f"class_ids must be non-negative integers, got {c.tolist()}{at}")
        s = np.ones(len(b)) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
        if s.shape != (len(b),):
            raise ArgumentError(
                f"scores must have shape ({len(b)},) to match boxes, got {s.shape}{at}"
            )
        if not np.isfinite(b).all():
            raise ArgumentError(f"boxes contain NaN or infinite values{at}")
        return cls(b, c.astype(np.int64), s)

    def __len__(self) -> int:
        return len(self.boxes)

    def select(self, keep: np.ndarray) -> Detections:
        """The objects picked by ``keep`` (bool (N,) or indices), every field together."""
        return Detections(
            self.boxes[keep],
            self.class_ids[keep],
            self.scores[keep],
            None if self.masks is None else self.masks[keep],
        )


class BoxSource:
    """Base of the box sources: ``source(image, rel_path) -> Detections``.

    ``names`` maps class index -> name (may be empty when unknown); ``coco_ids`` maps class
    index -> COCO category id (default ``index + 1``).
    """

    names: dict[int, str]
    coco_ids: dict[int, int] | None = None

    def __call__(self, image: np.ndarray, rel_path: str) -> Detections:
        raise NotImplementedError

    def coco_id(self, class_id: int) -> int:
        if self.coco_ids is not None and class_id in self.coco_ids:
            return self.coco_ids[class_id]
        return class_id + 1


def normalize_names(names: Any) -> dict[int, str]:
    """Class names as ``{index: name}`` from a list, a dict, or a ``data.yaml`` path."""
    if names is None:
        return {}
    if isinstance(names, (str, os.PathLike)):
        return _names_from_yaml(Path(names))
    if isinstance(names, Mapping):
        table = dict(names)
    elif isinstance(names, Sequence) and not isinstance(names, bytes):
        table = dict(enumerate(names))
    else:
        raise ArgumentError(
            f"names must be a list, a dict int -> str or a data.yaml path, got {names!r}"
        )
    out: dict[int, str] = {}
    for k, v in table.items():
        try:
            index = int(k)
        except (TypeError, ValueError):
            raise ArgumentError(f"names keys must be class indices, got {k!r}") from None
        if index < 0:
            raise ArgumentError(f"names keys must be >= 0, got {k!r}")
        out[index] = str(v)
    return out


def _names_from_yaml(path: Path) -> dict[int, str]:
    if not path.is_file():
        raise ArgumentError(f"names: {str(path)!r} is not a data.yaml file")
    try:
        import yaml
    except ImportError:
        raise ImportError(
            "reading class names from a data.yaml needs PyYAML: pip install pyyaml "
            "(or pass names as a list)"
        ) from None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:  # also tags such as !!python/object, which safe_load refuses
        detail = " ".join(str(exc).split())
        raise ArgumentError(f"names: {path} is not a plain YAML file: {detail}") from None
    if not isinstance(data, dict) or "names" not in data:
        raise ArgumentError(f"{path}: a data.yaml needs a 'names' entry")
    return normalize_names(data["names"])


class CallableDetector(BoxSource):
    """Wraps ``fn(image_rgb (H, W, 3) uint8)`` returning ``(boxes_xyxy (N, 4), class_ids (N,),
    scores (N,))``, ``(boxes_xyxy, class_ids)`` or just ``boxes_xyxy`` (arrays, tensors or
    nested lists, original-image pixels; missing class ids are 0, missing scores 1.0);
    ``names`` optional."""

    def __init__(self, fn: Callable[[np.ndarray], Any], names: Any = None) -> None:
        self.fn = fn
        self.names = normalize_names(names)

    def __call__(self, image: np.ndarray, rel_path: str) -> Detections:
        boxes, classes, scores = _detector_output(self.fn(image))
        if classes is None:
            classes = np.zeros(len(boxes), dtype=np.int64)
        return Detections.create(boxes, classes, scores, where=f"detector output for {rel_path}")


def _detector_output(out: Any) -> tuple[np.ndarray, Any, Any]:
    """A detector callable's return value -> (boxes (N, 4), class_ids or None, scores or None).

    A tuple / list whose first item is 2-D (or empty) is ``(boxes[, class_ids[, scores]])``;
    anything else is the boxes themselves (so a plain list of boxes works too)."""
    expected = (
        "a detector callable must return boxes_xyxy (N, 4), or (boxes_xyxy (N, 4), "
        "class_ids (N,)[, scores (N,)])"
    )
    if isinstance(out, (tuple, list)) and len(out) in (1, 2, 3):
        first = _to_numpy(out[0])
        if np.size(first) == 0 or np.ndim(first) == 2:
            parts = [_to_numpy(v) for v in out] + [None, None]
            return np.asarray(parts[0]), parts[1], parts[2]
    if out is None or isinstance(out, (str, bytes, dict)):
        raise ArgumentError(f"{expected}, got {type(out).__name__}")
    try:
        boxes = np.asarray(_to_numpy(out), dtype=np.float64)
    except (TypeError, ValueError):
        raise ArgumentError(f"{expected}, got {type(out).__name__}") from None
    return boxes, None, None


def _to_numpy(value: Any) -> Any:
    if hasattr(value, "detach"):  # torch tensor
        return value.detach().cpu().numpy()
    return value


class UltralyticsDetector(BoxSource):
    """An Ultralytics YOLO model: a checkpoint path / model name (``"yolo11x.pt"``, a
    ``.yaml`` config) or a loaded ``ultralytics.YOLO``. ``conf``, ``iou`` (NMS), ``imgsz``,
    ``max_det``, ``classes`` and ``device`` are handed to its ``predict``. A checkpoint file
    is checked first (:func:`samkit.annotate.detector_files.check_detector_file`: one that
    could run code is refused); ``arg`` names the setting in errors."""

    def __init__(
        self,
        model: Any,
        *,
        conf: float = 0.25,
        iou: float = 0.45,
        imgsz: int = 640,
        max_det: int = 300,
        classes: Sequence[int] | None = None,
        device: str = "",
        names: Any = None,
        arg: str = "det_model",
    ) -> None:
        if isinstance(model, (str, os.PathLike)):
            try:
                from ultralytics import YOLO
            except ImportError:
                raise ImportError(
                    f"{arg}={os.fspath(model)!r} needs the ultralytics package: "
                    "pip install 'samkit[detect]' (or pip install ultralytics)"
                ) from None
            from samkit.annotate.detector_files import check_detector_file

            check_detector_file(model, arg)  # before Ultralytics unpickles it
            model = YOLO(os.fspath(model))
        self.model = model
        self.kwargs: dict[str, Any] = {
            "conf": conf, "iou": iou, "imgsz": imgsz, "max_det": max_det,
            "classes": list(classes) if classes is not None else None, "verbose": False,
        }  # fmt: skip
        if device:
            self.kwargs["device"] = device
        self.names = normalize_names(names) or normalize_names(getattr(model, "names", None))

    def __call__(self, image: np.ndarray, rel_path: str) -> Detections:
        # Ultralytics reads NumPy images as BGR (OpenCV's order).
        bgr = np.ascontiguousarray(image[..., ::-1])
        result = self.model.predict(bgr, **self.kwargs)[0]
        boxes = result.boxes
        if boxes is None:
            return Detections.empty()
        return Detections.create(
            _to_numpy(boxes.xyxy), _to_numpy(boxes.cls), _to_numpy(boxes.conf), where=rel_path
        )


class YoloBoxLabels(BoxSource):
    """A folder of YOLO detection labels: ``folder/<image path relative to the data root, with
    .txt>`` (falling back to ``folder/<image stem>.txt``). A missing file means no objects.

    ``names``: a list / dict, or a data.yaml path; when None, a ``data.yaml`` in the folder or
    its parent is used if there is one.
    """

    def __init__(self, folder: str | os.PathLike[str], names: Any = None) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ArgumentError(f"det_model: {str(folder)!r} is not a folder of YOLO label files")
        if names is None:
            for candidate in (self.folder / "data.yaml", self.folder.parent / "data.yaml"):
                if candidate.is_file():
                    names = candidate
                    break
        self.names = normalize_names(names)
        self.missing = 0

    def label_path(self, rel_path: str) -> Path | None:
        rel = PurePosixPath(rel_path).with_suffix(".txt")
        for candidate in (self.folder / rel, self.folder / rel.name):
            if candidate.is_file():
                return candidate
        return None

    def __call__(self, image: np.ndarray, rel_path: str) -> Detections:
        path = self.label_path(rel_path)
        if path is None:
            self.missing += 1
            return Detections.empty()
        try:
            rows = read_yolo_boxes(path)
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            raise SourceError(f"bad box label file: {exc}") from None
        if not rows:
            return Detections.empty()
        h, w = image.shape[:2]
        arr = np.array([r[1:] for r in rows], dtype=np.float64)
        cx, cy, bw, bh = arr[:, 0] * w, arr[:, 1] * h, arr[:, 2] * w, arr[:, 3] * h
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        return Detections.create(boxes, [r[0] for r in rows], None, where=str(path))


class CocoBoxes(BoxSource):
    """Box annotations of a COCO instances JSON, matched to images by ``file_name`` (the path
    relative to the data root, else the bare file name). Categories become class indices
    ``0..n-1`` in id order; COCO output keeps the original category ids."""

    def __init__(self, json_path: str | os.PathLike[str], names: Any = None) -> None:
        import json

        self.path = Path(json_path)
        table = read_coco_boxes(self.path)
        data = json.loads(self.path.read_text(encoding="utf-8"))
        cat_names = {int(c["id"]): str(c.get("name", c["id"])) for c in data.get("categories", [])}
        for entries in table.values():
            for cid, name, _ in entries:
                cat_names.setdefault(cid, name)
        ids = sorted(cat_names)
        self.index_of = {cid: i for i, cid in enumerate(ids)}
        self.coco_ids = dict(enumerate(ids))
        self.names = normalize_names(names) or {i: cat_names[cid] for i, cid in enumerate(ids)}
        self.by_name: dict[str, list[tuple[int, tuple[float, float, float, float]]]] = {}
        self.by_base: dict[str, list[tuple[int, tuple[float, float, float, float]]]] = {}
        for file_name, entries in table.items():
            rows = [(self.index_of[cid], box) for cid, _, box in entries]
            key = PurePosixPath(file_name.replace("\\", "/"))
            self.by_name[key.as_posix()] = rows
            self.by_base.setdefault(key.name, rows)
        self.missing = 0

    def __call__(self, image: np.ndarray, rel_path: str) -> Detections:
        rows = self.by_name.get(rel_path)
        if rows is None:
            rows = self.by_base.get(PurePosixPath(rel_path).name)
        if rows is None:
            self.missing += 1
            return Detections.empty()
        if not rows:
            return Detections.empty()
        return Detections.create([r[1] for r in rows], [r[0] for r in rows], None, where=rel_path)


def make_box_source(
    det_model: Any,
    *,
    names: Any = None,
    conf: float = 0.25,
    iou: float = 0.45,
    imgsz: int = 640,
    max_det: int = 300,
    classes: Sequence[int] | None = None,
    device: str = "",
    arg: str = "det_model",
) -> BoxSource:
    """Pick the box source for ``det_model``:

    a :class:`BoxSource` as is; an object with ``predict`` (an ``ultralytics.YOLO``) or a
    string / path that is not a folder or ``.json`` file -> :class:`UltralyticsDetector`; a
    folder -> :class:`YoloBoxLabels`; a ``.json`` file -> :class:`CocoBoxes`; any other
    callable -> :class:`CallableDetector`. ``arg``: the argument's name in error messages.
    """
    if det_model is None:
        raise ArgumentError(
            f"{arg} is required: an Ultralytics YOLO checkpoint (e.g. 'yolo11x.pt'), a folder "
            "of YOLO box labels, a COCO JSON with boxes, or a callable image -> (boxes, classes, scores)"
        )
    if isinstance(det_model, BoxSource):
        return det_model
    if isinstance(det_model, (str, os.PathLike)):
        path = Path(det_model).expanduser()
        if path.is_dir():
            return YoloBoxLabels(path, names)
        if path.suffix.lower() == ".json":
            if not path.is_file():
                raise ArgumentError(f"{arg}: COCO box file {str(path)!r} does not exist")
            return CocoBoxes(path, names)
    if isinstance(det_model, (str, os.PathLike)) or hasattr(det_model, "predict"):
        return UltralyticsDetector(
            det_model, conf=conf, iou=iou, imgsz=imgsz, max_det=max_det, classes=classes,
            device=device, names=names, arg=arg,
        )  # fmt: skip
    if callable(det_model):
        return CallableDetector(det_model, names)
    raise ArgumentError(
        f"{arg} must be a YOLO checkpoint, a label folder, a COCO JSON or a callable, "
        f"got {type(det_model).__name__}"
    )
