"""Segment everything from detector boxes (``prompts_from=``, MobileSAMv2's object-aware
prompts) on the blob weights (tests/amg_weights.py), where a box prompt draws a bump around its
centre: one mask per box, the same masks as decoding the boxes by hand (and as Meta's
predictor), the grid path's filters, crops, box sources, bad values and no detections."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from amg_weights import blob_pair
from reference import make_image
from samkit.amg.boxes import box_prompt_source, boxes_in_crop, detect
from samkit.amg.grid import generate_crop_boxes
from samkit.automatic import SamAutomaticMaskGenerator
from samkit.engine import as_engine
from samkit.errors import ArgumentError
from samkit.prompts import ObjectPrompt
from samkit.registry import ViTConfig

TINY_VIT = ViTConfig(embed_dim=64, depth=1, num_heads=2, global_attn_indexes=())
H, W = 240, 320
# Four well separated boxes; under the blob weights each draws a disc around its centre.
BOXES = np.array(
    [[20, 20, 70, 70], [200, 30, 260, 90], [40, 150, 110, 220], [230, 160, 300, 230]],
    dtype=np.float64,
)
META_KEYS = {
    "segmentation",
    "area",
    "bbox",
    "predicted_iou",
    "point_coords",
    "stability_score",
    "crop_box",
}
OPEN = {"pred_iou_thresh": 0.0}  # keep every box's mask (stability stays at its default)


@pytest.fixture(scope="module")
def models() -> tuple[torch.nn.Module, torch.nn.Module]:
    return blob_pair(TINY_VIT)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return make_image(H, W, seed=1)


def by_hand(model: torch.nn.Module, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, ...]:
    """The boxes decoded through the engine one call, single mask each: masks (N, H, W) from
    the reference's two resizes, predicted IoUs (N,), stability scores (N,)."""
    engine = as_engine(model)
    engine.set_image(image)
    low, iou = engine.decode([ObjectPrompt(box=b) for b in boxes], False)
    logits = engine.upsample(low[:, 0])
    masks = engine.masks(logits, np.arange(len(boxes)))
    return masks, iou[:, 0], engine.stability(logits, 1.0)


def test_one_mask_per_box_inside_its_box(models, image, capsys) -> None:
    gen = SamAutomaticMaskGenerator(models[1], prompts_from=lambda im: BOXES, verbose=True, **OPEN)
    records = gen.generate(image)
    assert len(records) == len(BOXES)
    centres = (BOXES[:, :2] + BOXES[:, 2:]) / 2
    for rec in records:
        assert set(rec) == META_KEYS  # Meta's record keys, nothing added
        assert 0.0 < rec["predicted_iou"] <= 1.0 and rec["crop_box"] == [0, 0, W, H]
    got = sorted(tuple(r["point_coords"][0]) for r in records)
    assert got == sorted(map(tuple, centres.tolist()))  # point_coords: the box centre
    for rec in records:
        i = int(np.argmin(np.abs(centres - rec["point_coords"][0]).sum(1)))
        x0, y0, x1, y1 = BOXES[i].astype(int)
        seg = rec["segmentation"]
        assert seg[int(centres[i, 1]), int(centres[i, 0])], "the mask holds its box centre"
        inside = seg[y0:y1, x0:x1].sum()
        assert inside >= 0.5 * (x1 - x0) * (y1 - y0), "the mask covers most of its box"
        for j in set(range(len(BOXES))) - {i}:  # and no other box's centre
            assert not seg[int(centres[j, 1]), int(centres[j, 0])]
    stats = gen.stats
    assert (stats.mode, stats.boxes, stats.decoded, stats.points, stats.kept) == (
        "boxes", 4, 4, 0, 4
    )  # fmt: skip
    assert "4 detector boxes, 4 box prompts decoded" in capsys.readouterr().out


def test_masks_equal_decoding_the_boxes_by_hand(models, image) -> None:
    """Same logits -> same masks: the generator's records are the engine's single-mask box
    decode, upsampled as the reference does, and the filters drop exactly the boxes whose IoU
    or stability fall below the defaults. Meta's SamPredictor draws the same masks."""
    from segment_anything import SamPredictor as RefPredictor

    masks, iou, stability = by_hand(models[1], image, BOXES)
    records = SamAutomaticMaskGenerator(models[1], prompts_from=lambda im: BOXES).generate(image)
    expected = np.flatnonzero((iou > np.float32(0.88)) & (stability >= np.float32(0.95)))
    assert 0 < len(expected) < len(BOXES), "the default IoU filter should drop some boxes here"
    centres = (BOXES[:, :2] + BOXES[:, 2:]) / 2
    found = {int(np.argmin(np.abs(centres - r["point_coords"][0]).sum(1))): r for r in records}
    assert sorted(found) == expected.tolist()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = RefPredictor(models[0])
        ref.set_image(image)
    for i, rec in found.items():
        assert np.array_equal(rec["segmentation"], masks[i])
        assert rec["predicted_iou"] == float(iou[i])
        assert rec["stability_score"] == float(stability[i])
        ref_masks, ref_iou, _ = ref.predict(box=BOXES[i], multimask_output=False)
        diff = int((ref_masks[0] != rec["segmentation"]).sum())
        print(f"box {i}: {diff} pixels differ from Meta's predictor, IoU {ref_iou[0]:.6f}")
        assert diff == 0 and abs(float(ref_iou[0]) - rec["predicted_iou"]) < 1e-5


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ([10, 10, 50, 50], [[10, 10, 50, 50]]),  # inside
        ([-20, 90, 30, 130], [[0, 90, 30, 100]]),  # clipped to the crop
        ([150, 0, 200, 40], []),  # outside
        ([100, 20, 140, 40], []),  # touches the crop's right edge only: no area left
    ],
)
def test_boxes_in_crop(box, expected) -> None:
    got = boxes_in_crop(np.array([box], dtype=np.float64), [0, 0, 100, 100])
    assert got.shape == (len(expected), 4)
    assert np.array_equal(got, np.array(expected, dtype=np.float64).reshape(-1, 4))
    shifted = boxes_in_crop(np.array([box], dtype=np.float64) + 50, [50, 50, 150, 150])
    assert np.array_equal(shifted, got)  # the crop's frame


def test_crop_layers_decode_each_box_in_every_crop_it_overlaps(models, image) -> None:
    gen = SamAutomaticMaskGenerator(
        models[1], prompts_from=lambda im: BOXES, crop_n_layers=1, **OPEN
    )
    data = gen.generate_candidates(image)
    crops, _ = generate_crop_boxes((H, W), 1, gen.crop_overlap_ratio)
    assert gen.stats.decoded == sum(len(boxes_in_crop(BOXES, c)) for c in crops) > len(BOXES)
    assert 0 < len(data) <= len(BOXES)  # NMS across crops keeps one mask per object
    for point, crop in zip(data.points, data.crop_boxes, strict=True):
        assert crop[0] <= point[0] <= crop[2] and crop[1] <= point[1] <= crop[3]


def test_no_detections_give_no_masks(models, image) -> None:
    for empty in (np.zeros((0, 4)), [], (np.zeros((0, 4)), np.zeros(0), np.zeros(0))):
        gen = SamAutomaticMaskGenerator(models[1], prompts_from=lambda im, e=empty: e)
        assert gen.generate(image) == []
        assert (gen.stats.boxes, gen.stats.decoded, gen.stats.kept) == (0, 0, 0)
        assert not gen.engine.is_image_set  # nothing was encoded
    outside = SamAutomaticMaskGenerator(models[1], prompts_from=lambda im: [[400, 300, 500, 400]])
    assert outside.generate(image) == [] and outside.stats.boxes == 1


class FakeBoxes:
    """What an Ultralytics result's ``boxes`` holds."""

    def __init__(self, xyxy: np.ndarray) -> None:
        self.xyxy = torch.as_tensor(xyxy)
        self.cls = torch.zeros(len(xyxy))
        self.conf = torch.ones(len(xyxy))


class FakeYolo:
    """An object with Ultralytics' ``predict(bgr, **kwargs) -> [result]``."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def predict(self, image: np.ndarray, **kwargs: object) -> list:
        self.calls.append(kwargs)
        return [type("Result", (), {"boxes": FakeBoxes(BOXES)})()]


def _label_folder(root: Path) -> Path:
    folder = root / "labels"
    folder.mkdir()
    cx, cy = (BOXES[:, 0] + BOXES[:, 2]) / 2 / W, (BOXES[:, 1] + BOXES[:, 3]) / 2 / H
    bw, bh = (BOXES[:, 2] - BOXES[:, 0]) / W, (BOXES[:, 3] - BOXES[:, 1]) / H
    rows = [f"3 {a:.6f} {b:.6f} {c:.6f} {d:.6f}" for a, b, c, d in zip(cx, cy, bw, bh, strict=True)]
    (folder / "scene.txt").write_text("\n".join(rows) + "\n")
    return folder


def _coco_file(root: Path) -> Path:
    anns = [
        {"id": i + 1, "image_id": 1, "category_id": 7, "bbox": [x0, y0, x1 - x0, y1 - y0]}
        for i, (x0, y0, x1, y1) in enumerate(BOXES.tolist())
    ]
    data = {
        "images": [{"id": 1, "file_name": "scene.png", "width": W, "height": H}],
        "annotations": anns,
        "categories": [{"id": 7, "name": "thing"}],
    }
    path = root / "boxes.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "kind",
    [
        "array",
        "list",
        "tensor",
        "boxes_classes",
        "boxes_classes_scores",
        "ultralytics",
        "labels",
        "coco",
    ],
)
def test_box_sources(kind, image, tmp_path) -> None:
    """Every accepted ``prompts_from`` yields the same boxes; file-based sources match the
    image by file name (the directory part of ``path`` is not used)."""
    n = len(BOXES)
    value = {
        "array": lambda im: BOXES,
        "list": lambda im: BOXES.tolist(),
        "tensor": lambda im: torch.as_tensor(BOXES),
        "boxes_classes": lambda im: (BOXES, np.arange(n)),
        "boxes_classes_scores": lambda im: (BOXES, np.arange(n), np.full(n, 0.5)),
        "ultralytics": FakeYolo(),
        "labels": str(_label_folder(tmp_path)) if kind == "labels" else None,
        "coco": _coco_file(tmp_path) if kind == "coco" else None,
    }[kind]
    found = detect(box_prompt_source(value), image, "/somewhere/else/scene.png")
    assert np.allclose(found.boxes, BOXES, atol=1e-3)
    if kind == "ultralytics":
        assert value.calls and value.calls[0]["conf"] == 0.25  # Ultralytics' own defaults


def test_label_folder_through_the_generator(models, image, tmp_path) -> None:
    """A YOLO box-label folder: the image's boxes are found by its path's file name."""
    folder = _label_folder(tmp_path)
    gen = SamAutomaticMaskGenerator(models[1], prompts_from=folder, **OPEN)
    records = gen.generate(image, path=str(tmp_path / "images" / "scene.png"))
    assert len(records) == len(BOXES) and gen.stats.boxes == len(BOXES)
    assert gen.generate(image, path="other.png") == []  # no label file: no objects
    with pytest.raises(ArgumentError, match="by its file name"):
        gen.generate(image)  # no path: nothing to match the label files with


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        (3, "got 3"),
        (True, "got True"),
        ("", "got ''"),
        ([[0, 0, 10, 10]], "got list"),
        (np.zeros((1, 4)), "got ndarray"),
        ("missing.json", "COCO box file"),
    ],
)
def test_bad_prompts_from_fails_at_construction(models, value, needle) -> None:
    with pytest.raises(ArgumentError, match="prompts_from") as info:
        SamAutomaticMaskGenerator(models[1], prompts_from=value)
    assert needle in str(info.value)
    if needle.startswith("got"):
        assert "YOLO" in str(info.value) and "callable" in str(info.value)  # what is accepted


def test_grabcut_is_refused(models) -> None:
    from samkit import SAM
    from samkit.errors import SamkitError

    with pytest.raises(SamkitError, match="prompts_from needs a SAM model"):
        SamAutomaticMaskGenerator(SAM("grabcut"), prompts_from=lambda im: BOXES)


def test_bad_detector_output_names_the_callable(models, image) -> None:
    gen = SamAutomaticMaskGenerator(models[1], prompts_from=lambda im: "boxes")
    with pytest.raises(ArgumentError, match="detector callable must return"):
        gen.generate(image)


@pytest.mark.slow
def test_ultralytics_model_as_prompts_from(models, image, tmp_path, monkeypatch) -> None:
    """A real Ultralytics YOLO (built from its yaml: random weights, nothing downloaded),
    configured through UltralyticsDetector so its random boxes pass: each is decoded."""
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics_cfg"))
    ultralytics = pytest.importorskip("ultralytics")
    from samkit.annotate import UltralyticsDetector

    torch.manual_seed(0)
    yolo = ultralytics.YOLO("yolov8n.yaml")
    det = UltralyticsDetector(yolo, conf=0.0, max_det=3, imgsz=160, device="cpu")
    gen = SamAutomaticMaskGenerator(models[1], prompts_from=det, **OPEN)
    gen.generate(image)
    assert gen.stats.boxes == 3 and gen.stats.decoded == 3
    plain = SamAutomaticMaskGenerator(models[1], prompts_from=yolo)  # the YOLO object itself
    assert isinstance(plain.box_source, UltralyticsDetector)


# --------------------------------------------------------------------------- front and CLI
@pytest.fixture(scope="module")
def blob_checkpoint(models, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("boxes") / "blob.pt"
    torch.save(models[1].state_dict(), path)
    return path


def test_front_segments_everything_from_boxes(models, blob_checkpoint, image) -> None:
    from samkit import SAM
    from samkit.errors import SamkitError

    def det(im: np.ndarray) -> np.ndarray:
        return BOXES

    model = SAM(str(blob_checkpoint))
    (result,) = model(image, prompts_from=det, **OPEN)
    expected = SamAutomaticMaskGenerator(models[1], prompts_from=det, **OPEN).generate(image)
    assert len(result) == len(expected) == len(BOXES)
    assert result.stats["mode"] == "boxes" and result.stats["boxes"] == len(BOXES)
    assert sorted(result.scores.tolist()) == sorted(r["predicted_iou"] for r in expected)
    assert model._automatic({"prompts_from": det, **OPEN}) is model._automatic(
        {"prompts_from": det, **OPEN}
    )  # the generator (and its detector) is made once
    with pytest.raises(SamkitError, match="prompts_from"):
        model(image, bboxes=[0, 0, 10, 10], prompts_from=det)
    with pytest.raises(ArgumentError, match="prompts_from must be"):
        model(image, prompts_from=42)


def test_cli_prompts_from_a_label_folder(blob_checkpoint, image, tmp_path, capsys) -> None:
    """``samkit predict ... prompts_from=<folder of YOLO box labels>``: the image's label file
    is found by its name; one mask per box reaches predictions.json."""
    import cv2

    from samkit.cli import main

    folder = _label_folder(tmp_path)
    source = tmp_path / "scene.png"
    cv2.imwrite(str(source), image[:, :, ::-1])
    code = main([
        "predict", f"model={blob_checkpoint}", f"source={source}", f"prompts_from={folder}",
        "pred_iou_thresh=0", "verbose=True", f"project={tmp_path / 'runs'}", "device=cpu",
    ])  # fmt: skip
    assert code == 0
    assert "4 detector boxes, 4 box prompts decoded" in capsys.readouterr().out
    summary = json.loads((tmp_path / "runs" / "predict" / "predictions.json").read_text())
    assert summary["counts"]["masks"] == len(BOXES)
    assert summary["args"]["prompts_from"] == str(folder)
    assert main(["predict", f"source={source}", "prompts_form=x"]) == 2  # a usage error
    assert "prompts_from" in capsys.readouterr().err
