"""Labelled datasets for evaluation and training: one reader interface over every format.

``open_dataset(data, images=None, *, min_area=0)`` recognises the format from the path and
returns a :class:`Dataset`, a sequence of :class:`Sample` (one per image) whose
:class:`Instance` masks are decoded when the sample is accessed. The per-format parsing lives in
:mod:`samkit.formats` beside the writers (one parser per format):

======================================  ===============================================
``data``                                format
======================================  ===============================================
``instances.json`` (images+annotations)  COCO instances (polygons, RLE; crowd skipped)
``data.yaml``                            YOLO-seg, split ``val`` (``split=`` to change)
folder with ``labels/`` (+ ``images/``)  YOLO-seg
folder with ``masks/`` (+ ``images/``)   mask PNGs (:mod:`samkit.formats.mask_png`)
folder of LabelMe ``*.json``             LabelMe (shapes with one ``group_id`` = one object)
folder of images only                    unlabelled: samples with no instances
======================================  ===============================================

``images`` is the image folder when it does not sit where the format expects it (COCO: the
JSON's folder, then its ``images/`` subfolder; YOLO/mask PNGs: ``<root>/images``; LabelMe:
``imagePath`` relative to each JSON).

Coordinates: masks are ``(H, W)`` bool in original-image pixels; boxes XYXY pixels. Bad or
inconsistent annotations (a polygon with < 3 points, a mask outside or of another size than the
image, an annotation of an unknown image, a missing image file) are logged with their file,
listed in :attr:`Dataset.problems` and skipped -- never fatal, never silently dropped. Only a
``data`` that is not a dataset at all raises :class:`~samkit.errors.DatasetError`.

Counts (documented, tested): ``len(ds)`` images; ``ds.crowd`` COCO crowd annotations skipped;
``ds.problems`` entries skipped; ``ds.num_annotations`` usable annotations before ``min_area``;
instances below ``min_area`` pixels are dropped on access and counted in ``ds.below_min_area``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np

from samkit.errors import DatasetError
from samkit.formats.readers import Problem, Record, read_dataset
from samkit.masks import mask_to_box

__all__ = ["Dataset", "DatasetError", "Instance", "Problem", "Sample", "open_dataset"]

logger = logging.getLogger("samkit")


@dataclass(frozen=True, eq=False)
class Instance:
    """One labelled object.

    mask: ``(H, W)`` bool in original-image pixels. category: class name (``""`` when the
    format has none). instance_id: stable within the dataset (COCO annotation id,
    ``"<image stem>:<row>"`` for YOLO, ...). bbox: the annotation's own box XYXY float pixels
    (COCO ``bbox`` XYWH converted, ``x2 = x + w``), None when the format has none.
    """

    mask: np.ndarray
    category: str
    instance_id: str
    bbox: np.ndarray | None = None

    @property
    def area(self) -> int:
        """Foreground pixel count."""
        return int(np.count_nonzero(self.mask))

    @property
    def box(self) -> np.ndarray:
        """``(4,)`` float64 XYXY tight box of the mask, inclusive max
        (:func:`samkit.masks.mask_to_box`)."""
        return mask_to_box(self.mask).astype(np.float64)


@dataclass(frozen=True, eq=False)
class Sample:
    """One image and its instances. ``path``: the image file; ``height`` / ``width``: its
    size (after EXIF orientation); ``name``: the path relative to the image root (reports)."""

    path: Path
    height: int
    width: int
    instances: tuple[Instance, ...]
    name: str = ""

    def image(self) -> np.ndarray:
        """The image, ``(H, W, 3)`` uint8 RGB.

        Raises:
            SourceError: unreadable, or its size differs from the annotation's.
        """
        from samkit.errors import SourceError
        from samkit.sources import read_image

        rgb = read_image(self.path)
        if rgb.shape[:2] != (self.height, self.width):
            raise SourceError(
                f"{self.path}: image is {rgb.shape[0]}x{rgb.shape[1]} but the annotations "
                f"say {self.height}x{self.width}"
            )
        return rgb


class Dataset(Sequence[Sample]):
    """Images with their instances; ``ds[i]`` decodes the masks of image ``i``.

    Attributes: ``names`` class names, ``problems`` skipped entries, ``format`` ("coco",
    "yolo", "labelme", "masks" or "images"), ``root`` the annotation path, ``crowd``,
    ``num_annotations``, ``below_min_area`` (see the module docstring), ``min_area``.
    """

    def __init__(
        self,
        records: list[Record],
        *,
        names: list[str],
        problems: list[Problem],
        format: str,
        root: Path,
        crowd: int = 0,
        min_area: int = 0,
    ) -> None:
        self._records = records
        self.names = names
        self.problems = problems
        self.format = format
        self.root = root
        self.crowd = crowd
        self.min_area = int(min_area)
        self.num_annotations = sum(len(r.objects) for r in records)
        self.below_min_area = 0
        self._seen_small: set[str] = set()
        self._reported: set[str] = {p.file for p in problems}

    def __len__(self) -> int:
        return len(self._records)

    def subset(self, indices: Sequence[int]) -> Dataset:
        """The images at ``indices`` (e.g. a held-out split) as a Dataset of the same format."""
        return Dataset(
            [self._records[i] for i in indices],
            names=self.names,
            problems=[],
            format=self.format,
            root=self.root,
            min_area=self.min_area,
        )

    @overload
    def __getitem__(self, index: int) -> Sample: ...
    @overload
    def __getitem__(self, index: slice) -> list[Sample]: ...
    def __getitem__(self, index: int | slice) -> Sample | list[Sample]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self._sample(self._records[index])

    def __iter__(self) -> Iterator[Sample]:
        for record in self._records:
            yield self._sample(record)

    def path(self, index: int) -> Path:
        """The image file of image ``index``, without reading it."""
        return self._records[index].path

    def readable(self) -> Dataset:
        """The images whose header can be read (their size is then known); each other one is
        reported in :attr:`problems` with its file and left out (:func:`samkit.items.each_item`).
        """
        from samkit.items import each_item

        ok = [
            i
            for i, _ in each_item(
                range(len(self)),
                lambda i: self._records[i].size(),
                name=lambda i: str(self.path(i)),
                report=self._problem,
            )
        ]
        if len(ok) == len(self):
            return self
        out = self.subset(ok)
        out.problems = self.problems
        out._reported = self._reported
        return out

    def _problem(self, where: str, message: str) -> None:
        if where not in self._reported:
            self._reported.add(where)
            self.problems.append(Problem(where, message))
            logger.warning("skipped %s: %s", where, message)

    def _sample(self, record: Record) -> Sample:
        h, w = record.size()
        instances = []
        for obj in record.objects:
            try:
                mask = obj.decode(h, w)
            except ValueError as e:
                self._problem(obj.where, str(e))
                continue
            if mask.shape != (h, w):
                self._problem(obj.where, f"mask is {mask.shape} but the image is {h}x{w}")
                continue
            if not mask.any():
                self._problem(obj.where, "empty mask (nothing inside the image)")
                continue
            if self.min_area and int(mask.sum()) < self.min_area:
                if obj.where not in self._seen_small:
                    self._seen_small.add(obj.where)
                    self.below_min_area += 1
                continue
            bbox = None if obj.bbox is None else np.asarray(obj.bbox, dtype=np.float64)
            instances.append(Instance(mask, obj.category, obj.instance_id, bbox))
        return Sample(record.path, h, w, tuple(instances), record.name)

    def summary(self) -> str:
        """One line: format, images, annotations, crowd skipped, problems."""
        return (
            f"{self.format} {self.root}: {len(self)} images, {self.num_annotations} annotations"
            f", {self.crowd} crowd skipped, {len(self.problems)} problems"
        )


def open_dataset(
    data: str | os.PathLike[str],
    images: str | os.PathLike[str] | None = None,
    *,
    min_area: int = 0,
    split: str = "val",
    format: str | None = None,
) -> Dataset:
    """Open a labelled dataset (see the module docstring for formats and counts).

    Args:
        data: annotation file or dataset folder.
        images: image folder when it is not where the format expects it.
        min_area: instances with fewer mask pixels are dropped (counted in ``below_min_area``).
        split: the ``data.yaml`` key naming the images of a YOLO dataset.
        format: force ``"coco"``, ``"yolo"``, ``"labelme"``, ``"masks"`` or ``"images"``.

    Raises:
        DatasetError: ``data`` does not exist or is not a dataset in a known format.
    """
    if isinstance(min_area, bool) or not isinstance(min_area, int) or min_area < 0:
        raise DatasetError(f"min_area must be a non-negative int (pixels), got {min_area!r}")
    found = read_dataset(Path(data), None if images is None else Path(images), split, format)
    for p in found.problems:
        logger.warning("skipped %s: %s", p.file, p.message)
    return Dataset(
        found.records,
        names=found.names,
        problems=list(found.problems),
        format=found.format,
        root=Path(data),
        crowd=found.crowd,
        min_area=min_area,
    )
