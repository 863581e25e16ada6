"""SamPredictor behaviour beyond parity: input validation, image state caching, formats."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import samkit
from reference import SMALL_CONFIG, make_image, randomize
from samkit.build import build_from_config
from samkit.errors import PromptError, SamkitError


@pytest.fixture(scope="module")
def predictor() -> samkit.SamPredictor:
    model = build_from_config(SMALL_CONFIG)
    randomize(model, seed=5)
    pred = samkit.SamPredictor(model)
    pred.set_image(make_image(120, 200, seed=1))
    return pred


POINT = {"point_coords": np.array([[80.0, 60.0]]), "point_labels": np.array([1])}


def test_shapes_follow_the_reference(predictor: samkit.SamPredictor) -> None:
    masks, scores, low_res = predictor.predict(**POINT)
    assert masks.shape == (3, 120, 200) and masks.dtype == np.bool_
    assert scores.shape == (3,) and scores.dtype == np.float32
    assert low_res.shape == (3, 256, 256)
    masks, scores, low_res = predictor.predict(**POINT, multimask_output=False)
    assert masks.shape == (1, 120, 200) and scores.shape == (1,) and low_res.shape == (1, 256, 256)
    logits, _, _ = predictor.predict(**POINT, return_logits=True)
    assert logits.dtype == np.float32
    assert np.array_equal(logits > 0, predictor.predict(**POINT)[0])


def test_image_state_round_trip_skips_the_encoder(predictor: samkit.SamPredictor) -> None:
    expected = predictor.predict(**POINT)
    state = predictor.get_image_state()
    other = samkit.SamPredictor(predictor.model)
    calls = []
    handle = other.model.image_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        other.set_image_state(state)
        got = other.predict(**POINT)
    finally:
        handle.remove()
    assert calls == []
    for a, b in zip(expected, got, strict=True):
        assert np.array_equal(a, b)
    assert other.get_image_embedding().shape == (1, 256, 64, 64)


def test_bgr_input_equals_rgb(predictor: samkit.SamPredictor) -> None:
    image = make_image(90, 70, seed=3)
    predictor.set_image(image)
    rgb = predictor.predict(**POINT)
    predictor.set_image(np.ascontiguousarray(image[..., ::-1]), image_format="BGR")
    bgr = predictor.predict(**POINT)
    assert np.array_equal(rgb[0], bgr[0]) and np.allclose(rgb[1], bgr[1])


def test_set_torch_image_matches_set_image(predictor: samkit.SamPredictor) -> None:
    image = make_image(100, 160, seed=4)
    predictor.set_image(image)
    expected = predictor.get_image_embedding().clone()
    resized = samkit.transforms.resize_image(image, 1024)
    tensor = torch.as_tensor(np.array(resized)).permute(2, 0, 1)[None]
    predictor.set_torch_image(tensor, image.shape[:2])
    assert torch.allclose(predictor.get_image_embedding(), expected, atol=1e-6)


def test_grayscale_is_accepted(predictor: samkit.SamPredictor) -> None:
    gray = make_image(64, 64, seed=2)[..., 0]
    predictor.set_image(gray)
    assert predictor.original_size == (64, 64)


def test_predict_without_image_raises() -> None:
    pred = samkit.SamPredictor(build_from_config(SMALL_CONFIG))
    with pytest.raises(SamkitError, match="set_image"):
        pred.predict(**POINT)
    pred.set_image(make_image(32, 32))
    pred.reset_image()
    assert not pred.is_image_set
    with pytest.raises(SamkitError, match="set_image"):
        pred.get_image_embedding()


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((10, 10, 4), np.uint8), r"shape \(H, W, 3\)"),
        (np.zeros((10, 10, 3), np.float32), "uint8"),
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        ([[1, 2, 3]], "numpy array"),
    ],
)
def test_bad_images_are_named(predictor: samkit.SamPredictor, image: object, message: str) -> None:
    with pytest.raises(SamkitError, match=message):
        predictor.set_image(image)  # type: ignore[arg-type]


def test_bad_image_format(predictor: samkit.SamPredictor) -> None:
    with pytest.raises(SamkitError, match="image_format"):
        predictor.set_image(make_image(16, 16), image_format="RGBA")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"point_coords": np.array([[1.0, 2.0]])}, "together"),
        ({"point_coords": np.array([1.0, 2.0]), "point_labels": np.array([1])}, r"\(K, 2\)"),
        ({"point_coords": np.array([[1.0, 2.0]]), "point_labels": np.array([1, 0])}, r"\(1,\)"),
        ({"point_coords": np.array([[np.nan, 2.0]]), "point_labels": np.array([1])}, "NaN"),
        ({"point_coords": np.array([[1.0, 2.0]]), "point_labels": np.array([5])}, "foreground"),
        ({"point_coords": np.array([["1", "2"]]), "point_labels": np.array([1])}, "numbers"),
        ({"point_coords": [["a", 2]], "point_labels": [1]}, "numbers"),
        ({"point_coords": np.array([[1e300, 2.0]]), "point_labels": np.array([1])}, "at most"),
        ({"box": np.array([np.nan, 2.0, 3.0, 4.0])}, "NaN"),
        ({"box": np.array([np.inf, 2.0, 3.0, 4.0])}, "infinite"),
        ({"box": np.array([1.0, 2.0, 3.0, 1e300])}, "at most"),
        (
            {"box": np.array([1.0, 2.0, 3.0, 4.0]), "mask_input": np.full((1, 256, 256), np.nan)},
            "NaN",
        ),
        (
            {"box": np.array([1.0, 2.0, 3.0, 4.0]), "mask_input": np.full((1, 256, 256), 1e300)},
            "float32",
        ),
        ({"box": np.array([1.0, 2.0, 3.0])}, "4 numbers"),
        (
            {"box": np.array([1.0, 2.0, 3.0, 4.0]), "mask_input": np.zeros((256, 256))},
            r"\(1, 256, 256\)",
        ),
    ],
)
def test_bad_prompts_are_named(
    predictor: samkit.SamPredictor, kwargs: dict[str, np.ndarray], message: str
) -> None:
    with pytest.raises(PromptError, match=message):
        predictor.predict(**kwargs)


def test_state_of_wrong_shape_is_refused(predictor: samkit.SamPredictor) -> None:
    state = samkit.predictor.ImageState(torch.zeros(1, 256, 32, 32), (10, 10), (1024, 1024))
    with pytest.raises(SamkitError, match="features"):
        predictor.set_image_state(state)


def test_mask_input_size_follows_the_model() -> None:
    """A 256-input model has 64x64 low-res logits: its own logits are accepted as mask_input,
    the 1024-model shape is refused with the expected shape named."""
    from front_helpers import TINY_CONFIG

    model = build_from_config(TINY_CONFIG)
    randomize(model, seed=2)
    pred = samkit.SamPredictor(model)
    pred.set_image(make_image(60, 90, seed=3))
    _, _, low = pred.predict(**POINT | {"point_coords": np.array([[40.0, 30.0]])})
    assert low.shape == (3, 64, 64)
    masks, _, _ = pred.predict(mask_input=low[:1], multimask_output=False)
    assert masks.shape == (1, 60, 90)
    with pytest.raises(PromptError, match=r"\(1, 64, 64\)"):
        pred.predict(mask_input=np.zeros((1, 256, 256), np.float32))
