"""SAM 2 through samkit's front (``SAM(...)``): every prompt shape samkit accepts gives Meta's
``SAM2ImagePredictor`` results (same seeded weights in the official format)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reference import make_image
from sam2_reference import mask_mismatch, meta_model, meta_predictor, rel_err, samkit_model

pytestmark = pytest.mark.parity
pytest.importorskip("sam2")
pytest.importorskip("hydra")

H, W = 180, 260
TOL = 1e-4


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, np.ndarray]:
    from samkit import SAM

    ref = meta_model("tiny", image_size=128, seed=8)
    path = tmp_path_factory.mktemp("sam2front") / "tiny128.pt"
    import torch

    torch.save({"model": ref.state_dict()}, path)
    front = SAM(samkit_model(Path(path), "tiny", 128))
    image = make_image(H, W, seed=9)
    predictor = meta_predictor(ref)
    predictor.set_image(image)
    return front, predictor, image


def _check(result: Any, theirs: tuple[np.ndarray, ...], label: str) -> None:
    masks_t, iou_t, low_t = (np.asarray(a) for a in theirs)
    scores = np.asarray(result.scores).reshape(iou_t.shape)
    low = np.clip(np.asarray(result.low_res_logits), -32, 32).reshape(low_t.shape)
    masks = np.asarray(result.masks.data.cpu()).reshape(masks_t.shape)
    e_iou, e_low = rel_err(scores, iou_t), rel_err(low, low_t)
    mis = mask_mismatch(masks, masks_t.astype(bool))
    print(f"{label}: iou rel {e_iou:.2e}, low-res rel {e_low:.2e}, mask mismatch {mis:.2e}")
    assert e_iou < TOL and e_low < TOL and mis <= 1e-4


def test_prompt_shapes_match_meta(setup: tuple[Any, Any, np.ndarray]) -> None:
    front, ref, image = setup
    bgr = np.ascontiguousarray(image[..., ::-1])
    p, q = [60.0, 80.0], [200.0, 40.0]
    box, box2 = [30.0, 20.0, 150.0, 160.0], [120.0, 10.0, 250.0, 120.0]

    r = front.predict(bgr, points=p)[0]
    _check(r, ref.predict(np.array([p]), np.array([1]), multimask_output=False), "one point")
    r = front.predict(bgr, points=[p, q], labels=[1, 0])[0]
    theirs = ref.predict(np.array([p, q]), np.array([1, 0]), multimask_output=False)
    _check(r, theirs, "positive + negative")
    r = front.predict(bgr, bboxes=[box, box2])[0]
    _check(r, ref.predict(box=np.array([box, box2]), multimask_output=False), "two boxes")
    r = front.predict(bgr, bboxes=box, points=[p], labels=[1])[0]
    theirs = ref.predict(np.array([p]), np.array([1]), box=np.array(box), multimask_output=False)
    _check(r, theirs, "box + point")
    r = front.predict(bgr, points=p, multimask_output=True)[0]
    _check(r, ref.predict(np.array([p]), np.array([1]), multimask_output=True), "multimask")
    single = front.predict(bgr, points=p)[0]
    refined = front.predict(bgr, points=p, masks=single)[0]  # iterative refinement
    first = ref.predict(np.array([p]), np.array([1]), multimask_output=False)[2]
    theirs = ref.predict(np.array([p]), np.array([1]), mask_input=first, multimask_output=False)
    _check(refined, theirs, "refinement")


def test_ragged_groups_and_many_objects(setup: tuple[Any, Any, np.ndarray]) -> None:
    front, ref, image = setup
    bgr = np.ascontiguousarray(image[..., ::-1])
    groups = [np.array([[60.0, 80.0]]), np.array([[200.0, 40.0], [210.0, 90.0], [20.0, 20.0]])]
    labels = [np.array([1]), np.array([1, 1, 0])]
    r = front.predict(bgr, points=groups, labels=labels)[0]
    assert len(r.scores) == 2
    for i, (g, lab) in enumerate(zip(groups, labels, strict=True)):
        theirs = ref.predict(g, lab, multimask_output=False)
        assert rel_err(np.asarray(r.scores)[i], theirs[1]) < TOL, f"group {i}"
        low = np.clip(np.asarray(r.low_res_logits)[i], -32, 32)
        assert rel_err(low, theirs[2]) < TOL
    many = front.predict(bgr, points=[[60.0, 80.0], [200.0, 40.0], [120.0, 150.0]])[0]
    assert len(many.scores) == 3  # Ultralytics' shape: one object per point
    binary = front.predict(bgr, masks=np.asarray(many.masks.data.cpu())[0])[0]
    assert np.asarray(binary.masks.data.cpu()).shape == (1, H, W)
