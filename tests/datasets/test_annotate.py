"""Auto-annotation end to end: drawn images, known boxes, a small random-weight SAM.

The written labels are compared with the engine's own masks (``SamPredictor.predict_torch``
on the same image, boxes and weights): exact for COCO RLE, IoU >= 0.95 for polygons. Random
weights draw arbitrary masks; the weights are tweaked (``label_helpers.region_like``) so the
masks are regions with a few parts and holes rather than pixel noise, which polygons cannot
represent.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

import samkit
from label_helpers import region_like
from reference import SMALL_CONFIG, randomize, save_checkpoint
from samkit import transforms
from samkit.annotate import Detections, auto_annotate, filter_boxes
from samkit.annotate.images import default_output_dir
from samkit.build import build_from_config, build_sam
from samkit.formats import read_labelme, read_yolo_seg
from samkit.polygons import mask_to_polygons, mask_to_polygons_with_holes, polygons_to_mask
from samkit.predictor import SamPredictor

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

H, W = 120, 160
NAMES = ["box", "disc", "ring", "pair"]


def _draw(kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A drawn image with its objects' boxes (N, 4) XYXY and classes (N,)."""
    img = np.full((H, W, 3), 235, np.uint8)
    if kind == "shapes":  # a filled rectangle and a disc
        cv2.rectangle(img, (12, 14), (62, 70), (200, 40, 40), -1)
        cv2.circle(img, (115, 60), 30, (40, 40, 200), -1)
        return img, np.array([[12, 14, 63, 71], [85, 30, 146, 91]], float), np.array([0, 1])
    if kind == "ring_pair":  # a ring with a hole and a two-part object
        cv2.circle(img, (50, 60), 40, (40, 160, 40), -1)
        cv2.circle(img, (50, 60), 18, (235, 235, 235), -1)
        cv2.rectangle(img, (100, 15), (125, 45), (160, 40, 160), -1)
        cv2.rectangle(img, (130, 75), (152, 105), (160, 40, 160), -1)
        return img, np.array([[10, 20, 91, 101], [100, 15, 153, 106]], float), np.array([2, 3])
    return img, np.zeros((0, 4)), np.zeros(0, int)  # "blank": no objects


KINDS = ("shapes", "ring_pair", "blank")


@pytest.fixture(scope="module")
def sam_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = build_from_config(SMALL_CONFIG)
    randomize(model, 2)
    region_like(model, 2)
    path = tmp_path_factory.mktemp("sam") / "small_sam.pth"
    return save_checkpoint(model.state_dict(), path)


@pytest.fixture(scope="module")
def sam_model(sam_ckpt: Path) -> samkit.Sam:
    return build_sam(sam_ckpt).eval()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``images/{shapes,ring_pair,blank}.png`` and the known objects of each."""
    root = tmp_path_factory.mktemp("data") / "images"
    root.mkdir()
    objects = {}
    for kind in KINDS:
        img, boxes, classes = _draw(kind)
        cv2.imwrite(str(root / f"{kind}.png"), img[..., ::-1])
        objects[kind] = (img, boxes, classes)
    return {"root": root, "objects": objects}


def _detector(dataset: dict[str, Any]) -> Any:
    """A callable detector that recognises the drawn images and returns their known boxes."""
    table = {img.tobytes(): (boxes, classes) for img, boxes, classes in dataset["objects"].values()}

    def detect(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        boxes, classes = table[image.tobytes()]
        return boxes, classes, np.linspace(0.9, 0.8, len(boxes))

    return detect


_ENGINE_CACHE: dict[tuple[bytes, bytes], np.ndarray] = {}


def _engine_masks(model: samkit.Sam, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The engine's masks (N, H, W) for these boxes, all decoded together."""
    key = (image.tobytes(), np.asarray(boxes, np.float64).tobytes())
    if key not in _ENGINE_CACHE:
        predictor = SamPredictor(model)
        predictor.set_image(image)
        b = transforms.apply_boxes(boxes, predictor.original_size, predictor.image_size)
        masks, _, _ = predictor.predict_torch(
            None, None, torch.as_tensor(b, dtype=torch.float), multimask_output=False
        )
        _ENGINE_CACHE[key] = masks[:, 0].numpy()
    return _ENGINE_CACHE[key]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _yolo_masks(path: Path) -> list[tuple[int, np.ndarray]]:
    """Every YOLO-seg line rasterised back to pixels."""
    out = []
    for cls, pts in read_yolo_seg(path):
        out.append((cls, polygons_to_mask([pts * [W, H]], H, W)))
    return out


def _count_encoder(model: samkit.Sam) -> tuple[list[int], Any]:
    calls = [0]

    def hook(*_: Any) -> None:
        calls[0] += 1

    return calls, model.image_encoder.register_forward_hook(hook)


# --------------------------------------------------------------------------- end to end


def test_callable_detector_end_to_end_every_format(
    dataset: dict[str, Any], sam_ckpt: Path, sam_model: samkit.Sam, tmp_path: Path
) -> None:
    """One run writes YOLO, COCO (RLE) and LabelMe; each read back gives the engine's masks.

    polygon_mode="all" (every part its own polygon) is the pixel-faithful polygon option; the
    default YOLO "merge" is checked in test_polygon_modes_on_engine_masks.
    """
    from pycocotools.coco import COCO

    out = tmp_path / "labels"
    summary = auto_annotate(
        dataset["root"], det_model=_detector(dataset), sam_model=sam_ckpt, device="cpu",
        output_dir=out, format="yolo,coco,labelme", names=NAMES, polygon_mode="all",
        progress=False,
    )  # fmt: skip
    coco = COCO(str(out / "instances.json"))
    coco_images = {img["file_name"]: img["id"] for img in coco.dataset["images"]}
    assert sorted(coco_images) == [f"{k}.png" for k in sorted(KINDS)]
    objects = 0
    for kind, (img, boxes, classes) in dataset["objects"].items():
        engine = _engine_masks(sam_model, img, boxes) if len(boxes) else np.zeros((0, H, W), bool)
        keep = engine.any(axis=(1, 2))
        engine, classes = engine[keep], classes[keep]
        objects += len(engine)
        # COCO RLE through pycocotools: exactly the engine's masks, classes in order.
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[coco_images[f"{kind}.png"]]))
        assert [a["category_id"] for a in anns] == (classes + 1).tolist()
        for ann, mask in zip(anns, engine, strict=True):
            np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), mask)
        # YOLO-seg, read back and rasterised: the lines of a class (one object per class here)
        # together give that object's mask.
        lines = _yolo_masks(out / f"{kind}.txt")
        assert sorted({c for c, _ in lines}) == sorted(classes.tolist())
        for cls, mask in zip(classes, engine, strict=True):
            raster = np.any([r for c, r in lines if c == cls], axis=0)
            iou = _iou(raster, mask)
            print(f"{kind}: YOLO polygons vs engine mask IoU {iou:.4f} ({mask.sum()} px)")
            assert iou >= 0.95
        # LabelMe: the parts of one object share a group; together they give its mask.
        record = read_labelme(out / f"{kind}.json")
        image_path = (out / record["imagePath"]).resolve()
        assert image_path == (dataset["root"] / f"{kind}.png").resolve()
        assert (record["imageHeight"], record["imageWidth"]) == (H, W)
        groups: dict[Any, list[dict[str, Any]]] = {}
        for i, shape in enumerate(record["shapes"]):
            groups.setdefault(shape["group_id"] or f"single{i}", []).append(shape)
        assert [g[0]["label"] for g in groups.values()] == [NAMES[c] for c in classes]
        for shapes, mask in zip(groups.values(), engine, strict=True):
            raster = polygons_to_mask([np.array(s["points"]) for s in shapes], H, W)
            print(f"{kind}: LabelMe polygons vs engine mask IoU {_iou(raster, mask):.4f}")
            assert _iou(raster, mask) >= 0.95
    assert (out / "blank.txt").read_text() == ""
    assert summary.images == 3 and summary.annotated == 3 and summary.empty == 1
    assert summary.objects == objects >= 3 and summary.errors == 0
    saved = json.loads((out / "summary.json").read_text())
    assert saved["objects"] == objects and saved["empty"] == 1 and saved["skipped"] == 0
    data_yaml = (out / "data.yaml").read_text()
    assert "nc: 4" in data_yaml and "  3: pair" in data_yaml
    assert not list(out.rglob("*.tmp"))


def test_engine_masks_have_holes_and_parts(dataset: dict[str, Any], sam_model: samkit.Sam) -> None:
    """The weights draw masks worth checking: several parts, holes, not empty, not full."""
    img, boxes, _ = dataset["objects"]["ring_pair"]
    masks = _engine_masks(sam_model, img, boxes)
    img2, boxes2, _ = dataset["objects"]["shapes"]
    masks = np.concatenate([masks, _engine_masks(sam_model, img2, boxes2)])
    parts = [mask_to_polygons_with_holes(m) for m in masks]
    fill = masks.reshape(len(masks), -1).mean(1)
    print("fill", fill.round(3), "parts", [len(p) for p in parts],
          "holes", [sum(len(h) for _, h in p) for p in parts])  # fmt: skip
    assert max(len(p) for p in parts) >= 2
    assert max(sum(len(h) for _, h in p) for p in parts) >= 1
    assert ((fill > 0.02) & (fill < 0.98)).sum() >= 2


@pytest.mark.slow
def test_yolo_box_labels_to_coco_polygons(
    dataset: dict[str, Any], sam_model: samkit.Sam, tmp_path: Path
) -> None:
    """A box-labelled YOLO dataset (txt + data.yaml) becomes a segmentation dataset."""
    from pycocotools.coco import COCO

    boxes_dir = tmp_path / "box_labels"
    boxes_dir.mkdir()
    (boxes_dir / "data.yaml").write_text("names:\n  0: box\n  1: disc\n  2: ring\n  3: pair\n")
    for kind, (_, boxes, classes) in dataset["objects"].items():
        if kind == "blank":
            continue  # a missing label file means no objects
        rows = [
            f"{c} {(x1 + x2) / 2 / W:.6f} {(y1 + y2) / 2 / H:.6f} {(x2 - x1) / W:.6f} {(y2 - y1) / H:.6f}"
            for c, (x1, y1, x2, y2) in zip(classes, boxes, strict=True)
        ]
        (boxes_dir / f"{kind}.txt").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    summary = auto_annotate(
        dataset["root"], det_model=boxes_dir, sam_model=sam_model, output_dir=out,
        format="coco", segmentation="polygon", progress=False, verbose=False,
    )  # fmt: skip
    coco = COCO(str(out / "instances.json"))
    assert [c["name"] for c in coco.dataset["categories"]] == NAMES
    for image in coco.dataset["images"]:
        kind = image["file_name"].removesuffix(".png")
        img, boxes, classes = dataset["objects"][kind]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
        if not len(boxes):
            assert anns == []
            continue
        engine = _engine_masks(sam_model, img, boxes)
        engine, classes = engine[engine.any((1, 2))], classes[engine.any((1, 2))]
        assert [a["category_id"] for a in anns] == (classes + 1).tolist()
        for ann, mask in zip(anns, engine, strict=True):
            assert isinstance(ann["segmentation"], list)
            assert all(len(p) >= 6 for p in ann["segmentation"])
            # The file's polygons follow the pixel edges (vertices on pixel corners): samkit's
            # edge rasteriser and pycocotools both give back the engine's mask, holes aside.
            polys = [np.reshape(p, (-1, 2)) for p in ann["segmentation"]]
            own = polygons_to_mask(polys, H, W, frame="edges")
            back = coco.annToMask(ann).astype(bool)
            iou, iou_coco = _iou(own, mask), _iou(back, mask)
            print(f"{kind}: COCO polygons vs engine IoU {iou:.4f}; via pycocotools {iou_coco:.4f}")
            np.testing.assert_array_equal(back, own)
            assert iou_coco >= 0.95
    assert summary.empty == 1 and summary.errors == 0


def test_coco_box_json_keeps_category_ids(
    dataset: dict[str, Any], sam_model: samkit.Sam, tmp_path: Path
) -> None:
    from pycocotools.coco import COCO

    cat_ids = {0: 3, 1: 7, 2: 11, 3: 20}
    boxes_json = {"images": [], "annotations": [], "categories": []}
    for i, kind in enumerate(KINDS, start=1):
        boxes_json["images"].append({"id": i, "file_name": f"{kind}.png", "height": H, "width": W})
        _, boxes, classes = dataset["objects"][kind]
        for (x1, y1, x2, y2), c in zip(boxes, classes, strict=True):
            boxes_json["annotations"].append({
                "id": len(boxes_json["annotations"]) + 1, "image_id": i,
                "category_id": cat_ids[int(c)], "bbox": [x1, y1, x2 - x1, y2 - y1],
            })  # fmt: skip
    boxes_json["categories"] = [{"id": v, "name": NAMES[k]} for k, v in cat_ids.items()]
    (tmp_path / "boxes.json").write_text(json.dumps(boxes_json))
    out = tmp_path / "out"
    auto_annotate(
        dataset["root"], det_model=tmp_path / "boxes.json", sam_model=sam_model, output_dir=out,
        format=["coco", "yolo"], progress=False, verbose=False,
    )  # fmt: skip
    coco = COCO(str(out / "instances.json"))
    assert {c["id"]: c["name"] for c in coco.dataset["categories"]} == {
        v: NAMES[k] for k, v in cat_ids.items()
    }
    img, boxes, classes = dataset["objects"]["ring_pair"]
    engine = _engine_masks(sam_model, img, boxes)
    keep = engine.any((1, 2))
    image_id = next(i["id"] for i in coco.dataset["images"] if i["file_name"] == "ring_pair.png")
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
    assert [a["category_id"] for a in anns] == [cat_ids[int(c)] for c in classes[keep]]
    for ann, mask in zip(anns, engine[keep], strict=True):
        np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), mask)
    # YOLO class indices follow the category id order; data.yaml names them.
    assert [c for c, _ in read_yolo_seg(out / "ring_pair.txt")] == classes[keep].tolist()
    assert "  2: ring" in (out / "data.yaml").read_text()


# --------------------------------------------------------------------------- robustness


def test_filter_boxes_keeps_classes_with_their_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [200, 200, 300, 300], [5, 5, 20, 20], [1, 1, 9, 9]], float)
    dets = Detections.create(boxes, [4, 7, 2, 9], [0.9, 0.95, 0.1, 0.8])
    kept = filter_boxes(dets, 100, 100, conf=0.25)  # drops the low score (row 2)
    kept = filter_boxes(kept, 100, 100)  # and the box outside the image (row 1)
    assert kept.class_ids.tolist() == [4, 9]
    np.testing.assert_array_equal(kept.boxes, boxes[[0, 3]])
    np.testing.assert_array_equal(kept.scores, [0.9, 0.8])
    best = filter_boxes(dets, 1000, 1000, max_det=2)  # the two best, in their original order
    assert best.class_ids.tolist() == [4, 7]
    only = filter_boxes(dets, 1000, 1000, classes=[9, 2])
    assert only.class_ids.tolist() == [2, 9]


def test_class_alignment_when_masks_and_boxes_are_dropped(
    dataset: dict[str, Any], sam_model: samkit.Sam, tmp_path: Path
) -> None:
    """A box outside the image and a mask under min_area are dropped in the middle of the
    list; every remaining line keeps the class of its own box."""
    img, _, _ = dataset["objects"]["ring_pair"]
    boxes = np.array([[10, 20, 91, 101], [400, 400, 500, 500], [12, 14, 63, 71], [100, 15, 153, 106]], float)  # fmt: skip
    engine = _engine_masks(sam_model, img, boxes[[0, 2, 3]])
    areas = engine.sum((1, 2))
    assert areas[1] < min(areas[0], areas[2])  # the middle kept box has the smallest mask
    min_area = int(areas[1]) + 1

    def detect(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return boxes, np.array([0, 1, 2, 3]), np.ones(4)

    folder = tmp_path / "images"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), img[..., ::-1])
    summary = auto_annotate(
        folder, det_model=detect, sam_model=sam_model, output_dir=tmp_path / "out",
        min_area=min_area, format="yolo,coco", polygon_mode="all", progress=False, verbose=False,
    )  # fmt: skip
    assert summary.dropped == 2 and summary.objects == 2
    lines = _yolo_masks(tmp_path / "out" / "a.txt")
    assert sorted({c for c, _ in lines}) == [0, 3]
    for cls, mask in ((0, engine[0]), (3, engine[2])):
        raster = np.any([r for c, r in lines if c == cls], axis=0)
        assert _iou(raster, mask) >= 0.95
    coco = json.loads((tmp_path / "out" / "instances.json").read_text())
    assert [a["category_id"] for a in coco["annotations"]] == [1, 4]
    assert [a["bbox"][0] for a in coco["annotations"]] == [
        float(np.nonzero(engine[i].any(0))[0][0]) for i in (0, 2)
    ]


def test_images_without_objects_get_empty_labels(
    dataset: dict[str, Any], sam_model: samkit.Sam, tmp_path: Path
) -> None:
    calls, handle = _count_encoder(sam_model)
    try:
        summary = auto_annotate(
            dataset["root"], det_model=lambda im: (np.zeros((0, 4)), np.zeros(0), np.zeros(0)),
            sam_model=sam_model, output_dir=tmp_path, format="yolo,labelme,coco",
            progress=False, verbose=False,
        )  # fmt: skip
    finally:
        handle.remove()
    assert calls[0] == 0  # nothing to segment: no encoder pass
    for kind in KINDS:
        assert (tmp_path / f"{kind}.txt").read_text() == ""
        assert read_labelme(tmp_path / f"{kind}.json")["shapes"] == []
    coco = json.loads((tmp_path / "instances.json").read_text())
    assert len(coco["images"]) == 3 and coco["annotations"] == []
    assert summary.empty == 3 and summary.objects == 0


@pytest.mark.slow
def test_resume_after_an_interrupted_run(
    dataset: dict[str, Any], sam_model: samkit.Sam, tmp_path: Path
) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    img, boxes, classes = dataset["objects"]["shapes"]
    for i in range(4):
        cv2.imwrite(str(folder / f"im{i}.png"), img[..., ::-1])
    seen = [0]

    def flaky(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        seen[0] += 1
        if seen[0] > 2:
            raise RuntimeError("detector crashed")
        return boxes, classes, np.ones(len(boxes))

    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="detector crashed"):
        auto_annotate(folder, det_model=flaky, sam_model=sam_model, output_dir=out,
                      format="yolo,coco", progress=False, verbose=False)  # fmt: skip
    assert sorted(p.name for p in out.glob("*.txt")) == ["im0.txt", "im1.txt"]
    assert not (out / "instances.json").exists()
    calls, handle = _count_encoder(sam_model)
    try:
        summary = auto_annotate(
            folder, det_model=lambda im: (boxes, classes, np.ones(len(boxes))),
            sam_model=sam_model, output_dir=out, format="yolo,coco", progress=False,
            verbose=False,
        )  # fmt: skip
    finally:
        handle.remove()
    assert calls[0] == 2  # only the two images not done yet are encoded
    assert summary.skipped == 2 and summary.annotated == 2
    coco = json.loads((out / "instances.json").read_text())
    assert [i["file_name"] for i in coco["images"]] == [f"im{i}.png" for i in range(4)]
    per_image = [sum(a["image_id"] == i["id"] for a in coco["annotations"]) for i in coco["images"]]
    assert len(set(per_image)) == 1 and per_image[0] >= 1
    assert len({a["id"] for a in coco["annotations"]}) == len(coco["annotations"])
    # overwrite relabels everything
    calls, handle = _count_encoder(sam_model)
    try:
        again = auto_annotate(
            folder, det_model=lambda im: (boxes, classes, np.ones(len(boxes))),
            sam_model=sam_model, output_dir=out, overwrite=True, progress=False, verbose=False,
        )  # fmt: skip
    finally:
        handle.remove()
    assert calls[0] == 4 and again.skipped == 0


def test_corrupt_image_is_reported_and_skipped(
    dataset: dict[str, Any],
    sam_model: samkit.Sam,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    img, boxes, classes = dataset["objects"]["shapes"]
    cv2.imwrite(str(folder / "good.png"), img[..., ::-1])
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    summary = auto_annotate(
        folder, det_model=lambda im: (boxes, classes, np.ones(len(boxes))), sam_model=sam_model,
        output_dir=tmp_path / "out", progress=False,
    )  # fmt: skip
    assert summary.errors == 1 and summary.annotated == 1 and summary.images == 2
    assert summary.failures[0]["image"] == "broken.jpg"
    assert (tmp_path / "out" / "good.txt").stat().st_size > 0
    assert not (tmp_path / "out" / "broken.txt").exists()
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["errors"] == 1 and saved["failures"][0]["image"] == "broken.jpg"
    captured = capsys.readouterr().out
    assert "broken.jpg" in captured and "1 errors" in captured


def test_coco_run_over_a_subset_never_shrinks_instances(
    dataset: dict[str, Any], sam_model: samkit.Sam, tmp_path: Path
) -> None:
    """instances.json keeps the images a later run over a subset did not label, also with
    .coco_parts deleted; it used to be rewritten with the subset only."""
    out = tmp_path / "out"
    args = {"det_model": _detector(dataset), "sam_model": sam_model, "output_dir": out,
            "format": "coco", "progress": False, "verbose": False}  # fmt: skip
    auto_annotate(dataset["root"], **args)
    full = json.loads((out / "instances.json").read_text())
    assert len(full["images"]) == 3 and len(full["annotations"]) == 4

    def by_name(coco: dict[str, Any]) -> dict[str, list[Any]]:
        names = {i["id"]: i["file_name"] for i in coco["images"]}
        table: dict[str, list[Any]] = {n: [] for n in names.values()}
        for a in coco["annotations"]:
            table[names[a["image_id"]]].append((a["category_id"], a["segmentation"]))
        return table

    subset = [dataset["root"] / "shapes.png"]
    for drop_parts in (False, True):
        if drop_parts:
            shutil.rmtree(out / ".coco_parts")
        summary = auto_annotate(subset, overwrite=True, **args)
        assert summary.annotated == 1
        merged = json.loads((out / "instances.json").read_text())
        assert by_name(merged) == by_name(full)
        assert [a["id"] for a in merged["annotations"]] == [1, 2, 3, 4]


def test_unreadable_instances_json_stops_before_any_work(
    dataset: dict[str, Any], sam_model: samkit.Sam, tmp_path: Path
) -> None:
    (tmp_path / "instances.json").write_text('{"images": [')
    seen = []

    def detect(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        seen.append(1)
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0)

    with pytest.raises(samkit.SamkitError, match="cannot be read as COCO instances"):
        auto_annotate(dataset["root"], det_model=detect, sam_model=sam_model,
                      output_dir=tmp_path, format="coco", progress=False)  # fmt: skip
    assert seen == [] and (tmp_path / "instances.json").read_text() == '{"images": ['


def test_resume_removes_temporary_files_of_a_killed_run(
    dataset: dict[str, Any], sam_model: samkit.Sam, tmp_path: Path
) -> None:
    (tmp_path / "sub").mkdir()
    orphans = [tmp_path / ".shapes.txt.a1b2c3d4.tmp", tmp_path / ".instances.json.zz_9x8w7.tmp",
               tmp_path / "sub" / ".x.json.q1w2e3r4.tmp"]  # fmt: skip
    mine = [tmp_path / "notes.tmp", tmp_path / ".draft.tmp", tmp_path / ".a.txt.tmp"]
    for p in orphans + mine:
        p.write_text("x")
    auto_annotate(dataset["root"], det_model=lambda im: (np.zeros((0, 4)), np.zeros(0), np.zeros(0)),
                  sam_model=sam_model, output_dir=tmp_path, format="yolo,coco", progress=False,
                  verbose=False)  # fmt: skip
    assert [p.exists() for p in orphans] == [False] * 3
    assert [p.exists() for p in mine] == [True] * 3  # not samkit's: left alone


def test_image_the_model_cannot_take_is_reported_and_skipped(
    dataset: dict[str, Any], sam_model: samkit.Sam, tmp_path: Path
) -> None:
    """A 10000 x 1 image shrinks to 0 rows at the model's input: reported with its path and
    skipped, on the first run and on every resume (it used to stop the folder for good)."""
    folder = tmp_path / "images"
    folder.mkdir()
    img, boxes, classes = dataset["objects"]["shapes"]
    cv2.imwrite(str(folder / "good.png"), img[..., ::-1])
    cv2.imwrite(str(folder / "thin.png"), np.full((1, 10000, 3), 128, np.uint8))

    def whole_image(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if image.shape[0] == 1:
            return np.array([[0.0, 0.0, image.shape[1], 1.0]]), np.array([0]), np.ones(1)
        return boxes, classes, np.ones(len(boxes))

    for run in range(2):
        summary = auto_annotate(folder, det_model=whole_image, sam_model=sam_model,
                                output_dir=tmp_path / "out", progress=False, verbose=False)  # fmt: skip
        assert summary.errors == 1 and summary.failures[0]["image"] == "thin.png"
        assert "10000x1" in summary.failures[0]["error"]
        assert "too thin" in summary.failures[0]["error"]
        assert (summary.annotated, summary.skipped) == ((1, 0) if run == 0 else (0, 1))
    assert (tmp_path / "out" / "good.txt").stat().st_size > 0
    assert not (tmp_path / "out" / "thin.txt").exists()


# --------------------------------------------------------------------------- formats


def _ring() -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    cv2.circle(m, (60, 60), 40, 1, -1)
    cv2.circle(m, (60, 60), 15, 0, -1)
    return m.astype(bool)


def _two_parts() -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[10:40, 100:130] = True
    m[70:110, 20:70] = True
    return m


def test_holes_survive_in_coco_rle(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    from samkit.annotate import DatasetWriter

    ring = _ring()
    writer = DatasetWriter(tmp_path, ["coco"])
    writer.write("ring.png", tmp_path / "ring.png", H, W, np.array([2]), np.array([0.9]),
                 ring[None], {2: "ring"}, {2: 3})  # fmt: skip
    writer.finalize(["ring.png"], {2: "ring"}, {2: 3}, tmp_path)
    coco = COCO(str(tmp_path / "instances.json"))
    (ann,) = coco.loadAnns(coco.getAnnIds())
    back = coco.annToMask(ann).astype(bool)
    np.testing.assert_array_equal(back, ring)
    assert not back[60, 60] and back[60, 30]  # the hole stays a hole
    assert ann["category_id"] == 3 and ann["area"] == int(ring.sum())


@pytest.mark.parametrize("mode", ["all", "largest", "merge"])
def test_multi_part_object_under_each_polygon_mode(tmp_path: Path, mode: str) -> None:
    from pycocotools.coco import COCO

    from samkit.annotate import DatasetWriter

    two = _two_parts()
    big = np.zeros_like(two)
    big[70:110, 20:70] = True
    writer = DatasetWriter(tmp_path, ["yolo", "labelme", "coco"], segmentation="polygon",
                           polygon_mode=mode)  # type: ignore[arg-type]  # fmt: skip
    writer.write("pair.png", tmp_path / "pair.png", H, W, np.array([1]), np.array([1.0]),
                 two[None], {1: "pair"}, {1: 2})  # fmt: skip
    writer.finalize(["pair.png"], {1: "pair"}, {1: 2}, tmp_path)
    lines = _yolo_masks(tmp_path / "pair.txt")
    shapes = read_labelme(tmp_path / "pair.json")["shapes"]
    ann = COCO(str(tmp_path / "instances.json")).dataset["annotations"][0]
    assert all(c == 1 for c, _ in lines) and all(s["label"] == "pair" for s in shapes)
    yolo_union = np.any([r for _, r in lines], axis=0)
    labelme_union = polygons_to_mask([np.array(s["points"]) for s in shapes], H, W)
    coco_polys = [np.reshape(p, (-1, 2)) for p in ann["segmentation"]]
    coco_union = polygons_to_mask(coco_polys, H, W, frame="edges")
    if mode == "all":  # every part its own polygon of the same object
        assert len(lines) == 2 and len(shapes) == 2 and len(ann["segmentation"]) == 2
        assert shapes[0]["group_id"] == shapes[1]["group_id"] is not None
        target = two
    elif mode == "largest":
        assert len(lines) == 1 and len(shapes) == 1 and len(ann["segmentation"]) == 1
        target = big
    else:  # one polygon joining the parts with zero-width bridges
        assert len(lines) == 1 and len(shapes) == 1 and len(ann["segmentation"]) == 1
        target = two
    for union in (yolo_union, labelme_union, coco_union):
        assert _iou(union, target) >= 0.95


@pytest.mark.slow
def test_polygon_modes_on_engine_masks(
    dataset: dict[str, Any], sam_model: samkit.Sam, tmp_path: Path
) -> None:
    """The default YOLO mode (merge) writes one line per object; with a many-part engine mask
    the bridges cost a little IoU, every mode matches the engine mask's own polygons."""
    img, boxes, classes = dataset["objects"]["ring_pair"]
    engine = _engine_masks(sam_model, img, boxes)
    for mode in ("merge", "largest", "all"):
        out = tmp_path / mode
        auto_annotate(
            dataset["root"] / "ring_pair.png", det_model=lambda im: (boxes, classes, np.ones(2)),
            sam_model=sam_model, output_dir=out, polygon_mode=None if mode == "merge" else mode,
            tolerance=0.0, progress=False, verbose=False,
        )  # type: ignore[arg-type]  # fmt: skip
        lines = _yolo_masks(out / "ring_pair.txt")
        parts = [len(mask_to_polygons(m)) for m in engine]
        assert len(lines) == (sum(parts) if mode == "all" else len(engine))
        for cls, mask in zip(classes, engine, strict=True):
            raster = np.any([r for c, r in lines if c == cls], axis=0)
            own = polygons_to_mask(mask_to_polygons(mask, mode=mode), H, W)  # type: ignore[arg-type]
            print(
                f"{mode}: class {cls} vs engine {_iou(raster, mask):.4f}, own polygons {_iou(raster, own):.4f}"
            )
            assert _iou(raster, own) >= 0.99
            if mode != "largest":
                assert _iou(raster, mask) >= 0.95


def test_tolerance_simplifies_and_coordinates_are_rounded(tmp_path: Path) -> None:
    from samkit.annotate import DatasetWriter

    disc = np.zeros((H, W), np.uint8)
    cv2.circle(disc, (80, 60), 45, 1, -1)
    counts = {}
    for tol in (0.0, 2.0):
        writer = DatasetWriter(tmp_path / str(tol), ["yolo"], tolerance=tol)
        writer.write("d.png", tmp_path / "d.png", H, W, np.array([0]), np.array([1.0]),
                     disc.astype(bool)[None], {0: "d"}, {0: 1})  # fmt: skip
        (line,) = (tmp_path / str(tol) / "d.txt").read_text().splitlines()
        values = line.split()[1:]
        assert all(len(v.split(".")[1]) == 6 for v in values)
        xy = np.array(values, float).reshape(-1, 2) * [W, H]
        assert np.abs(xy - np.rint(xy)).max() < 1e-3  # pixel vertices survive 6-decimal rounding
        counts[tol] = len(xy)
    assert counts[2.0] < counts[0.0] / 2


# --------------------------------------------------------------------------- API, CLI


def test_default_output_dir_is_labels_beside_images(tmp_path: Path) -> None:
    """images/ + labels/ (a YOLO dataset), not Ultralytics' images_auto_annotate_labels/."""
    (tmp_path / "images").mkdir()
    assert default_output_dir(tmp_path / "images", tmp_path / "images") == tmp_path / "labels"
    assert default_output_dir(tmp_path / "labels", tmp_path / "labels") == (
        tmp_path / "labels_auto_annotate"
    )
    assert samkit.auto_annotate is auto_annotate


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"det_model": None}, ValueError, "det_model is required"),
        ({"format": "voc"}, ValueError, "format must be one or more of"),
        ({"segmentation": "mask"}, ValueError, "segmentation must be"),
        ({"polygon_mode": "hull"}, ValueError, "polygon_mode must be"),
        ({"batch": 0}, ValueError, "batch must be >= 1"),
        ({"det_model": 42}, ValueError, "det_model must be"),
        ({"batch": "a"}, ValueError, "batch must be >= 1 .an int., got 'a'"),
        ({"conf": "high"}, ValueError, r"conf must be a number in \[0, 1\], got 'high'"),
        ({"classes": ["a"]}, ValueError, "classes must be a list of class indices"),
        ({"max_det": 0}, ValueError, "max_det must be >= 1"),
    ],
)
def test_invalid_arguments(
    dataset: dict[str, Any], tmp_path: Path, kwargs: dict[str, Any], error: type, match: str
) -> None:
    args = {"det_model": _detector(dataset), "output_dir": tmp_path, "progress": False, **kwargs}
    with pytest.raises(error, match=match):
        auto_annotate(dataset["root"], **args)


def test_missing_data_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(samkit.SamkitError, match="does not exist"):
        auto_annotate(tmp_path / "nope", det_model=lambda im: None, progress=False)


@pytest.mark.slow
def test_ultralytics_detector_wiring(
    dataset: dict[str, Any], sam_model: samkit.Sam, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An Ultralytics YOLO built from its yaml (random weights, nothing downloaded): conf=0 and
    a small max_det force a few boxes, which must reach SAM and the label files."""
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics_cfg"))
    ultralytics = pytest.importorskip("ultralytics")
    torch.manual_seed(0)
    yolo = ultralytics.YOLO("yolov8n.yaml")
    detections = []
    real_predict = yolo.predict

    def predict(*args: Any, **kwargs: Any) -> Any:
        results = real_predict(*args, **kwargs)
        detections.append(len(results[0].boxes))
        return results

    monkeypatch.setattr(yolo, "predict", predict)
    calls, handle = _count_encoder(sam_model)
    try:
        summary = auto_annotate(
            dataset["root"], det_model=yolo, sam_model=sam_model, output_dir=tmp_path / "out",
            conf=0.0, max_det=3, imgsz=160, device="cpu", format="yolo,coco",
            progress=False, verbose=False,
        )  # fmt: skip
    finally:
        handle.remove()
    assert detections == [3, 3, 3]  # one call per image, max_det honoured
    assert calls[0] == 3
    for kind in KINDS:
        assert (tmp_path / "out" / f"{kind}.txt").is_file()
    coco = json.loads((tmp_path / "out" / "instances.json").read_text())
    assert len(coco["annotations"]) == summary.objects
    assert "nc: 80" in (tmp_path / "out" / "data.yaml").read_text()  # the model's names


def test_cli_annotate_from_box_labels(
    dataset: dict[str, Any], sam_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from samkit.annotate.cli import parse_names
    from samkit.cli import main

    boxes_dir = tmp_path / "boxes"
    boxes_dir.mkdir()
    (boxes_dir / "shapes.txt").write_text("1 0.7 0.5 0.3 0.4\n")
    out = tmp_path / "out"
    code = main([
        "annotate", str(dataset["root"]), f"det_model={boxes_dir}", f"sam_model={sam_ckpt}",
        f"output_dir={out}", "format=yolo,labelme", "names=box,disc", "progress=false",
        "device=cpu",
    ])  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in out.glob("*.txt")) == ["blank.txt", "ring_pair.txt", "shapes.txt"]
    assert all(c == 1 for c, _ in read_yolo_seg(out / "shapes.txt"))
    assert "names:\n  0: box\n  1: disc" in (out / "data.yaml").read_text()
    assert "3 images" in capsys.readouterr().out
    assert main(["annotate", str(dataset["root"]), "det_modle=x"]) == 2  # a usage error
    assert "det_model" in capsys.readouterr().err
    assert parse_names('["a", "b"]') == ["a", "b"] and parse_names("a, b") == ["a", "b"]
