"""The annotator's data side: the image list, each image's objects, saving and exporting.

Objects are ``{"label": class name, "rle": {"size": [h, w], "counts": str}}`` in
original-image pixels. Every save writes the image's files at once through
:class:`samkit.annotate.writers.DatasetWriter` (the layout of ``samkit annotate``):
``.coco_parts/<rel>.json`` always (lossless RLE; what a restarted server reads back), plus
``<rel stem>.txt`` (YOLO-seg) and ``<rel stem>.json`` (LabelMe) when asked. Class names are
kept in ``classes.txt`` (line i = YOLO class i = COCO category i + 1) so ids stay stable across
restarts. Label files that already exist (ours, YOLO-seg, LabelMe in the output folder, or a
LabelMe JSON next to the image) are loaded at start and only rewritten when that image is
saved, with their objects included.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
import threading
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from samkit.annotate.writers import COCO_FILE, DatasetWriter, parse_formats
from samkit.formats import read_labelme, read_yolo_seg, write_data_yaml
from samkit.io_utils import atomic_write_text
from samkit.masks import coco_rle, rle_to_mask
from samkit.polygons import polygons_to_mask

__all__ = ["CLASSES_FILE", "AnnotationStore", "Conflict", "ImageEntry"]

logger = logging.getLogger("samkit")

CLASSES_FILE = "classes.txt"


@dataclass(frozen=True)
class ImageEntry:
    """One image: ``id`` its index in the sorted list, ``rel`` its posix path under the root,
    ``width`` / ``height`` after EXIF orientation."""

    id: int
    path: Path
    rel: str
    width: int
    height: int


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) as :func:`samkit.sources.read_image` will give it, from the header."""
    from PIL import Image

    with Image.open(path) as img:
        w, h = img.size
        orientation = img.getexif().get(0x0112, 1)
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


class AnnotationStore:
    """Objects per image in memory, written to ``output_dir`` on every :meth:`put`.

    Args:
        images: ``(path, rel)`` pairs (see :func:`samkit.annotate.images.list_images`).
        output_dir: folder for the label files.
        classes: class names offered to annotators (saved names come first).
        formats: ``"coco"`` always, plus ``"yolo"`` / ``"labelme"`` when named.
        root: the image folder (``data.yaml`` points at it); default the first image's folder.
    """

    def __init__(
        self,
        images: Sequence[tuple[Path, str]],
        output_dir: str | os.PathLike[str],
        classes: Sequence[str],
        formats: Sequence[str] = ("coco", "yolo", "labelme"),
        root: str | os.PathLike[str] | None = None,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.root = Path(root) if root is not None else None  # the folder ``rel`` is under
        self.writer = DatasetWriter(self.output_dir, parse_formats(["coco", *formats]))
        self.entries: list[ImageEntry] = []
        self.problems: list[str] = []
        for path, rel in images:
            try:
                w, h = image_size(path)
            except Exception as exc:  # unreadable: reported, left out
                self.problems.append(f"{path}: {exc}")
                logger.warning("skipping %s: %s", path, exc)
                continue
            self.entries.append(ImageEntry(len(self.entries), path, rel, w, h))
        self._yaml_names: list[str] | None = None
        self.classes = self._load_classes(classes)
        self._objects: dict[int, list[dict[str, Any]]] = {}
        self._locks = [threading.Lock() for _ in self.entries]
        self._classes_lock = threading.Lock()
        self._export_lock = threading.Lock()
        for entry in self.entries:
            found = self._load_existing(entry)
            if found is not None:
                self._objects[entry.id] = found
        self._save_classes(data_yaml=False)

    # ------------------------------------------------------------------ classes
    def _load_classes(self, given: Sequence[str]) -> list[str]:
        """Saved names first (``classes.txt``, else an existing YOLO ``data.yaml``, whose ids the
        label files use), then the new ones."""
        saved: list[str] = []
        path = self.output_dir / CLASSES_FILE
        yaml_path = self.output_dir / "data.yaml"
        if path.is_file():
            saved = [s.strip() for s in path.read_text(encoding="utf-8").splitlines() if s.strip()]
        elif yaml_path.is_file():
            from samkit.annotate.detectors import normalize_names

            try:
                table = normalize_names(yaml_path)
                saved = [table.get(i, f"class{i}") for i in range(max(table, default=-1) + 1)]
                self._yaml_names = list(saved)
            except (ImportError, ValueError) as exc:
                self.problems.append(f"{yaml_path}: {exc}")
        return list(dict.fromkeys([*saved, *(str(c) for c in given)]))

    def _class_id(self, name: str) -> int:
        with self._classes_lock:
            if name not in self.classes:  # a name found in an existing label file
                self.classes.append(name)
            return self.classes.index(name)

    def _root(self) -> Path:
        if self.root is not None:
            return self.root
        return self.entries[0].path.parent if self.entries else self.output_dir

    def _save_classes(self, data_yaml: bool = True) -> None:
        """``classes.txt`` when the class list changed; with ``data_yaml`` (on saves, not at
        start) also YOLO's ``data.yaml`` when its names are not the current ones."""
        with self._classes_lock:
            names = list(self.classes)
        text = "".join(f"{c}\n" for c in names)
        path = self.output_dir / CLASSES_FILE
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            atomic_write_text(path, text)
        if data_yaml and "yolo" in self.writer.formats and names != self._yaml_names:
            root = self._root().resolve()
            write_data_yaml(self.output_dir / "data.yaml", names, root=root.parent,
                            train=root.name, val=root.name)  # fmt: skip
            self._yaml_names = names

    # ------------------------------------------------------------------ loading
    def _load_existing(self, entry: ImageEntry) -> list[dict[str, Any]] | None:
        """Objects of a label file that already exists for ``entry``, or None."""
        rel = PurePosixPath(entry.rel)
        candidates = [
            (self.writer.output_dir / ".coco_parts" / f"{rel}.json", self._read_part),
            (self.output_dir / rel.with_suffix(".json"), self._read_labelme),
            (self.output_dir / rel.with_suffix(".txt"), self._read_yolo),
            (entry.path.with_suffix(".json"), self._read_labelme),
        ]
        for path, reader in candidates:
            if path.is_file():
                try:
                    return reader(path, entry)
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    self.problems.append(f"{path}: {exc}")
                    logger.warning("cannot read %s (%s); it is left as it is", path, exc)
        return None

    def _read_part(self, path: Path, entry: ImageEntry) -> list[dict[str, Any]]:
        part = json.loads(path.read_text(encoding="utf-8"))
        out = []
        for ann in part["annotations"]:
            seg = ann["segmentation"]
            if isinstance(seg, dict):
                mask = rle_to_mask(seg)
            else:
                polys = [np.asarray(p, float).reshape(-1, 2) for p in seg]
                mask = polygons_to_mask(polys, entry.height, entry.width, frame="edges")
            cid = int(ann["category_id"]) - 1
            name = self.classes[cid] if 0 <= cid < len(self.classes) else f"class{cid}"
            out.append({"label": name, "rle": coco_rle(mask)})
        return out

    def _read_labelme(self, path: Path, entry: ImageEntry) -> list[dict[str, Any]]:
        record = read_labelme(path)
        groups: dict[Any, tuple[str, list[np.ndarray]]] = {}
        for i, shape in enumerate(record["shapes"]):
            if shape.get("shape_type", "polygon") != "polygon":
                continue
            key = ("g", shape["group_id"]) if shape.get("group_id") is not None else ("s", i)
            groups.setdefault(key, (str(shape["label"]), []))[1].append(
                np.asarray(shape["points"], float).reshape(-1, 2)
            )
        return self._objects_from_polygons(groups.values(), entry)

    def _read_yolo(self, path: Path, entry: ImageEntry) -> list[dict[str, Any]]:
        scale = np.array([entry.width, entry.height], float)
        items = [
            (self.classes[c] if c < len(self.classes) else f"class{c}", [pts * scale])
            for c, pts in read_yolo_seg(path)
        ]
        return self._objects_from_polygons(items, entry)

    def _objects_from_polygons(self, items: Any, entry: ImageEntry) -> list[dict[str, Any]]:
        out = []
        for label, polys in items:
            mask = polygons_to_mask(polys, entry.height, entry.width)
            if mask.any():
                self._class_id(label)
                out.append({"label": label, "rle": coco_rle(mask)})
        return out

    # ------------------------------------------------------------------ access
    def annotated(self, image_id: int) -> bool:
        return image_id in self._objects

    def get(self, image_id: int) -> list[dict[str, Any]]:
        return self.get_versioned(image_id)[0]

    def get_versioned(self, image_id: int) -> tuple[list[dict[str, Any]], str]:
        """The objects of an image and their version (an ETag: a hash of the objects)."""
        with self._locks[image_id]:
            objects = [dict(o) for o in self._objects.get(image_id, [])]
        return objects, _version(objects)

    def put(
        self,
        image_id: int,
        objects: Sequence[tuple[str, np.ndarray]],
        expected: str | None = None,
    ) -> list[dict[str, Any]]:
        """Replace the objects of an image with ``(label, mask (H, W) bool)`` pairs and write its
        files atomically; returns the stored objects. With ``expected`` (a version from
        :meth:`get_versioned`) the write happens only if nobody changed the image since:
        :class:`Conflict` otherwise."""
        entry = self.entries[image_id]
        ids = np.array([self._class_id(label) for label, _ in objects], dtype=np.int64)
        masks = (
            np.stack([m for _, m in objects])
            if objects
            else np.zeros((0, entry.height, entry.width), bool)
        )
        stored = [{"label": label, "rle": coco_rle(m)} for label, m in objects]
        self._save_classes()
        with self._locks[image_id]:
            if expected is not None:
                current = _version(self._objects.get(image_id, []))
                if expected != current:
                    raise Conflict(current)
            self._write(entry, ids, masks, self.writer)
            self._objects[image_id] = stored
        return [dict(o) for o in stored]

    def _tables(self) -> tuple[dict[int, str], dict[int, int]]:
        with self._classes_lock:
            names = dict(enumerate(self.classes))
        return names, {i: i + 1 for i in names}

    def _write(
        self, entry: ImageEntry, ids: np.ndarray, masks: np.ndarray, writer: DatasetWriter
    ) -> None:
        names, coco_ids = self._tables()
        scores = np.ones(len(ids), np.float32)
        writer.write(
            entry.rel, entry.path, entry.height, entry.width, ids, scores, masks, names, coco_ids
        )

    # ------------------------------------------------------------------ export
    def export(self, fmt: str) -> tuple[bytes, str]:
        """The dataset in ``fmt``: COCO -> the instances JSON; YOLO / LabelMe -> a zip of the
        label files (YOLO with ``data.yaml``). Returns (bytes, media type)."""
        names, coco_ids = self._tables()
        done = [e for e in self.entries if self.annotated(e.id)]
        root = self._root()
        with self._export_lock:
            if fmt == "coco":
                self.writer.finalize([e.rel for e in done], names, coco_ids, root)
                return (self.output_dir / COCO_FILE).read_bytes(), "application/json"
            with tempfile.TemporaryDirectory() as tmp:
                writer = DatasetWriter(tmp, [fmt])
                for e in done:
                    objs = self.get(e.id)
                    ids = np.array([self._class_id(o["label"]) for o in objs], np.int64)
                    masks = np.stack([rle_to_mask(o["rle"]) for o in objs]) if objs else (
                        np.zeros((0, e.height, e.width), bool))  # fmt: skip
                    self._write(e, ids, masks, writer)
                writer.finalize([e.rel for e in done], names, coco_ids, root)
                return _zip_folder(Path(tmp)), "application/zip"


class Conflict(Exception):
    """A write based on an outdated version; ``args[0]`` is the current version."""


def _version(objects: Sequence[dict[str, Any]]) -> str:
    text = json.dumps(list(objects), sort_keys=True, separators=(",", ":"))
    return '"' + hashlib.sha1(text.encode()).hexdigest()[:20] + '"'


def _zip_folder(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return buf.getvalue()
