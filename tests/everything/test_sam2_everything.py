"""SAM2AutomaticMaskGenerator against Meta's on the disc-drawing SAM 2 weights
(:mod:`sam2_amg_weights`): the same mask set, scores and boxes, with Meta's defaults, m2m
refinement, one mask per point, and crops."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from reference import make_image

pytestmark = pytest.mark.parity
pytest.importorskip("sam2")
pytest.importorskip("hydra")

CASES = {
    "defaults": dict(points_per_side=5),
    "m2m": dict(points_per_side=4, use_m2m=True),
    "single_mask": dict(points_per_side=5, multimask_output=False),
    "rle": dict(points_per_side=4, output_mode="uncompressed_rle"),
}
SLOW_CASES = {"crops": dict(points_per_side=3, crop_n_layers=1)}


@pytest.fixture(scope="module")
def blob_pair() -> tuple[Any, Any]:
    from sam2_amg_weights import blob_models

    return blob_models(image_size=128, seed=0)


def _meta_generator(ref: Any, **kwargs: Any) -> Any:
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    gen = SAM2AutomaticMaskGenerator(ref, **kwargs)
    s = ref.image_size // 16
    gen.predictor._bb_feat_sizes = [(4 * s, 4 * s), (2 * s, 2 * s), (s, s)]
    return gen


def _key(record: dict[str, Any]) -> tuple[Any, ...]:
    return (tuple(record["bbox"]), record["area"], tuple(record["point_coords"][0]))


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_mask_set_as_meta(blob_pair: tuple[Any, Any], case: str) -> None:
    _check(blob_pair, case, CASES[case])


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SLOW_CASES))
def test_same_mask_set_as_meta_slow(blob_pair: tuple[Any, Any], case: str) -> None:
    _check(blob_pair, case, SLOW_CASES[case])


def _check(blob_pair: tuple[Any, Any], case: str, kwargs: dict[str, Any]) -> None:
    from samkit import SAM2AutomaticMaskGenerator

    ref, ours = blob_pair
    image = make_image(150, 220, seed=3)
    theirs = sorted(_meta_generator(ref, **kwargs).generate(image), key=_key)
    mine = sorted(SAM2AutomaticMaskGenerator(ours, **kwargs).generate(image), key=_key)
    print(f"{case}: Meta {len(theirs)} masks, samkit {len(mine)}")
    assert len(theirs) > 3 and len(mine) == len(theirs)
    worst = 0.0
    for a, b in zip(mine, theirs, strict=True):
        assert a["bbox"] == b["bbox"] and a["area"] == b["area"] and a["crop_box"] == b["crop_box"]
        assert np.allclose(a["point_coords"], b["point_coords"])
        if isinstance(a["segmentation"], dict):
            assert a["segmentation"]["counts"] == b["segmentation"]["counts"]
        else:
            assert np.array_equal(a["segmentation"], b["segmentation"])
        worst = max(worst, abs(a["predicted_iou"] - b["predicted_iou"]))
        worst = max(worst, abs(a["stability_score"] - b["stability_score"]))
    print(f"{case}: max score difference {worst:.2e}")
    assert worst < 1e-4


def test_defaults_and_refusals(blob_pair: tuple[Any, Any]) -> None:
    from samkit import SAM2AutomaticMaskGenerator, SamAutomaticMaskGenerator
    from samkit.errors import ArgumentError

    _, ours = blob_pair
    gen = SAM2AutomaticMaskGenerator(ours)
    assert (gen.pred_iou_thresh, gen.points_per_batch, gen.use_m2m) == (0.8, 64, False)
    assert gen.multimask_output and gen.stability_score_thresh == 0.95
    with pytest.raises(ArgumentError, match="mask_threshold"):
        SAM2AutomaticMaskGenerator(ours, mask_threshold=0.5)
    with pytest.raises(ArgumentError, match="exactly one"):
        SAM2AutomaticMaskGenerator(ours, points_per_side=None)
    assert isinstance(gen, SamAutomaticMaskGenerator)


def test_samkit_generator_on_the_sam2_engine(blob_pair: tuple[Any, Any]) -> None:
    """samkit's own generator (SAM's defaults, as the front's segment everything runs it) on a
    SAM 2 engine: Meta's SAM 2 generator's masks at the same thresholds."""
    from samkit import SamAutomaticMaskGenerator
    from samkit.sam2.engine import Sam2Engine

    ref, ours = blob_pair
    image = make_image(150, 220, seed=4)
    theirs = sorted(
        _meta_generator(ref, points_per_side=5, pred_iou_thresh=0.88).generate(image), key=_key
    )
    gen = SamAutomaticMaskGenerator(Sam2Engine(ours), points_per_side=5)
    mine = sorted(gen.generate(image), key=_key)
    print(f"samkit generator: Meta {len(theirs)} masks, samkit {len(mine)}")
    assert len(theirs) > 3 and len(mine) == len(theirs)
    for a, b in zip(mine, theirs, strict=True):
        assert a["bbox"] == b["bbox"] and np.array_equal(a["segmentation"], b["segmentation"])
        assert abs(a["predicted_iou"] - b["predicted_iou"]) < 1e-4


def test_front_segment_everything(blob_pair: tuple[Any, Any]) -> None:
    """``SAM(sam2_network)(image)`` with no prompt: samkit's generator on the SAM 2 engine, the
    masks Meta's SAM 2 generator finds at SAM's default IoU threshold."""
    from samkit import SAM

    ref, ours = blob_pair
    image = make_image(150, 220, seed=6)
    theirs = _meta_generator(ref, points_per_side=5, pred_iou_thresh=0.88).generate(image)
    result = SAM(ours)(np.ascontiguousarray(image[..., ::-1]), points_per_side=5)[0]
    masks = np.asarray(result.masks.data.cpu())
    print(f"front: Meta {len(theirs)} masks, samkit {len(masks)}")
    assert len(theirs) > 3 and len(masks) == len(theirs)
    ours_set = sorted(m.tobytes() for m in masks.astype(bool))
    assert ours_set == sorted(np.asarray(t["segmentation"], bool).tobytes() for t in theirs)
