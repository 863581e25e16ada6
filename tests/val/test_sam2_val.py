"""SAM 2 on samkit's dataset paths: ``samkit val``'s box protocol equals Meta's
SAM2ImagePredictor fed the same boxes, and auto-annotation writes Meta's box masks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from sam2_reference import meta_model, meta_predictor, samkit_model
from shapes_data import make_shapes_dataset

pytestmark = pytest.mark.parity
pytest.importorskip("sam2")
pytest.importorskip("hydra")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Path]:
    folder = tmp_path_factory.mktemp("sam2val")
    ref = meta_model("tiny", image_size=128, seed=12)
    torch.save({"model": ref.state_dict()}, folder / "tiny128.pt")
    data = make_shapes_dataset(folder / "shapes", 2, seed=4, min_objects=2)
    return meta_predictor(ref), samkit_model(folder / "tiny128.pt", "tiny", 128), data


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _meta_box_masks(ref: Any, image_rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    ref.set_image(image_rgb)
    masks, _, _ = ref.predict(box=boxes, multimask_output=False)
    return np.asarray(masks).reshape(len(boxes), *image_rgb.shape[:2]).astype(bool)


def test_box_protocol_equals_meta(pair: tuple[Any, Any, Path]) -> None:
    from samkit import SAM, val
    from samkit.datasets import open_dataset

    ref, net, data = pair
    res = val(SAM(net), data, protocols="box", save=False, verbose=False, max_images=1)
    ious = []
    for sample in open_dataset(data)[:1]:
        image = cv2.imread(str(sample.path))[..., ::-1].copy()
        boxes = []
        for inst in sample.instances:
            ys, xs = np.nonzero(inst.mask)
            boxes.append([xs.min(), ys.min(), xs.max(), ys.max()])
        masks = _meta_box_masks(ref, image, np.array(boxes, np.float64))
        ious += [_iou(m, inst.mask) for m, inst in zip(masks, sample.instances, strict=True)]
    ours = res.metrics["box"]["miou"]
    print(f"box mIoU samkit {ours:.6f} Meta {np.mean(ious):.6f} ({len(ious)} objects)")
    assert len(ious) == res.metrics["box"]["n"] >= 2
    assert abs(ours - np.mean(ious)) <= 1e-4


def test_auto_annotate_writes_metas_box_masks(pair: tuple[Any, Any, Path], tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    from samkit import SAM, auto_annotate
    from samkit.datasets import open_dataset

    ref, net, data = pair
    path = open_dataset(data)[0].path
    image = cv2.imread(str(path))[..., ::-1].copy()
    boxes = np.array([[10.0, 12.0, 90.0, 100.0], [60.0, 20.0, 150.0, 120.0]])

    def detector(_: np.ndarray) -> np.ndarray:
        return boxes

    out = tmp_path / "labels"
    summary = auto_annotate(
        path, det_model=detector, sam_model=SAM(net), output_dir=out, format="coco",
        progress=False, verbose=False,
    )  # fmt: skip
    coco = COCO(str(out / "instances.json"))
    anns = coco.loadAnns(coco.getAnnIds())
    expected = _meta_box_masks(ref, image, boxes)
    assert summary.objects == len(anns) == int(expected.any(axis=(1, 2)).sum()) > 0
    for ann, mask in zip(anns, expected[expected.any(axis=(1, 2))], strict=True):
        np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), mask)
