"""SAM 2.1 image path against Meta's ``sam2`` (PyPI 1.1.0, Meta's code): same seeded random
weights in the official checkpoint format; the three feature levels, low-res logits, IoU and
object scores within 1e-4 relative, masks within 0.01 % of pixels, for every prompt kind.

The default set runs the tiny trunk at a 256 input (Meta's model built from its config with
``image_size`` overridden: the resize is square, so small inputs are the same computation);
the slow set runs the real 1024 input.
"""

from __future__ import annotations

from pathlib import Path

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


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, SAM2ImagePredictor]:
    ref = meta_model("tiny", image_size=256, seed=3)
    path = write_checkpoint(ref, tmp_path_factory.mktemp("sam2") / "sam2.1_tiny_256.pt")
    ours = samkit_model(Path(path), "tiny", image_size=256)
    return meta_predictor(ref), SAM2ImagePredictor(ours)


def _compare(theirs: tuple[np.ndarray, ...], ours: tuple[np.ndarray, ...], label: str) -> None:
    masks_t, iou_t, low_t = theirs
    masks_o, iou_o, low_o = ours
    assert masks_o.shape == masks_t.shape and iou_o.shape == iou_t.shape
    e_low, e_iou = rel_err(low_o, low_t), rel_err(iou_o, iou_t)
    mis = mask_mismatch(masks_o, masks_t)
    print(f"{label}: low-res rel {e_low:.2e}, iou rel {e_iou:.2e}, mask mismatch {mis:.2e}")
    assert e_low < TOL and e_iou < TOL and mis <= MASK_TOL


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_features_match(pair: tuple[object, SAM2ImagePredictor], image: str) -> None:
    ref, ours = pair
    img = make_image(*IMAGES[image], seed=1)
    ref.set_image(img)  # type: ignore[attr-defined]
    ours.set_image(img)
    theirs = [*ref._features["high_res_feats"], ref._features["image_embed"]]  # type: ignore[attr-defined]
    assert ours._state is not None
    for level, (a, b) in enumerate(zip(ours._state.levels, theirs, strict=True)):
        err = rel_err(a, b)
        print(f"{image} level {level} {tuple(a.shape)}: rel {err:.2e}")
        assert a.shape == b.shape and err < TOL


@pytest.mark.parametrize("image", sorted(IMAGES))
@pytest.mark.parametrize("multimask", [True, False])
def test_prompts_match(
    pair: tuple[object, SAM2ImagePredictor], image: str, multimask: bool
) -> None:
    ref, ours = pair
    img = make_image(*IMAGES[image], seed=2)
    ref.set_image(img)  # type: ignore[attr-defined]
    ours.set_image(img)
    for name, kwargs in prompt_cases(*IMAGES[image]).items():
        theirs = ref.predict(multimask_output=multimask, **kwargs)  # type: ignore[attr-defined]
        mine = ours.predict(multimask_output=multimask, **kwargs)
        _compare(theirs, mine, f"{image} {name} multimask={multimask}")
        # iterative refinement with the previous low-res logits of the best mask
        best = theirs[2][np.argmax(theirs[1], axis=-1)] if theirs[2].ndim == 3 else None
        if best is not None:
            theirs2 = ref.predict(mask_input=best[None], multimask_output=multimask, **kwargs)  # type: ignore[attr-defined]
            mine2 = ours.predict(mask_input=best[None], multimask_output=multimask, **kwargs)
            _compare(theirs2, mine2, f"{image} {name}+mask multimask={multimask}")


def test_object_scores_match(pair: tuple[object, SAM2ImagePredictor]) -> None:
    ref, ours = pair
    img = make_image(*IMAGES["landscape"], seed=4)
    ours.set_image(img)
    ref.set_image(img)  # type: ignore[attr-defined]
    case = prompt_cases(*IMAGES["landscape"])["boxes"]
    ours.predict(**case)
    model = ref.model  # type: ignore[attr-defined]
    _, _, _, box = ref._prep_prompts(None, None, case["box"], None, True)  # type: ignore[attr-defined]
    with torch.no_grad():
        labels = torch.tensor([[2, 3]], dtype=torch.int).repeat(box.shape[0], 1)
        sparse, dense = model.sam_prompt_encoder(points=(box, labels), boxes=None, masks=None)
        _, _, _, obj = model.sam_mask_decoder(
            image_embeddings=ref._features["image_embed"],  # type: ignore[attr-defined]
            image_pe=model.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
            repeat_image=True,
            high_res_features=ref._features["high_res_feats"],  # type: ignore[attr-defined]
        )
    assert ours.last_object_scores is not None
    err = rel_err(ours.last_object_scores, obj)
    print(f"object scores rel {err:.2e}")
    assert ours.last_object_scores.shape == (3, 1) and err < TOL


def test_batch_api_matches(pair: tuple[object, SAM2ImagePredictor]) -> None:
    ref, ours = pair
    images = [make_image(*IMAGES["portrait"], seed=5), make_image(*IMAGES["landscape"], seed=6)]
    ref.set_image_batch(images)  # type: ignore[attr-defined]
    ours.set_image_batch(images)
    boxes = [prompt_cases(*im.shape[:2])["box"]["box"] for im in images]
    theirs = ref.predict_batch(None, None, box_batch=boxes, multimask_output=False)  # type: ignore[attr-defined]
    mine = ours.predict_batch(None, None, box_batch=boxes, multimask_output=False)
    for i in range(2):
        _compare(
            (theirs[0][i], theirs[1][i], theirs[2][i]),
            (mine[0][i], mine[1][i], mine[2][i]),
            f"batch image {i}",
        )
    emb = ours.get_image_embedding()
    assert rel_err(emb, ref.get_image_embedding()) < TOL  # type: ignore[attr-defined]


def test_plain_decoder_path_matches(pair: tuple[object, SAM2ImagePredictor]) -> None:
    """The decoder's reference path (used for export) gives the same as the fast path."""
    ref, ours = pair
    img = make_image(*IMAGES["portrait"], seed=7)
    ref.set_image(img)  # type: ignore[attr-defined]
    ours.set_image(img)
    decoder = ours.model.mask_decoder
    decoder.fast = False
    try:
        for name, kwargs in prompt_cases(*IMAGES["portrait"]).items():
            theirs = ref.predict(multimask_output=True, **kwargs)  # type: ignore[attr-defined]
            _compare(theirs, ours.predict(multimask_output=True, **kwargs), f"plain {name}")
    finally:
        decoder.fast = True
