"""Datasets on disk -> image records with lazily rasterised objects, for every format.

The parsing of each format is the one next to its writer (:mod:`~samkit.formats.coco`,
:mod:`~samkit.formats.yolo`, :mod:`~samkit.formats.labelme`, :mod:`~samkit.formats.mask_png`);
this module finds the files, pairs images with labels and turns each object into a
:class:`Object` whose ``decode(height, width)`` rasterises it. :func:`samkit.datasets.open_dataset`
is the public entry point.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from samkit.errors import DatasetError, FormatError, SourceError
from samkit.polygons import polygons_to_mask

__all__ = [
    "FORMATS",
    "Found",
    "Object",
    "Problem",
    "Record",
    "detect_format",
    "image_size",
    "read_dataset",
]

FORMATS = ("coco", "yolo", "labelme", "masks", "images")


@dataclass(frozen=True)
class Problem:
    """An annotation or file that was skipped: where (``file`` or ``file:entry``) and why."""

    file: str
    message: str


@dataclass(frozen=True)
class Object:
    """One object before rasterisation: ``decode(h, w)`` -> ``(h, w)`` bool
    (:class:`~samkit.errors.FormatError`, a ``ValueError``, when it cannot be rasterised);
    ``where`` names it in problem reports."""

    instance_id: str
    category: str
    decode: Callable[[int, int], np.ndarray]
    where: str
    bbox: tuple[float, float, float, float] | None = None


@dataclass
class Record:
    """One image: ``path``, ``name`` (relative, for reports), ``height``/``width`` when the
    annotations say (else read from the image header on first use), its objects."""

    path: Path
    name: str
    objects: list[Object]
    height: int | None = None
    width: int | None = None

    def size(self) -> tuple[int, int]:
        if self.height is None or self.width is None:
            self.height, self.width = image_size(self.path)
        return self.height, self.width


@dataclass
class Found:
    format: str
    records: list[Record]
    names: list[str]
    problems: list[Problem] = field(default_factory=list)
    crowd: int = 0


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of an image file from its header, after EXIF orientation.

    Raises:
        SourceError: naming the file, when it is missing, empty or not an image.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            w, h = img.size
            orientation = img.getexif().get(274, 1)
    except Exception as exc:  # any decoder failure (as sources.read_image) means "unreadable"
        raise SourceError(f"cannot read {str(path)!r} as an image: {exc}") from None
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def _image_files(folder: Path) -> list[Path]:
    from samkit.sources import IMAGE_SUFFIXES

    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
    )


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


# ------------------------------------------------------------------------------------ COCO
def _coco_decode(seg: Any, h: int, w: int) -> np.ndarray:
    from samkit.formats.coco import coco_segmentation_to_mask

    return coco_segmentation_to_mask(seg, h, w)


def _read_coco(path: Path, images: Path | None) -> Found:
    from samkit.formats.coco import read_coco_instances

    try:
        coco = read_coco_instances(path)
    except ValueError as e:
        raise DatasetError(str(e)) from None
    found = Found("coco", [], [coco.categories[k] for k in sorted(coco.categories)])
    found.crowd = coco.crowd
    found.problems = [Problem(w, m) for w, m in coco.problems]
    roots = [images] if images is not None else [path.parent, path.parent / "images"]
    for img in coco.images:
        file = next((r / img.file_name for r in roots if (r / img.file_name).is_file()), None)
        if file is None:
            found.problems.append(Problem(str(roots[0] / img.file_name), "image file not found"))
            continue
        objects = [
            Object(
                str(a.ann_id),
                a.category,
                partial(_coco_decode, a.segmentation),
                f"{path}:annotation {a.ann_id}",
                a.bbox,
            )
            for a in img.annotations
        ]
        found.records.append(Record(file, img.file_name, objects, img.height, img.width))
    return found


# ------------------------------------------------------------------------------------ YOLO
def _polygon_decode(polys: list[np.ndarray], scale: bool, h: int, w: int) -> np.ndarray:
    k = np.array([w, h], dtype=np.float64) if scale else 1.0
    return polygons_to_mask([p * k for p in polys], h, w, frame="centers")


def _yolo_dirs(data: Path, images: Path | None, split: str) -> tuple[Path, list[str]]:
    """The image folder and class names of a YOLO dataset given as data.yaml or folder."""
    if data.is_file():
        from samkit.formats.yolo import read_data_yaml

        try:
            cfg = read_data_yaml(data)
        except (ValueError, OSError) as e:
            raise DatasetError(f"{data}: cannot read data.yaml ({e})") from None
        if images is not None:
            return images, list(cfg["names"])  # type: ignore[call-overload]
        if split not in cfg:
            raise DatasetError(f"{data}: has no {split!r} split (split= names the key)")
        base = Path(str(cfg.get("path") or data.parent))
        if not base.is_absolute():
            base = data.parent / base
        return base / str(cfg[split]), list(cfg["names"])  # type: ignore[call-overload]
    folder = images if images is not None else data / "images"
    return folder, []


def _yolo_label_path(image: Path) -> Path:
    """Ultralytics' rule: the last ``images`` path component becomes ``labels``, suffix .txt."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def _read_yolo(data: Path, images: Path | None, split: str) -> Found:
    from samkit.formats.yolo import read_yolo_seg_rows

    folder, names = _yolo_dirs(data, images, split)
    if not folder.is_dir():
        raise DatasetError(f"{data}: image folder {folder} does not exist")
    found = Found("yolo", [], names)
    labels_root = data / "labels" if data.is_dir() and images is not None else None
    for file in _image_files(folder):
        rel = _rel(file, folder)
        label = (labels_root / rel).with_suffix(".txt") if labels_root else _yolo_label_path(file)
        objects = []
        if label.is_file():
            rows, problems = read_yolo_seg_rows(label)
            found.problems += [Problem(w, m) for w, m in problems]
            for where, index, cls, pts in rows:
                name = names[cls] if cls < len(names) else str(cls)
                decode = partial(_polygon_decode, [pts], True)
                objects.append(Object(f"{Path(rel).with_suffix('')}:{index}", name, decode, where))
        found.records.append(Record(file, rel, objects))
    return found


# ------------------------------------------------------------------------------------ LabelMe
def _read_labelme(folder: Path, images: Path | None) -> Found:
    from samkit.formats.labelme import labelme_objects, read_labelme

    found = Found("labelme", [], [])
    names: dict[str, None] = {}
    for js in sorted(folder.rglob("*.json")):
        try:
            record = read_labelme(js)
            h, w = int(record["imageHeight"]), int(record["imageWidth"])
        except (ValueError, TypeError, OSError) as e:
            found.problems.append(Problem(str(js), str(e).split(": ", 1)[-1]))
            continue
        rel_image = str(record["imagePath"]).replace("\\", "/")
        file = (images / Path(rel_image).name) if images is not None else js.parent / rel_image
        if not file.is_file():
            found.problems.append(Problem(str(js), f"image {file} not found"))
            continue
        objs, problems = labelme_objects(record, str(js))
        found.problems += [Problem(wh, m) for wh, m in problems]
        stem = _rel(js, folder)[: -len(".json")]
        objects = []
        for key, label, polys in objs:
            names.setdefault(label)
            decode = partial(_polygon_decode, polys, False)
            objects.append(Object(f"{stem}:{key}", label, decode, f"{js}:{key}"))
        found.records.append(Record(file, _rel(file, folder), objects, h, w))
    found.names = list(names)
    return found


# ------------------------------------------------------------------------------------ mask PNGs
def _read_png(file: Path) -> np.ndarray:
    """:func:`~samkit.formats.mask_png.read_mask_png` whose error leaves the file name out
    (problem reports name it already)."""
    from samkit.formats.mask_png import read_mask_png

    try:
        return read_mask_png(file)
    except FormatError as e:
        raise FormatError(str(e).removeprefix(f"{file}: ")) from None


def _png_decode(file: Path, value: int | None, h: int, w: int) -> np.ndarray:
    arr = _read_png(file)
    if arr.shape != (h, w):
        raise FormatError(f"mask is {arr.shape[0]}x{arr.shape[1]} but the image is {h}x{w}")
    return arr != 0 if value is None else arr == value


def _png_objects(masks_dir: Path, stem: str) -> list[Object]:
    from samkit.formats.mask_png import instance_mask_files

    files = instance_mask_files(masks_dir, stem)
    if len(files) == 1 and files[0].parent == masks_dir:  # one instance-id map
        try:
            values = [int(v) for v in np.unique(_read_png(files[0])) if v != 0]
        except FormatError as e:
            return [Object(stem, "", partial(_raise, str(e)), str(files[0]))]
        return [
            Object(f"{stem}:{v}", "", partial(_png_decode, files[0], v), f"{files[0]}:{v}")
            for v in values
        ]
    return [Object(f"{stem}/{f.stem}", "", partial(_png_decode, f, None), str(f)) for f in files]


def _raise(message: str, h: int, w: int) -> np.ndarray:
    raise FormatError(message)


def _read_masks(root: Path, images: Path | None) -> Found:
    folder = images if images is not None else root / "images"
    if not folder.is_dir():
        raise DatasetError(f"{root}: image folder {folder} does not exist")
    found = Found("masks", [], [])
    for file in _image_files(folder):
        rel = _rel(file, folder)
        stem = Path(rel).with_suffix("").as_posix()
        found.records.append(Record(file, rel, _png_objects(root / "masks", stem)))
    return found


# ------------------------------------------------------------------------------------ dispatch
def _is_labelme_folder(folder: Path) -> bool:
    first = next(iter(sorted(folder.glob("*.json"))), None)
    if first is None:
        return False
    try:
        head = json.loads(first.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return False
    return isinstance(head, dict) and "shapes" in head


def detect_format(data: Path) -> str:
    """The format of ``data`` (see :mod:`samkit.datasets`), or DatasetError."""
    if not data.exists():
        raise DatasetError(f"data {str(data)!r} does not exist")
    if data.is_file():
        suffix = data.suffix.lower()
        if suffix == ".json":
            return "coco"
        if suffix in (".yaml", ".yml"):
            return "yolo"
        raise DatasetError(
            f"data {str(data)!r}: expected a COCO .json, a data.yaml or a dataset folder"
        )
    if (data / "labels").is_dir():
        return "yolo"
    if (data / "masks").is_dir():
        return "masks"
    if _is_labelme_folder(data):
        return "labelme"
    return "images"


def read_dataset(data: Path, images: Path | None, split: str, fmt: str | None) -> Found:
    """Records, class names and problems of the dataset at ``data`` (format detected unless
    ``fmt`` is given)."""
    if images is not None and not images.is_dir():
        raise DatasetError(f"images {str(images)!r} is not a folder")
    fmt = detect_format(data) if fmt is None else fmt
    if fmt not in FORMATS:
        raise DatasetError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "coco":
        return _read_coco(data, images)
    if fmt == "yolo":
        return _read_yolo(data, images, split)
    if fmt == "labelme":
        return _read_labelme(data, images)
    if fmt == "masks":
        return _read_masks(data, images)
    folder = images if images is not None else data
    return Found("images", [Record(f, _rel(f, folder), []) for f in _image_files(folder)], [])
