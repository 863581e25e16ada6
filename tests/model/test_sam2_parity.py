"""SAM 2.1 image path against Meta's ``sam2`` (PyPI 1.1.0, Meta's code): same seeded random
weights in the official checkpoint format; the three feature levels, low-res logits, IoU and
object scores within 1e-4 relative, masks within 0.01 % of pixels, for every prompt kind.

The default set runs the tiny trunk at a 128 input (Meta's model built from its config with
``image_size`` overridden: the resize is square, so a small input is the same computation on a
smaller grid); the slow set runs the real 1024 input on larger images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from reference import make_image
from sam2_reference import (
    mask_mismatch,
    meta_model,
    meta_predictor,
    rel_err,
    samkit_model,
    write_checkpoint,
)
from samkit.sam2 import SAM2ImagePredictor

pytestmark = pytest.mark.parity
pytest.importorskip("sam2")
pytest.importorskip("hydra")

TOL = 1e-4
MASK_TOL = 1e-4  # 0.01 % of pixels

IMAGES = {"portrait": (300, 200), "landscape": (180, 320)}
FULL_IMAGES = {"portrait": (640, 480), "landscape": (480, 720)}


def prompt_cases(h: int, w: int) -> dict[str, dict[str, object]]:
    """Every prompt kind, in original-image pixels."""
    p = np.array([[0.4 * w, 0.5 * h]])
    box = np.array([0.2 * w, 0.25 * h, 0.7 * w, 0.8 * h])
    return {
        "point": dict(point_coords=p, point_labels=np.array([1])),
        "pos_neg": dict(
            point_coords=np.array([[0.4 * w, 0.5 * h], [0.8 * w, 0.2 * h], [0.3 * w, 0.9 * h]]),
            point_labels=np.array([1, 0, 1]),
        ),
        "box": dict(box=box),
        "box_points": dict(box=box, point_coords=p, point_labels=np.array([0])),
        "boxes": dict(
            box=np.stack([box, box * 0.5, np.array([0.5 * w, 0.1 * h, 0.95 * w, 0.6 * h])])
        ),
        "point_groups": dict(
            point_coords=np.array([[[0.4 * w, 0.5 * h], [0.1 * w, 0.1 * h]]] * 2)
            + np.array([[[0.0, 0.0]], [[10.0, 5.0]]]),
            point_labels=np.array([[1, 0], [1, 1]]),
        ),
    }


def _pair(tmp: Path, image_size: int, seed: int) -> tuple[Any, SAM2ImagePredictor]:
    ref = meta_model("tiny", image_size=image_size, seed=seed)
    path = write_checkpoint(ref, tmp / f"sam2.1_tiny_{image_size}.pt")
    return meta_predictor(ref), SAM2ImagePredictor(samkit_model(path, "tiny", image_size))


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, SAM2ImagePredictor]:
    return _pair(tmp_path_factory.mktemp("sam2"), 128, seed=3)


def _compare(theirs: tuple[np.ndarray, ...], ours: tuple[np.ndarray, ...], label: str) -> None:
    masks_t, iou_t, low_t = theirs
    masks_o, iou_o, low_o = ours
    assert masks_o.shape == masks_t.shape and iou_o.shape == iou_t.shape
    e_low, e_iou = rel_err(low_o, low_t), rel_err(iou_o, iou_t)
    mis = mask_mismatch(masks_o, masks_t)
    print(f"{label}: low-res rel {e_low:.2e}, iou rel {e_iou:.2e}, mask mismatch {mis:.2e}")
    assert e_low < TOL and e_iou < TOL and mis <= MASK_TOL


def _meta_object_scores(ref: Any, box: np.ndarray) -> torch.Tensor:
    """Meta's decoder called directly (its predictor drops the object scores)."""
    model = ref.model
    _, _, _, corners = ref._prep_prompts(None, None, box, None, True)
    labels = torch.tensor([[2, 3]], dtype=torch.int).repeat(corners.shape[0], 1)
    with torch.no_grad():
        sparse, dense = model.sam_prompt_encoder(points=(corners, labels), boxes=None, masks=None)
        return model.sam_mask_decoder(
            image_embeddings=ref._features["image_embed"],
            image_pe=model.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
            repeat_image=corners.shape[0] > 1,
            high_res_features=ref._features["high_res_feats"],
        )[3]


def check_image_path(ref: Any, ours: SAM2ImagePredictor, img: np.ndarray, label: str) -> None:
    """Features, every prompt kind both ways, refinement with mask input, object scores."""
    ref.set_image(img)
    ours.set_image(img)
    theirs_levels = [*ref._features["high_res_feats"], ref._features["image_embed"]]
    assert ours._state is not None
    for level, (a, b) in enumerate(zip(ours._state.levels, theirs_levels, strict=True)):
        err = rel_err(a, b)
        print(f"{label} level {level} {tuple(a.shape)}: rel {err:.2e}")
        assert a.shape == b.shape and err < TOL
    cases = prompt_cases(*img.shape[:2])
    for multimask in (True, False):
        for name, kwargs in cases.items():
            theirs = ref.predict(multimask_output=multimask, **kwargs)
            _compare(
                theirs,
                ours.predict(multimask_output=multimask, **kwargs),
                f"{label} {name} mm={multimask}",
            )
            if name in ("point", "pos_neg", "box") and multimask:
                best = theirs[2][[int(np.argmax(theirs[1]))]]
                again = dict(kwargs, mask_input=best, multimask_output=False)
                _compare(ref.predict(**again), ours.predict(**again), f"{label} {name}+mask")
    boxes = cases["boxes"]["box"]
    ours.predict(box=boxes)
    assert ours.last_object_scores is not None and ours.last_object_scores.shape == (3, 1)
    err = rel_err(ours.last_object_scores, _meta_object_scores(ref, boxes))
    print(f"{label} object scores rel {err:.2e}")
    assert err < TOL


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_image_path_matches(pair: tuple[Any, SAM2ImagePredictor], image: str) -> None:
    ref, ours = pair
    check_image_path(ref, ours, make_image(*IMAGES[image], seed=2), image)


def test_plain_decoder_path_matches(pair: tuple[Any, SAM2ImagePredictor]) -> None:
    """The decoder's reference path (the one export traces) gives Meta's outputs too."""
    ref, ours = pair
    img = make_image(*IMAGES["portrait"], seed=7)
    ref.set_image(img)
    ours.set_image(img)
    ours.model.mask_decoder.fast = False
    try:
        for name, kwargs in prompt_cases(*IMAGES["portrait"]).items():
            theirs = ref.predict(multimask_output=False, **kwargs)
            _compare(theirs, ours.predict(multimask_output=False, **kwargs), f"plain {name}")
    finally:
        ours.model.mask_decoder.fast = True


def test_batch_api_matches(pair: tuple[Any, SAM2ImagePredictor]) -> None:
    ref, ours = pair
    images = [make_image(*IMAGES["portrait"], seed=5), make_image(*IMAGES["landscape"], seed=6)]
    ref.set_image_batch(images)
    ours.set_image_batch(images)
    boxes = [prompt_cases(*im.shape[:2])["box"]["box"] for im in images]
    theirs = ref.predict_batch(None, None, box_batch=boxes, multimask_output=False)
    mine = ours.predict_batch(None, None, box_batch=boxes, multimask_output=False)
    for i in range(2):
        _compare(
            (theirs[0][i], theirs[1][i], theirs[2][i]),
            (mine[0][i], mine[1][i], mine[2][i]),
            f"batch image {i}",
        )
    assert rel_err(ours.get_image_embedding(), ref.get_image_embedding()) < TOL


@pytest.mark.slow
@pytest.mark.parametrize("image", [pytest.param("portrait", marks=pytest.mark.ci), "landscape"])
def test_image_path_matches_full_size(tmp_path: Path, image: str) -> None:
    """The real 1024 input of the tiny trunk on larger images."""
    ref, ours = _pair(tmp_path, 1024, seed=11)
    check_image_path(ref, ours, make_image(*FULL_IMAGES[image], seed=12), f"1024 {image}")
