"""Dataset writers for auto-annotation: YOLO-seg, COCO instances and LabelMe, resumable.

Layout under ``output_dir`` (``<rel>`` = the image's path relative to the data root):

- YOLO: ``<rel stem>.txt`` per image (an empty file when it has no objects) and ``data.yaml``.
- LabelMe: ``<rel stem>.json`` per image (``shapes: []`` when it has no objects).
- COCO: ``instances.json``. COCO is one file, so each image's record is first written to
  ``.coco_parts/<rel>.json`` (its resume marker); at the end of a run every part of the
  current image list is merged, streamed, into ``instances.json``. Images already in an
  existing ``instances.json`` that this run did not label are kept (a run over a subset never
  shrinks the dataset, even with ``.coco_parts`` deleted); an existing file that cannot be
  read as COCO stops the run before any work. The parts are kept so a later run can resume or
  add images; delete ``.coco_parts`` once the dataset is final.

Every file is written atomically (temporary file + ``os.replace``), so a killed run leaves
whole files only and an image counts as done only when all its outputs exist. Temporary
files a killed run left behind are removed when the next run starts (:meth:`DatasetWriter.prepare`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np

from samkit.errors import ArgumentError, SamkitError
from samkit.formats.coco import CocoWriter
from samkit.formats.labelme import labelme_record, write_labelme
from samkit.formats.yolo import format_yolo_lines, write_data_yaml, write_yolo
from samkit.io_utils import atomic_write_text, file_mode
from samkit.polygons import PolygonMode, mask_to_polygons

__all__ = ["FORMATS", "DatasetWriter", "parse_formats"]

FORMATS = ("yolo", "coco", "labelme")
DEFAULT_POLYGON_MODE: dict[str, PolygonMode] = {"yolo": "merge", "coco": "all", "labelme": "all"}
COCO_FILE = "instances.json"
PARTS_DIR = ".coco_parts"
SUMMARY_FILE = "summary.json"
# Temporary files of samkit's atomic writes: ".<name>.<8 mkstemp characters>.tmp".
_TMP_NAME = re.compile(r"^\.(.+\.(txt|json|yaml))\.[a-z0-9_]{8}\.tmp$")

logger = logging.getLogger("samkit")


def parse_formats(value: str | Sequence[str]) -> tuple[str, ...]:
    """``"yolo"``, ``"yolo,coco"`` or a list -> a tuple of known format names."""
    items = value.split(",") if isinstance(value, str) else list(value)
    out = tuple(dict.fromkeys(str(f).strip().lower() for f in items if str(f).strip()))
    bad = [f for f in out if f not in FORMATS]
    if not out or bad:
        raise ArgumentError(f"format must be one or more of {', '.join(FORMATS)}, got {value!r}")
    return out


class DatasetWriter:
    """Writes one image's objects in every requested format and merges COCO at the end.

    Args:
        output_dir: folder for every label file.
        formats: names from :data:`FORMATS`.
        segmentation: COCO segmentation, ``"rle"`` (lossless, keeps holes) or ``"polygon"``.
        polygon_mode: ``"all"`` / ``"largest"`` / ``"merge"`` for every polygon format, or None
            for each format's default (YOLO ``merge``: one line per object; COCO and LabelMe
            ``all``: every part its own polygon of the same object).
        tolerance: Douglas-Peucker tolerance in pixels (0 keeps every contour vertex).
    """

    def __init__(
        self,
        output_dir: str | os.PathLike[str],
        formats: Sequence[str],
        *,
        segmentation: Literal["rle", "polygon"] = "rle",
        polygon_mode: PolygonMode | None = None,
        tolerance: float = 0.0,
    ) -> None:
        if segmentation not in ("rle", "polygon"):
            raise ArgumentError(f"segmentation must be 'rle' or 'polygon', got {segmentation!r}")
        if polygon_mode is not None and polygon_mode not in ("all", "largest", "merge"):
            raise ArgumentError(
                f"polygon_mode must be 'all', 'largest', 'merge' or None, got {polygon_mode!r}"
            )
        if not float(tolerance) >= 0:
            raise ArgumentError(f"tolerance must be >= 0 (pixels), got {tolerance!r}")
        self.output_dir = Path(output_dir)
        self.formats = parse_formats(formats)
        self.segmentation = segmentation
        self.modes: dict[str, PolygonMode] = {
            f: polygon_mode or DEFAULT_POLYGON_MODE[f] for f in FORMATS
        }
        self.tolerance = float(tolerance)

    # ------------------------------------------------------------------------------ paths
    def paths(self, rel: str) -> dict[str, Path]:
        """The file each format writes for the image at ``rel`` (posix, relative to the root)."""
        p = PurePosixPath(rel)
        out: dict[str, Path] = {}
        if "yolo" in self.formats:
            out["yolo"] = self.output_dir / p.with_suffix(".txt")
        if "labelme" in self.formats:
            out["labelme"] = self.output_dir / p.with_suffix(".json")
        if "coco" in self.formats:
            out["coco"] = self.output_dir / PARTS_DIR / f"{p}.json"
        return out

    def reserved(self) -> set[Path]:
        """Files of the run itself, which no image's label may overwrite."""
        return {
            self.output_dir / "data.yaml",
            self.output_dir / COCO_FILE,
            self.output_dir / SUMMARY_FILE,
        }

    def prepare(self) -> int:
        """Before a run: check that an existing ``instances.json`` can be merged into (raises
        :class:`~samkit.errors.SamkitError` otherwise) and remove the temporary files of a
        killed run. Returns how many were removed."""
        if "coco" in self.formats:
            _read_coco(self.output_dir / COCO_FILE)
        removed = 0
        if not self.output_dir.is_dir():
            return removed
        for dirpath, _, filenames in os.walk(self.output_dir):
            for name in filenames:
                if _TMP_NAME.match(name):
                    _unlink_quietly(os.path.join(dirpath, name))
                    removed += 1
        return removed

    def is_done(self, rel: str) -> bool:
        return all(p.is_file() for p in self.paths(rel).values())

    # ------------------------------------------------------------------------------ write
    def write(
        self,
        rel: str,
        image_path: Path,
        height: int,
        width: int,
        class_ids: np.ndarray,
        scores: np.ndarray,
        masks: np.ndarray,
        names: Mapping[int, str],
        coco_ids: Mapping[int, int],
    ) -> None:
        """Write one image's objects: ``masks`` (N, H, W) bool with their ``class_ids`` (N,)
        and ``scores`` (N,), row for row."""
        paths = self.paths(rel)
        polys_cache: dict[PolygonMode, list[list[np.ndarray]]] = {}

        def polygons(mode: PolygonMode) -> list[list[np.ndarray]]:
            if mode not in polys_cache:
                polys_cache[mode] = [
                    mask_to_polygons(m, mode=mode, tolerance=self.tolerance) for m in masks
                ]
            return polys_cache[mode]

        if "yolo" in paths:
            lines = format_yolo_lines(polygons(self.modes["yolo"]), class_ids, width, height)
            write_yolo(paths["yolo"], lines)
        if "labelme" in paths:
            shapes = [
                (names.get(int(c), str(int(c))), polys)
                for c, polys in zip(class_ids, polygons(self.modes["labelme"]), strict=True)
            ]
            record = labelme_record(
                image_path, height, width, shapes, json_dir=paths["labelme"].parent
            )
            write_labelme(paths["labelme"], record)
        if "coco" in paths:
            self._write_coco_part(paths["coco"], rel, height, width, class_ids, scores, masks,
                                  names, coco_ids)  # fmt: skip

    def _write_coco_part(
        self,
        path: Path,
        rel: str,
        height: int,
        width: int,
        class_ids: np.ndarray,
        scores: np.ndarray,
        masks: np.ndarray,
        names: Mapping[int, str],
        coco_ids: Mapping[int, int],
    ) -> None:
        cats = {coco_ids[int(c)]: names.get(int(c), str(int(c))) for c in class_ids}
        coco = CocoWriter(
            cats or {1: "object"},
            segmentation=self.segmentation,
            tolerance=self.tolerance,
            polygon_mode=self.modes["coco"],
        )
        image_id = coco.add_image(rel, height, width)
        for cls, score, mask in zip(class_ids, scores, masks, strict=True):
            coco.add_annotation(image_id, coco_ids[int(cls)], mask, score=float(score))
        anns = [
            {k: v for k, v in a.items() if k not in ("id", "image_id")} for a in coco.annotations
        ]
        part = {"file_name": rel, "height": height, "width": width, "annotations": anns}
        atomic_write_text(path, json.dumps(part))

    # ------------------------------------------------------------------------------ finish
    def finalize(
        self,
        rels: Sequence[str],
        names: Mapping[int, str],
        coco_ids: Mapping[int, int],
        data_root: Path,
    ) -> int:
        """Write ``data.yaml`` (YOLO) and merge the COCO parts of ``rels`` (in this order) into
        ``instances.json``; returns how many images of the existing file were kept because
        this run did not label them."""
        if "yolo" in self.formats:
            n = max(names, default=-1) + 1
            table = [names.get(i, str(i)) for i in range(n)]
            if table:
                root = data_root.resolve()
                write_data_yaml(
                    self.output_dir / "data.yaml",
                    table,
                    root=root.parent,
                    train=root.name,
                    val=root.name,
                )
        if "coco" in self.formats:
            return self._merge_coco(rels, names, coco_ids)
        return 0

    def _coco_records(
        self, rels: Sequence[str]
    ) -> tuple[list[tuple[str, Any]], int, dict[int, str]]:
        """``(file_name, record)`` in output order: the existing file's images in its order
        (this run's part replacing the old record where there is one), then new images in
        ``rels`` order. A record is a part path or an existing ``(image, annotations)``.
        Also returns how many old images this run did not cover, and the old categories."""
        old_images, old_anns, old_cats = _read_coco(self.output_dir / COCO_FILE)
        fresh = set(rels)
        out: list[tuple[str, Any]] = []
        kept = 0
        for image in old_images:
            name = str(image["file_name"])
            part = self.paths(name)["coco"] if name in fresh else None
            if part is not None and part.is_file():
                out.append((name, part))
            else:
                out.append((name, (image, old_anns.get(image["id"], []))))
                kept += name not in fresh
        known = {str(image["file_name"]) for image in old_images}
        for rel in rels:
            part = self.paths(rel)["coco"]
            if rel not in known and part.is_file():
                out.append((rel, part))
        return out, kept, old_cats

    def _merge_coco(
        self, rels: Sequence[str], names: Mapping[int, str], coco_ids: Mapping[int, int]
    ) -> int:
        """Stream the parts (and the existing file's other images) into ``instances.json``
        (memory bounded by the existing file), atomically. Image ids follow the output order
        (1-based), annotation ids run over the whole file."""
        records, kept, categories = self._coco_records(rels)
        categories.update({coco_ids.get(c, c + 1): name for c, name in names.items()})
        target = self.output_dir / COCO_FILE
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            fd, tmp_name = tempfile.mkstemp(
                dir=self.output_dir, prefix=f".{COCO_FILE}.", suffix=".tmp"
            )
            stack.callback(_unlink_quietly, tmp_name)
            ann_file = stack.enter_context(tempfile.TemporaryFile("w+", encoding="utf-8"))
            out = stack.enter_context(os.fdopen(fd, "w", encoding="utf-8"))
            out.write(
                '{"info": {"description": "written by samkit auto_annotate"}, "licenses": [], "images": ['
            )
            ann_id = 0
            for image_id, (name, record) in enumerate(records, start=1):
                if isinstance(record, Path):
                    part = json.loads(record.read_text(encoding="utf-8"))
                    anns = part["annotations"]
                else:
                    part, anns = record
                image = {"id": image_id, "file_name": name,
                         "height": part["height"], "width": part["width"]}  # fmt: skip
                out.write(("" if image_id == 1 else ", ") + json.dumps(image))
                for ann in anns:
                    ann_id += 1
                    body = {k: v for k, v in ann.items() if k not in ("id", "image_id")}
                    categories.setdefault(int(ann["category_id"]), str(ann["category_id"]))
                    record_out = {"id": ann_id, "image_id": image_id, **body}
                    ann_file.write(("" if ann_id == 1 else ", ") + json.dumps(record_out))
            out.write('], "annotations": [')
            ann_file.seek(0)
            while chunk := ann_file.read(1 << 20):
                out.write(chunk)
            cats = [
                {"id": cid, "name": name, "supercategory": ""}
                for cid, name in sorted(categories.items())
            ]
            out.write('], "categories": ' + json.dumps(cats) + "}\n")
            out.flush()
            os.fsync(out.fileno())
            out.close()
            os.chmod(tmp_name, file_mode(target))  # mkstemp's 0600 -> as every other file
            os.replace(tmp_name, target)
        if kept:
            logger.info("%s: kept %d images of the existing file that this run did not label",
                        target, kept)  # fmt: skip
        return kept

    def write_summary(self, summary: Mapping[str, Any]) -> Path:
        return atomic_write_text(
            self.output_dir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n"
        )


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _read_coco(path: Path) -> tuple[list[dict[str, Any]], dict[Any, list[Any]], dict[int, str]]:
    """An existing instances file as (images, annotations by image id, categories); empty when
    there is none. Raises :class:`~samkit.errors.SamkitError` when it is not COCO instances."""
    if not path.exists():
        return [], {}, {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        images = [dict(i, file_name=str(i["file_name"])) for i in data["images"]]
        anns: dict[Any, list[Any]] = {}
        for ann in data.get("annotations", []):
            anns.setdefault(ann["image_id"], []).append(ann)
            int(ann["category_id"])
        cats = {int(c["id"]): str(c["name"]) for c in data.get("categories", [])}
        for image in images:
            int(image["height"]), int(image["width"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise SamkitError(
            f"{path} exists but cannot be read as COCO instances to merge into "
            f"({type(exc).__name__}: {exc}); move it away or choose another output_dir"
        ) from None
    return images, anns, cats
