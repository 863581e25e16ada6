"""The SAM snippets of Ultralytics' docs (docs/en/models/sam.md, mobile-sam.md) and tests
(tests/test_cuda.py's SAM test) run against samkit with only their import lines changed.

The snippets below are one source text run twice, with Ultralytics' imports and with samkit's,
on the same seeded weights: Ultralytics' ``build_sam`` is pointed at a reduced ViT (1024
input, so Ultralytics' default ``imgsz`` fits) holding the state dict samkit loads from disk.
The image is 1024 x 1024, so neither package resizes or pads it and the numbers can be
compared: every mask both keep must match, and the mask counts must be Ultralytics'
(Ultralytics drops scores <= 0.25 unless told otherwise; samkit keeps every mask unless
``conf=`` is given, its one deliberate difference, so counts are compared with
``conf=0.25`` added on samkit's side and checked unfiltered against the documented counts).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from reference import make_image, randomize, reference_vit
from samkit.registry import ViTConfig

VIT = ViTConfig(embed_dim=64, depth=1, num_heads=2, global_attn_indexes=())

ULTRALYTICS = {
    "sam": "from ultralytics import SAM",
    "predictor": "from ultralytics.models.sam import Predictor as SAMPredictor",
}
SAMKIT = {
    "sam": "from samkit import SAM",
    "predictor": "from samkit import Predictor as SAMPredictor",
}

# name -> (call, documented mask count before any score filter)
SNIPPETS = """
{sam}
model = SAM(WEIGHTS)
info = model.info()
out["bboxes"] = model(SOURCE, bboxes=[439, 437, 524, 709])
out["point"] = model(SOURCE, points=[900, 370], labels=[1])
out["points"] = model(SOURCE, points=[[400, 370], [900, 370]], labels=[1, 1])
out["per_object"] = model(SOURCE, points=[[[400, 370], [900, 370]]], labels=[[1, 1]])
out["negative"] = model(SOURCE, points=[[[400, 370], [900, 370]]], labels=[[1, 0]])
out["device"] = model(SOURCE, points=[900, 370], device="cpu")
out["device_list"] = model(SOURCE, points=[[900, 370]], labels=[1], device="cpu")
out["save"] = model(SOURCE, bboxes=[439, 437, 524, 709], save=True)
{predictor}
overrides = dict(conf=0.25, task="segment", mode="predict", imgsz=1024, model=WEIGHTS)
predictor = SAMPredictor(overrides=overrides)
predictor.set_image(SOURCE)
out["predictor_bboxes"] = predictor(bboxes=[439, 437, 524, 709])
out["predictor_point"] = predictor(points=[900, 370], labels=[1])
out["predictor_multimask"] = predictor(points=[900, 370], labels=[1], multimask_output=True)
predictor.reset_image()
for r in out["points"]:
    if r.masks is None:
        continue
    masks = r.masks.data.cpu().numpy()
    boxes = r.boxes.xyxy.cpu().numpy()
    out["client"] = (masks.shape, boxes.shape, r.masks.data.sum(dim=(1, 2)).tolist(),
                     r.masks.orig_shape, r.boxes.conf.tolist())
"""

DOCUMENTED = {"bboxes": 1, "point": 1, "points": 2, "per_object": 1, "negative": 1, "device": 1,
              "device_list": 1, "save": 1, "predictor_bboxes": 1, "predictor_point": 1,
              "predictor_multimask": 3}  # fmt: skip


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ultra")
    meta = reference_vit(VIT)
    state = randomize(meta, 5)
    weights = root / "tiny_sam.pt"
    torch.save(state, weights)
    image = root / "square.png"
    cv2.imwrite(str(image), make_image(1024, 1024, seed=6)[:, :, ::-1])
    return {"state": state, "weights": weights, "image": image, "root": root}


def _ultralytics_model(state):
    from ultralytics.models.sam.build import _build_sam

    # Ultralytics' own builder with the reduced encoder; the same tensors samkit reads.
    model = _build_sam(VIT.embed_dim, VIT.depth, VIT.num_heads, list(VIT.global_attn_indexes))
    model.load_state_dict(state)
    return model.eval()


def _run(imports, setup, cwd: Path) -> dict:
    code = SNIPPETS.replace("{sam}", imports["sam"]).replace("{predictor}", imports["predictor"])
    out: dict = {}
    cwd.mkdir()
    namespace = {"WEIGHTS": str(setup["weights"]), "SOURCE": str(setup["image"]), "out": out}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        mp.setattr(
            "ultralytics.models.sam.build.build_sam", lambda *_: _ultralytics_model(setup["state"])
        )
        exec(compile(code, "<snippets>", "exec"), namespace)
    return out


def test_ultralytics_snippets(setup) -> None:
    root = setup["root"]
    theirs = _run(ULTRALYTICS, setup, root / "ultralytics")
    ours = _run(SAMKIT, setup, root / "samkit")
    kept = 0
    for name, count in DOCUMENTED.items():
        (t,), (u,) = theirs[name], ours[name]
        # samkit filters only when asked: the Predictor overrides carry conf=0.25 on both
        # sides; the SAM calls are filtered here as Ultralytics does (score > 0.25).
        o = u if name.startswith("predictor") else u[u.scores > 0.25]
        print(f"{name}: ultralytics {len(t.masks or [])}, samkit {len(u)} ({len(o)} above 0.25; "
              f"documented {count}); scores {np.round(u.scores, 3).tolist()}")  # fmt: skip
        assert len(u) == count or name.startswith("predictor")
        assert len(o) == (0 if t.masks is None else len(t.masks)), name
        if len(o):
            kept += len(o)
            t_masks = t.masks.data.cpu().numpy()
            off = int((np.asarray(o.masks) != t_masks).sum())
            print(f"  masks differ in {off} of {t_masks.size} pixels")
            assert off <= 1e-4 * t_masks.size
            np.testing.assert_allclose(o.boxes.conf.numpy(), t.boxes.conf.cpu().numpy(), atol=1e-4)
            np.testing.assert_allclose(o.boxes.xyxy.numpy(), t.boxes.xyxy.cpu().numpy(), atol=1)
    assert kept >= 3, "too few masks above 0.25 for the comparison to mean anything"
    # Saved where Ultralytics saves by default (runs/segment/predict), named after the image.
    saved = sorted(p.relative_to(root / "samkit") for p in (root / "samkit").rglob("*.jpg"))
    assert saved == [Path("runs/segment/predict/square.jpg")]
    # The client loop over unfiltered samkit results: same shapes as Ultralytics' where kept.
    if "client" not in theirs:
        return
    shape_o, boxes_o, areas_o, orig, conf = ours["client"]
    shape_t, boxes_t, areas_t, orig_t, conf_t = theirs["client"]
    above = np.asarray(conf) > 0.25
    assert (shape_o[1:], boxes_o[1:], tuple(orig)) == (shape_t[1:], boxes_t[1:], tuple(orig_t))
    assert shape_t[0] == int(above.sum())
    areas_o, conf = np.asarray(areas_o)[above], np.asarray(conf)[above]
    np.testing.assert_allclose(areas_o, areas_t, rtol=1e-3)
    np.testing.assert_allclose(conf, conf_t, atol=1e-4)


def test_info_is_ultralytics_tuple(setup) -> None:
    from ultralytics.utils.torch_utils import model_info

    from samkit import SAM

    model = SAM(setup["weights"], device="cpu")
    info = model.info(verbose=False)
    _, params, grads, _ = model_info(_ultralytics_model(setup["state"]), verbose=True)
    assert isinstance(info, tuple) and len(info) == 4
    assert info[1:3] == (params, grads)  # layer counts follow each package's module tree
    assert info[0] == sum(1 for m in model.model.modules() if not m._modules)
    assert info.params_total == params and "parameters" in info.table()


def test_remove_small_regions_matches_ultralytics() -> None:
    from ultralytics.models.sam.predict import Predictor as Theirs

    from samkit import Predictor as Ours

    masks = torch.zeros(4, 40, 50, dtype=torch.bool)
    masks[0, 5:30, 5:30] = True
    masks[0, 10:12, 10:12] = False  # small hole
    masks[1, 5:30, 5:30] = True  # duplicate of mask 0 once its hole is filled
    masks[2, 2:4, 40:42] = True
    masks[2, 20:35, 30:48] = True  # small island + big part
    masks[3, 0:40, 0:3] = True
    ours, keep = Ours.remove_small_regions(masks, min_area=10, nms_thresh=0.7)
    ref, ref_keep = Theirs.remove_small_regions(masks, min_area=10, nms_thresh=0.7)
    assert sorted(keep.tolist()) == sorted(ref_keep.tolist()) and len(keep) == 3
    order = np.argsort(keep.numpy())
    ref_order = np.argsort(ref_keep.numpy())
    assert torch.equal(ours[order], ref[ref_order]) and ours.dtype == masks.dtype
    arr, keep_np = Ours.remove_small_regions(masks.numpy(), min_area=10)
    assert isinstance(arr, np.ndarray) and keep_np.tolist() == keep.tolist()


def test_segment_everything_takes_call_arguments(setup, tmp_path, monkeypatch) -> None:
    from samkit import SAM

    monkeypatch.chdir(tmp_path)
    model = SAM(setup["weights"], device="cpu")
    r = model(str(setup["image"]), device="cpu", imgsz=1024, retina_masks=True, points_stride=2,
              conf_thres=0.0, stability_score_thresh=0.0, save_txt=True, verbose=True)  # fmt: skip
    assert len(r) == 1 and (tmp_path / "runs/segment/predict/labels/square.txt").is_file()
    with pytest.raises(Exception, match="imgsz"):
        model(str(setup["image"]), points=[900, 370], imgsz=640)
