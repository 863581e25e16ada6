"""model="grabcut": the weights-free engine behind the same front, Predictor, CLI,
auto-annotation and val. Constructed images with a known object; the masks must beat the prompt
box taken as the mask by a wide margin (IoU), through every interface."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from samkit import SAM, Predictor, auto_annotate
from samkit.backends.grabcut import GrabCutEngine
from samkit.cli import main
from samkit.engine import Engine
from samkit.errors import SamkitError
from samkit.formats import read_yolo_seg
from samkit.polygons import polygons_to_mask

H, W = 180, 240


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A noisy textured background with a tilted ellipse of another colour (the object)."""
    rng = np.random.default_rng(0)
    rgb = rng.normal(120, 25, (H, W, 3)).clip(0, 255).astype(np.uint8)
    obj = np.zeros((H, W), np.uint8)
    cv2.ellipse(obj, (130, 90), (55, 35), 20, 0, 360, 1, -1)
    colour = rng.normal(0, 12, (H, W, 3)) + np.array([40, 170, 60])
    rgb[obj > 0] = colour.clip(0, 255).astype(np.uint8)[obj > 0]
    ys, xs = np.nonzero(obj)
    box = [int(xs.min()) - 6, int(ys.min()) - 6, int(xs.max()) + 7, int(ys.max()) + 7]
    box_mask = np.zeros((H, W), bool)
    box_mask[box[1] : box[3], box[0] : box[2]] = True
    root = tmp_path_factory.mktemp("grabcut")
    (root / "images").mkdir()
    cv2.imwrite(str(root / "images" / "scene.png"), rgb[:, :, ::-1])
    return {"rgb": rgb, "obj": obj > 0, "box": box, "root": root,
            "baseline": _iou(box_mask, obj > 0)}  # fmt: skip


def test_front_box_point_and_refinement_find_the_object(scene: dict) -> None:
    model = SAM("grabcut")
    assert isinstance(model.engine, Engine) and model.engine.backend == "grabcut"
    path = scene["root"] / "images" / "scene.png"
    by_box = model(path, bboxes=scene["box"])[0]
    by_point = model(path, points=[130, 90])[0]
    refined = model(path, points=[[130, 90], [10, 10]], labels=[1, 0], masks=by_point)[0]
    ious = [_iou(r.masks[0], scene["obj"]) for r in (by_box, by_point, refined)]
    print(f"GrabCut IoU box/point/refined {ious}, the box as mask {scene['baseline']:.3f}")
    assert min(ious) >= 0.9 and min(ious) >= scene["baseline"] + 0.25
    assert by_box.scores.tolist() == [1.0] and by_box.masks.shape == (1, H, W)
    three = model(path, bboxes=scene["box"], multimask_output=True, keep_all=True)[0]
    assert len(three) == 3
    with pytest.raises(SamkitError, match="segment everything needs a SAM model"):
        model(path)
    with pytest.raises(SamkitError, match="GrabCut, which has none"):
        model.info(verbose=False)


def test_predictor_and_cli(scene: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    predictor = Predictor(overrides={"model": "grabcut"})
    predictor.set_image(str(scene["root"] / "images" / "scene.png"))
    r = predictor(bboxes=scene["box"])[0]
    assert _iou(r.masks[0], scene["obj"]) >= 0.9
    box = ",".join(map(str, scene["box"]))
    code = main(["predict", "model=grabcut", f"source={scene['root'] / 'images'}",
                 f"bboxes=[{box}]", f"project={tmp_path}", "save=false"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "predict" / "predictions.json").read_text())
    assert summary["counts"]["masks"] == 1
    (cls, poly), *_ = read_yolo_seg(tmp_path / "predict" / "labels" / "scene.txt")
    raster = polygons_to_mask([poly * [W, H]], H, W)
    assert cls == 0 and _iou(raster, scene["obj"]) >= 0.9


def test_auto_annotate_with_grabcut(scene: dict, tmp_path: Path) -> None:
    def detector(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.array([scene["box"]], float), np.array([0]), np.array([0.9])

    summary = auto_annotate(scene["root"] / "images", det_model=detector, sam_model="grabcut",
                            output_dir=tmp_path, progress=False, verbose=False)  # fmt: skip
    assert summary.objects == 1 and summary.errors == 0
    ((_, poly),) = read_yolo_seg(tmp_path / "scene.txt")
    assert _iou(polygons_to_mask([poly * [W, H]], H, W), scene["obj"]) >= 0.9


def test_val_measures_grabcut(tmp_path: Path) -> None:
    from samkit import val
    from shapes_data import make_shapes_dataset

    data = make_shapes_dataset(tmp_path / "shapes", 1, seed=2, min_objects=2)
    res = val("grabcut", data, protocols="box", save=False, verbose=False, progress=False)
    print(res.metrics["box"])
    assert res.metrics["box"]["miou"] >= 0.85


def test_engine_arguments_are_checked() -> None:
    for kwargs in ({"iterations": 0}, {"max_side": True}, {"point_reach": 2}):
        with pytest.raises(SamkitError):
            GrabCutEngine(**kwargs)
    with pytest.raises(SamkitError, match="no image is set"):
        GrabCutEngine().sizes()
