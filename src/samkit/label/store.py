"""The annotator's data side: the image list, each image's objects, saving and exporting.

Objects are ``{"label": class name, "rle": {"size": [h, w], "counts": str}}`` in
original-image pixels. Every save writes the image's files at once through
:class:`samkit.annotate.writers.DatasetWriter` (the layout of ``samkit annotate``):
``.coco_parts/<rel>.json`` always (lossless RLE; what a restarted server reads back), plus
``<rel stem>.txt`` (YOLO-seg) and ``<rel stem>.json`` (LabelMe) when asked. Class names are
kept in ``classes.txt`` (line i = YOLO class i = COCO category i + 1) so ids stay stable across
restarts. Label files that already exist (ours, YOLO-seg, LabelMe in the output folder, or a
LabelMe JSON next to the image) are loaded at start and only rewritten when that image is
saved, with their objects included; what a LabelMe file holds beyond polygons is written back,
and an image whose label file could not be read is not saved (:mod:`samkit.label.existing`).
Two images whose label files would share a name (``a.jpg``, ``a.png``) are refused at start.
An image replaced on disk is noticed (:meth:`AnnotationStore.refresh`).
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

from samkit.annotate.images import label_collisions
from samkit.annotate.writers import COCO_FILE, DatasetWriter, parse_formats
from samkit.errors import ArgumentError, SourceError
from samkit.formats import write_data_yaml
from samkit.formats.labelme import labelme_record, write_labelme
from samkit.io_utils import atomic_write_text
from samkit.label.existing import LabelmeExtras, load_existing, merge_labelme, resize_mask
from samkit.masks import coco_rle, rle_to_mask
from samkit.polygons import mask_to_polygons

__all__ = ["CLASSES_FILE", "AnnotationStore", "Blocked", "Conflict", "ImageEntry"]

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
        fmts = parse_formats(["coco", *formats])
        self.labelme = "labelme" in fmts  # written here, with what the file held beyond ours
        self.writer = DatasetWriter(self.output_dir, [f for f in fmts if f != "labelme"])
        if "yolo" in fmts or self.labelme:
            _refuse_clashes([rel for _, rel in images])
        self.entries: list[ImageEntry] = []
        self.problems: list[str] = []
        self.notes: list[str] = []  # what was done at start (an import), for the console
        self._stats: list[tuple[int, int]] = []  # (mtime_ns, size) of each image file
        for path, rel in images:
            try:
                w, h = image_size(path)
                stat = path.stat()
            except Exception as exc:  # unreadable: reported, left out
                self.problems.append(f"{path}: {exc}")
                logger.warning("skipping %s: %s", path, exc)
                continue
            self.entries.append(ImageEntry(len(self.entries), path, rel, w, h))
            self._stats.append((stat.st_mtime_ns, stat.st_size))
        self._yaml_names: list[str] | None = None
        self.classes = self._load_classes(classes)
        self._objects: dict[int, list[dict[str, Any]]] = {}
        self.blocked: dict[int, str] = {}  # images that may not be saved, and why
        self._extras: dict[int, LabelmeExtras] = {}
        self._locks = [threading.Lock() for _ in self.entries]
        self._classes_lock = threading.Lock()
        self._export_lock = threading.Lock()
        for entry in self.entries:
            self._load_existing(entry, fmts)
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
    def _load_existing(self, entry: ImageEntry, formats: Sequence[str]) -> None:
        """The objects, LabelMe extras and blocked state of ``entry``'s existing label files."""
        found = load_existing(entry.rel, entry.path, (entry.height, entry.width),
                              self.output_dir, self._class_name, formats)  # fmt: skip
        for problem in found.problems:
            self.problems.append(problem)
            logger.warning("cannot read %s; it is left as it is", problem)
        if found.objects is not None:
            for obj in found.objects:
                self._class_id(obj["label"])
            self._objects[entry.id] = found.objects
        if found.blocked is not None:
            self.blocked[entry.id] = found.blocked
        if found.extras:
            self._extras[entry.id] = found.extras

    def _class_name(self, class_id: int) -> str:
        return self.classes[class_id] if 0 <= class_id < len(self.classes) else f"class{class_id}"

    def refresh(self, image_id: int) -> tuple[ImageEntry, bool]:
        """The entry of an image, re-read when its file changed on disk since it was last seen
        (another modification time or size): ``(entry, changed)``. A new size rescales the
        image's objects in memory (nearest neighbour); files change only on the next save."""
        entry = self.entries[image_id]
        try:
            stat = entry.path.stat()
            now = (stat.st_mtime_ns, stat.st_size)
            if now == self._stats[image_id]:
                return entry, False
            w, h = image_size(entry.path)
        except Exception as exc:
            raise SourceError(f"cannot read {entry.rel}: {exc}") from None
        with self._locks[image_id]:  # objects of another size are rescaled once
            if image_id in self._objects:
                self._objects[image_id] = [
                    o if list(o["rle"]["size"]) == [h, w]
                    else {**o, "rle": coco_rle(resize_mask(rle_to_mask(o["rle"]), h, w))}
                    for o in self._objects[image_id]
                ]  # fmt: skip
            entry = ImageEntry(image_id, entry.path, entry.rel, w, h)
            self.entries[image_id] = entry
            self._stats[image_id] = now
        logger.info("%s changed on disk: reloaded (%d x %d)", entry.rel, w, h)
        return entry, True

    def import_coco(self, json_path: str | os.PathLike[str]) -> tuple[int, list[str]]:
        """Starting objects from a COCO instances JSON (:mod:`samkit.label.coco_import`) for the
        images that have no label files yet; they are written when the image is saved.
        Returns (images given objects, images left as they were because they had labels)."""
        from samkit.label.coco_import import read_coco_objects

        found = read_coco_objects(json_path, {e.rel: (e.height, e.width) for e in self.entries})
        by_rel = {e.rel: e for e in self.entries}
        imported, kept = 0, []
        for rel, objects in found.objects.items():
            entry = by_rel[rel]
            if not objects:
                continue
            if entry.id in self._objects or entry.id in self.blocked:
                kept.append(rel)
                continue
            for obj in objects:
                self._class_id(obj["label"])
            self._objects[entry.id] = objects
            imported += 1
        self.problems.extend(found.problems)
        if found.unmatched:
            self.problems.append(f"{json_path}: {len(found.unmatched)} images not in the folder "
                                 f"(first: {found.unmatched[0]})")  # fmt: skip
        self._save_classes(data_yaml=False)
        return imported, kept

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
        crowd: Sequence[bool] | None = None,
    ) -> list[dict[str, Any]]:
        """Replace the objects of an image with ``(label, mask (H, W) bool)`` pairs and write its
        files atomically; returns the stored objects. With ``expected`` (a version from
        :meth:`get_versioned`) the write happens only if nobody changed the image since:
        :class:`Conflict` otherwise. :class:`Blocked` when a label file of the image could
        not be read at start (it is never overwritten). ``crowd``: per object, whether it is a
        crowd region (``iscrowd`` in COCO)."""
        entry = self.entries[image_id]
        ids = np.array([self._class_id(label) for label, _ in objects], dtype=np.int64)
        masks = (
            np.stack([m for _, m in objects])
            if objects
            else np.zeros((0, entry.height, entry.width), bool)
        )
        flags = list(crowd) if crowd is not None else [False] * len(objects)
        stored = [{"label": label, "rle": coco_rle(m)} | ({"crowd": True} if c else {})
                  for (label, m), c in zip(objects, flags, strict=True)]  # fmt: skip
        if image_id in self.blocked:
            raise Blocked(self.blocked[image_id])
        self._save_classes()
        with self._locks[image_id]:
            if expected is not None:
                current = _version(self._objects.get(image_id, []))
                if expected != current:
                    raise Conflict(current)
            self._write(entry, ids, masks, self.writer, self.output_dir if self.labelme else None)
            if any(flags):
                _mark_crowd(self.writer.paths(entry.rel)["coco"], flags)
            self._objects[image_id] = stored
        return [dict(o) for o in stored]

    def _tables(self) -> tuple[dict[int, str], dict[int, int]]:
        with self._classes_lock:
            names = dict(enumerate(self.classes))
        return names, {i: i + 1 for i in names}

    def _write(
        self,
        entry: ImageEntry,
        ids: np.ndarray,
        masks: np.ndarray,
        writer: DatasetWriter | None,
        labelme_dir: Path | None,
    ) -> None:
        """Write the files of ``writer``'s formats and, into ``labelme_dir``, the LabelMe file
        with what the existing one held beyond the annotator's polygons."""
        names, coco_ids = self._tables()
        scores = np.ones(len(ids), np.float32)
        if writer is not None:
            writer.write(entry.rel, entry.path, entry.height, entry.width, ids, scores, masks,
                         names, coco_ids)  # fmt: skip
        if labelme_dir is None:
            return
        path = labelme_dir / PurePosixPath(entry.rel).with_suffix(".json")
        polys = [mask_to_polygons(m, mode="all") for m in masks]
        labels = [names.get(int(c), str(int(c))) for c in ids]
        record = labelme_record(entry.path, entry.height, entry.width,
                                list(zip(labels, polys, strict=True)), json_dir=path.parent)  # fmt: skip
        extras = self._extras.get(entry.id)
        if extras:
            counts = [sum(len(p) >= 3 for p in ps) for ps in polys]
            record = merge_labelme(record, extras, list(zip(labels, masks, strict=True)), counts)
        write_labelme(path, record)

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
                writer = DatasetWriter(tmp, [fmt]) if fmt != "labelme" else None
                for e in done:
                    objs = self.get(e.id)
                    ids = np.array([self._class_id(o["label"]) for o in objs], np.int64)
                    masks = np.stack([rle_to_mask(o["rle"]) for o in objs]) if objs else (
                        np.zeros((0, e.height, e.width), bool))  # fmt: skip
                    self._write(e, ids, masks, writer, Path(tmp) if fmt == "labelme" else None)
                if fmt == "yolo" and names:  # relative: the zip goes to other machines
                    write_data_yaml(Path(tmp) / "data.yaml", [names[i] for i in sorted(names)],
                                    train=root.name, val=root.name)  # fmt: skip
                return _zip_folder(Path(tmp)), "application/zip"


class Conflict(Exception):
    """A write based on an outdated version; ``args[0]`` is the current version."""


class Blocked(Exception):
    """A save refused because a label file of the image could not be read at start;
    ``args[0]`` says which and why."""


def _refuse_clashes(rels: Sequence[str]) -> None:
    clashes = label_collisions(rels)
    if clashes:
        rel, other = next(iter(clashes.items()))
        stem = rel.rsplit(".", 1)[0]
        more = f" (and {len(clashes) - 1} more such pairs)" if len(clashes) > 1 else ""
        raise ArgumentError(
            f"images: {other} and {rel} would share the label files {stem}.txt / {stem}.json"
            f"{more}; rename one of them or move it to another folder"
        )


def _mark_crowd(part: Path, flags: Sequence[bool]) -> None:
    """Set ``iscrowd`` in an image's COCO part, object for object."""
    data = json.loads(part.read_text(encoding="utf-8"))
    for ann, flag in zip(data["annotations"], flags, strict=True):
        ann["iscrowd"] = int(flag)
    atomic_write_text(part, json.dumps(data))


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
