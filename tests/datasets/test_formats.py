"""Label formats: YOLO-seg / boxes / data.yaml, COCO (checked with pycocotools), LabelMe, atomic
writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from samkit import io_utils
from samkit.errors import ArgumentError, ArgumentTypeError, FormatError
from samkit.formats import (
    CocoWriter,
    atomic_write_bytes,
    atomic_write_text,
    format_yolo_lines,
    labelme_record,
    read_coco_boxes,
    read_labelme,
    read_yolo_boxes,
    read_yolo_seg,
    write_data_yaml,
    write_labelme,
    write_yolo,
)
from samkit.formats.mask_png import read_mask_png, write_mask_png
from samkit.formats.yolo import read_data_yaml, read_yolo_seg_rows
from samkit.polygons import mask_to_polygons, polygons_to_mask

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _ring(h: int = 90, w: int = 120) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    cv2.circle(m, (60, 45), 40, 1, -1)
    cv2.circle(m, (60, 45), 18, 0, -1)
    return m.astype(bool)


def _two_squares(h: int = 90, w: int = 120) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[5:30, 5:30] = True
    m[50:80, 80:115] = True
    return m


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------------ YOLO


def test_yolo_lines_roundtrip(tmp_path: Path) -> None:
    h, w = 90, 120
    objects = [mask_to_polygons(_two_squares(h, w)), mask_to_polygons(_ring(h, w))]
    lines = format_yolo_lines(objects, [3, 0], w, h)
    assert len(lines) == 3  # two parts of object 0 -> two lines, one for the ring
    assert [line.split()[0] for line in lines] == ["3", "3", "0"]
    path = write_yolo(tmp_path / "labels" / "img.txt", lines)
    rows = read_yolo_seg(path)
    expected = [(3, p) for p in objects[0]] + [(0, p) for p in objects[1]]
    assert len(rows) == len(expected)
    for (cls, pts), (cls_ref, poly) in zip(rows, expected, strict=True):
        assert cls == cls_ref
        assert np.abs(pts * [w, h] - poly).max() <= 0.5e-6 * max(w, h) + 1e-9
    assert _no_temp_files(path.parent)


@pytest.mark.parametrize(
    ("x", "img_w", "expected"),
    [
        (2.0, 3, "0.666667"),  # truncation would give 0.666666
        (1.0, 3, "0.333333"),
        (5.0, 7, "0.714286"),  # 0.7142857...: truncation 0.714285
        (-4.0, 10, "0.000000"),  # clipped, and no "-0.000000"
        (-0.0, 10, "0.000000"),
        (15.0, 10, "1.000000"),  # clipped
    ],
)
def test_yolo_rounds_and_clips(x: float, img_w: int, expected: str) -> None:
    poly = np.array([[x, 0.0], [1.0, 1.0], [2.0, 0.0]])
    (line,) = format_yolo_lines([[poly]], [1], img_w, 10)
    assert line.split()[1] == expected


def test_yolo_skips_degenerate_polygons_and_writes_empty_file(tmp_path: Path) -> None:
    lines = format_yolo_lines([[np.zeros((2, 2))], []], [0, 1], 10, 10)
    assert lines == []
    path = write_yolo(tmp_path / "empty.txt", lines)
    assert path.read_text() == ""
    assert read_yolo_seg(path) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"class_ids": [0, 1]}, "class_ids has 2 entries"),
        ({"class_ids": [-1]}, r"class_ids\[0\]"),
        ({"class_ids": [True]}, r"class_ids\[0\]"),
        ({"img_w": 0}, "img_w and img_h"),
        ({"polygons_per_object": [[np.zeros((4, 3))]]}, r"polygons_per_object\[0\]"),
    ],
)
def test_yolo_invalid_input(kwargs: dict, match: str) -> None:
    args: dict[str, Any] = {
        "polygons_per_object": [[np.zeros((4, 2))]],
        "class_ids": [0],
        "img_w": 10,
        "img_h": 10,
    }
    args.update(kwargs)
    with pytest.raises(ArgumentError, match=match):
        format_yolo_lines(**args)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("0 0.1 0.1 0.2 0.2\n", "box line"),
        ("0 0.1 0.1 0.2 0.2 0.3\n", "n >= 3"),
        ("0 0.1 0.1 0.2 0.2 0.3 0.3 0.4\n", "n >= 3"),
        ("a 0.1 0.1 0.2 0.2 0.3 0.3\n", "class id"),
        ("1.5 0.1 0.1 0.2 0.2 0.3 0.3\n", "class id"),
        ("0 0.1 x 0.2 0.2 0.3 0.3\n", "coordinates must be numbers"),
    ],
)
def test_read_yolo_seg_invalid(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("\n" + text)
    with pytest.raises(FormatError, match=f"bad.txt:2: .*{match}"):
        read_yolo_seg(path)


def test_read_yolo_boxes(tmp_path: Path) -> None:
    path = tmp_path / "boxes.txt"
    path.write_text("0 0.5 0.5 0.2 0.4\n\n7 0.1 0.2 0.3 0.4 0.93\n")
    assert read_yolo_boxes(path) == [(0, 0.5, 0.5, 0.2, 0.4), (7, 0.1, 0.2, 0.3, 0.4)]
    path.write_text("0 0.1 0.1 0.2 0.2 0.3 0.3\n")
    with pytest.raises(FormatError, match=r"boxes\.txt:1: expected 'class cx cy w h'"):
        read_yolo_boxes(path)


@pytest.mark.parametrize(
    "names",
    [
        ["person", "car"],
        {0: "person", 1: "traffic light", 2: "yes", 3: "a: b", 4: "héllo", 5: "10", 6: " pad"},
    ],
)
def test_data_yaml_parses_with_pyyaml(tmp_path: Path, names: list[str] | dict[int, str]) -> None:
    yaml = pytest.importorskip("yaml")
    path = write_data_yaml(tmp_path / "data.yaml", names, root=tmp_path / "my data", test="t")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    expected = dict(enumerate(names)) if isinstance(names, list) else names
    assert data["names"] == expected
    assert data["nc"] == len(expected)
    assert data["path"] == str(tmp_path / "my data")
    assert (data["train"], data["val"], data["test"]) == ("images/train", "images/val", "t")


@pytest.mark.parametrize(
    ("names", "match"), [({1: "a"}, "0..n-1"), ({0: ""}, "non-empty"), ("abc", "names must")]
)
def test_data_yaml_invalid(tmp_path: Path, names: object, match: str) -> None:
    with pytest.raises(ArgumentError, match=match):
        write_data_yaml(tmp_path / "d.yaml", names)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("names: [a, b\n", "not a plain YAML file"),
        ("names: !!python/object/apply:os.system ['echo hi']\n", "not a plain YAML file"),
        ("- a\n- b\n", "a data.yaml holds a mapping, got list"),
        ("names: person\n", "'names' must be a list or a mapping"),
        ("names: {a: x}\n", "'names' must be a list or a mapping"),
    ],
)
def test_read_data_yaml_malformed(tmp_path: Path, text: str, match: str) -> None:
    pytest.importorskip("yaml")
    path = tmp_path / "data.yaml"
    path.write_text(text)
    with pytest.raises(FormatError, match=rf"data\.yaml: {match}"):
        read_data_yaml(path)


def test_yolo_label_that_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "bin.txt"
    path.write_bytes(b"\xff\xd8\xff\xe0 jpeg bytes")
    for read in (read_yolo_seg, read_yolo_boxes, read_yolo_seg_rows):
        with pytest.raises(FormatError, match=r"bin\.txt: a YOLO label file is UTF-8 text"):
            read(path)


# ------------------------------------------------------------------------------- mask PNGs


@pytest.mark.parametrize(
    ("mask", "match"),
    [
        (np.zeros((2, 3, 4), np.uint8), r"shape \(H, W\) with H, W > 0, got \(2, 3, 4\)"),
        (np.zeros((0, 5), bool), r"got \(0, 5\)"),
        (np.array([[0, 70000]]), r"0\.\.65535, got 0\.\.70000"),
        (np.array([[-1, 1]]), r"0\.\.65535, got -1\.\.1"),
    ],
)
def test_write_mask_png_invalid(tmp_path: Path, mask: np.ndarray, match: str) -> None:
    with pytest.raises(ArgumentError, match=f"mask .*{match}"):
        write_mask_png(tmp_path / "m.png", mask)
    assert not (tmp_path / "m.png").exists()


def test_read_mask_png_unreadable_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.png"
    path.write_bytes(b"not a png")
    with pytest.raises(FormatError, match=r"m\.png: not a readable PNG"):
        read_mask_png(path)
    write_mask_png(path, np.array([[0, 300]]))
    assert read_mask_png(path).tolist() == [[0, 300]]


# ------------------------------------------------------------------------------------ COCO


def test_coco_rle_loads_in_pycocotools_exactly(tmp_path: Path) -> None:
    coco_api = pytest.importorskip("pycocotools.coco")
    mask_utils = pytest.importorskip("pycocotools.mask")
    masks = [_ring(), _two_squares(), np.pad(np.ones((1, 1), bool), ((3, 86), (7, 112)))]
    writer = CocoWriter(["ring", "squares"])
    iid = writer.add_image("a.jpg", 90, 120)
    ids = [
        writer.add_annotation(iid, 1, masks[0], score=0.9),
        writer.add_annotation(iid, 2, masks[1]),
        writer.add_annotation(iid, 2, masks[2]),
        writer.add_annotation(iid, 1, np.zeros((90, 120), bool)),  # empty: not written
    ]
    assert ids == [1, 2, 3, None]
    path = writer.write(tmp_path / "instances.json")
    coco = coco_api.COCO(str(path))
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[iid]))
    assert len(anns) == 3
    for ann, mask in zip(anns, masks, strict=True):
        assert np.array_equal(coco.annToMask(ann).astype(bool), mask)  # holes preserved
        assert ann["area"] == int(mask.sum())
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert ann["bbox"] == mask_utils.toBbox(rle).tolist()
        assert ann["iscrowd"] == 0
    assert anns[0]["score"] == 0.9 and "score" not in anns[1]
    assert anns[2]["bbox"] == [7, 3, 1, 1]
    assert coco.loadCats([1, 2]) == [
        {"id": 1, "name": "ring", "supercategory": ""},
        {"id": 2, "name": "squares", "supercategory": ""},
    ]
    assert _no_temp_files(tmp_path)


def test_coco_polygons(tmp_path: Path) -> None:
    coco_api = pytest.importorskip("pycocotools.coco")
    writer = CocoWriter({5: "thing"}, segmentation="polygon")
    iid = writer.add_image("b.png", 90, 120)
    squares = _two_squares()
    squares[85, 2:4] = True  # a 2-pixel sliver: a 2x1 rectangle along the pixel edges
    sliver = np.pad(np.ones((1, 2), bool), ((0, 89), (0, 118)))
    assert writer.add_annotation(iid, 5, squares) == 1
    assert writer.add_annotation(iid, 5, sliver) == 2
    assert writer.add_annotation(iid, 5, np.zeros((90, 120), bool)) is None
    coco = coco_api.COCO(str(writer.write(tmp_path / "poly.json")))
    ann, ann_sliver = coco.loadAnns(coco.getAnnIds())
    assert len(ann["segmentation"]) == 3
    assert all(len(p) >= 8 and len(p) % 2 == 0 for p in ann["segmentation"])
    (sliver_xy,) = ann_sliver["segmentation"]
    corners = sorted(map(tuple, np.reshape(sliver_xy, (-1, 2)).tolist()))
    assert corners == [(0, 0), (0, 1), (2, 0), (2, 1)]
    # Polygons follow the pixel edges, which pycocotools rasterises back exactly.
    np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), squares)
    np.testing.assert_array_equal(coco.annToMask(ann_sliver).astype(bool), sliver)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda w: w.add_annotation(99, 1, np.zeros((4, 4), bool)), "image_id 99"),
        (lambda w: w.add_annotation(1, 7, np.zeros((4, 4), bool)), "category_id 7"),
        (lambda w: w.add_annotation(1, 1, np.zeros((5, 4), bool)), "mask has shape"),
        (lambda w: w.add_image("x.jpg", 4, 4, image_id=1), "already registered"),
        (lambda w: w.add_image("x.jpg", 0, 4), "height and width"),
    ],
)
def test_coco_writer_invalid(call: Callable[[CocoWriter], object], match: str) -> None:
    writer = CocoWriter(["a"])
    writer.add_image("a.jpg", 4, 4)
    with pytest.raises(ArgumentError, match=match):
        call(writer)


def test_coco_writer_invalid_options() -> None:
    with pytest.raises(ArgumentError, match="segmentation must be 'rle' or 'polygon', got 'mask'"):
        CocoWriter(["a"], segmentation="mask")  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="categories must be a dict id -> name or a list"):
        CocoWriter("abc")
    with pytest.raises(ArgumentError, match="categories must map int ids to str names"):
        CocoWriter({"1": "a"})  # type: ignore[dict-item]


def test_read_coco_boxes(tmp_path: Path) -> None:
    data = {
        "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 20, 30.5, 40]},
            {"id": 2, "image_id": 1, "category_id": 4, "bbox": [0, 0, 1, 1]},
            {"id": 3, "image_id": 1, "category_id": 3, "segmentation": []},
        ],
        "categories": [{"id": 3, "name": "cat"}, {"id": 4, "name": "dog"}],
    }
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps(data))
    assert read_coco_boxes(path) == {
        "a.jpg": [(3, "cat", (10.0, 20.0, 40.5, 60.0)), (4, "dog", (0.0, 0.0, 1.0, 1.0))],
        "b.jpg": [],
    }
    path.write_text("{")
    with pytest.raises(FormatError, match=r"boxes\.json: not valid JSON"):
        read_coco_boxes(path)
    path.write_text("{}")
    with pytest.raises(FormatError, match="needs 'images' and 'annotations'"):
        read_coco_boxes(path)


_IMG = {"id": 1, "file_name": "a.jpg"}
_ANN = {"id": 5, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2]}


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"images": {}, "annotations": []}, "needs 'images' and 'annotations' lists"),
        ({"images": [{"id": 1}], "annotations": []}, r"images\[0\] needs an integer 'id'"),
        ({"images": [_IMG], "annotations": [[1, 2]]}, "annotation 0 is not a JSON object"),
        (
            {"images": [_IMG], "annotations": [{**_ANN, "bbox": [1]}]},
            r"annotation 5 has bbox \[1\]",
        ),
        ({"images": [_IMG], "annotations": [{**_ANN, "image_id": 9}]}, "unknown image 9"),
        ({"images": [_IMG], "annotations": [{**_ANN, "bbox": [0, 0, "w", 1]}]}, "numeric bbox"),
        ({"images": [_IMG], "annotations": [], "categories": [{"name": "a"}]}, "'categories'"),
    ],
)
def test_read_coco_boxes_malformed_entries(tmp_path: Path, data: dict, match: str) -> None:
    """Every malformed entry is a FormatError naming the file and the entry, never a bare
    KeyError / TypeError from deep inside the reader."""
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps(data))
    with pytest.raises(FormatError, match=rf"boxes\.json: .*{match}"):
        read_coco_boxes(path)
    path.write_bytes(b"\xff\xfe\x00{")
    with pytest.raises(FormatError, match=r"boxes\.json: not valid JSON"):
        read_coco_boxes(path)


# ---------------------------------------------------------------------------------- LabelMe


def test_labelme_roundtrip(tmp_path: Path) -> None:
    h, w = 90, 120
    squares, ring = mask_to_polygons(_two_squares()), mask_to_polygons(_ring())
    record = labelme_record(
        tmp_path / "images" / "x.jpg",
        h,
        w,
        [("box", squares), ("ring", ring), ("dot", [np.zeros((2, 2))])],
        json_dir=tmp_path / "labels",
    )
    assert record["imagePath"] == "../images/x.jpg"
    assert record["imageData"] is None
    assert (record["imageHeight"], record["imageWidth"]) == (h, w)
    shapes = record["shapes"]
    assert [s["label"] for s in shapes] == ["box", "box", "ring"]
    assert [s["group_id"] for s in shapes] == [1, 1, None]
    assert all(s["shape_type"] == "polygon" for s in shapes)
    path = write_labelme(tmp_path / "labels" / "x.json", record)
    assert read_labelme(path) == record
    back = polygons_to_mask([np.array(s["points"]) for s in shapes[:2]], h, w)
    assert np.array_equal(back, _two_squares())
    assert labelme_record("a/b/c.png", 1, 1, [])["imagePath"] == "c.png"


def test_labelme_invalid(tmp_path: Path) -> None:
    with pytest.raises(ArgumentError, match=r"shapes\[0\] polygons must be \(K, 2\) arrays"):
        labelme_record("a.jpg", 4, 4, [("x", [np.zeros((3, 3))])])
    with pytest.raises(ArgumentError, match=r"shapes\[0\] must be a \(label, polygons\)"):
        labelme_record("a.jpg", 4, 4, [["x", []]])  # type: ignore[list-item]
    with pytest.raises(ArgumentError, match="img_h and img_w must be positive, got 0x4"):
        labelme_record("a.jpg", 0, 4, [])
    with pytest.raises(ArgumentError, match="missing LabelMe keys"):
        write_labelme(tmp_path / "x.json", {"shapes": []})
    (tmp_path / "y.json").write_text("[]")
    with pytest.raises(FormatError, match=r"y\.json: a LabelMe file holds a JSON object"):
        read_labelme(tmp_path / "y.json")
    (tmp_path / "y.json").write_text('{"version": "5"}')
    with pytest.raises(FormatError, match=r"y\.json: missing LabelMe keys"):
        read_labelme(tmp_path / "y.json")
    (tmp_path / "y.json").write_bytes(b"\x89PNG\r\n")
    with pytest.raises(FormatError, match=r"y\.json: not valid JSON"):
        read_labelme(tmp_path / "y.json")


# ---------------------------------------------------------------------------- atomic writes


def test_atomic_write_replaces_and_keeps_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "f.txt"
    atomic_write_text(path, "one\n")
    assert path.read_text() == "one\n"
    os.chmod(path, 0o640)
    atomic_write_bytes(path, b"two")
    assert path.read_bytes() == b"two"
    assert path.stat().st_mode & 0o777 == 0o640
    assert _no_temp_files(path.parent)


class _HalfWriter:
    """A file stand-in that writes half of the data, then fails like a full disk."""

    def __init__(self, f: Any) -> None:
        self.f = f

    def __enter__(self) -> _HalfWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()

    def write(self, data: bytes) -> int:
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        raise OSError("disk full")


@pytest.mark.parametrize("fail_in", ["write", "fsync"])
def test_atomic_write_failure_leaves_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_in: str
) -> None:
    path = tmp_path / "labels.txt"
    write_yolo(path, ["0 0.1 0.1 0.2 0.2 0.3 0.3"])
    if fail_in == "write":
        real_fdopen = os.fdopen
        monkeypatch.setattr(
            io_utils.os, "fdopen", lambda fd, mode: _HalfWriter(real_fdopen(fd, mode))
        )
    else:

        def failing_fsync(fd: int) -> None:
            raise OSError("disk full")

        monkeypatch.setattr(io_utils.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        write_yolo(path, ["1 0.5 0.5 0.6 0.6 0.7 0.7"] * 1000)
    with pytest.raises(OSError, match="disk full"):
        write_yolo(tmp_path / "new.txt", ["1 0.5 0.5 0.6 0.6 0.7 0.7"])
    monkeypatch.undo()
    assert path.read_text() == "0 0.1 0.1 0.2 0.2 0.3 0.3\n"
    assert not (tmp_path / "new.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.txt"]


def test_atomic_open_streams_then_replaces_or_leaves_nothing(tmp_path: Path) -> None:
    """The streaming form (``torch.save`` of training checkpoints writes through it)."""
    path = tmp_path / "w.bin"
    with io_utils.atomic_open(path) as f:
        f.write(b"ab")
        f.write(b"cd")
        assert not path.exists()
    assert path.read_bytes() == b"abcd"
    assert path.stat().st_mode & 0o777 == io_utils._default_file_mode()  # not mkstemp's 0o600
    with pytest.raises(RuntimeError, match="boom"), io_utils.atomic_open(path) as f:
        f.write(b"x")
        raise RuntimeError("boom")
    assert path.read_bytes() == b"abcd" and os.listdir(tmp_path) == ["w.bin"]


def test_atomic_write_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ArgumentTypeError, match="text must be str, got bytes"):
        atomic_write_text(tmp_path / "a", b"x")  # type: ignore[arg-type]
    with pytest.raises(ArgumentTypeError, match="data must be bytes, got str"):
        atomic_write_bytes(tmp_path / "a", "x")  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="directory"):
        atomic_write_bytes(tmp_path, b"x")


def test_geometry_and_formats_import_without_torch() -> None:
    code = (
        "import sys; import samkit.masks, samkit.polygons, samkit.formats; "
        "bad = [m for m in ('torch', 'pycocotools', 'yaml') if m in sys.modules]; "
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
