"""EfficientViT-SAM parity with the upstream code on the same seeded random weights.

Reference: the PyPI ``efficientsam`` 1.0.0 wheel, a vendored copy of mit-han-lab/efficientvit's
``efficientvit/models`` (``nn/ops.py``, ``nn/act.py``, ``efficientvit/backbone.py`` and
``efficientvit/sam.py`` are identical to upstream but for import lines and formatting; its
``nn/norm.py`` drops only the unused Triton RMS norm and ``reset_bn``; its
``segment_anything`` copy differs from Meta's only in comment spelling), built as upstream's
``create_efficientvit_sam_model`` builds it (``set_norm_eps(model, 1e-6)``). The state dict is
saved as the official checkpoint and loaded through ``samkit.build_sam``; both predictors then
take the same images and prompts in original pixels: the 512-px encoder input with prompts and
masks in the 1024 frame is exercised end to end, corners included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import samkit
from reference import make_image, randomize, save_checkpoint
from samkit.zoo.configs import EFFICIENTVIT_L0, EFFICIENTVIT_XL1
from zoo_reference import CASES, IMAGES, compare_masks, report, scale

pytestmark = pytest.mark.parity


def _reference(name: str, seed: int, tmp_path: Path) -> tuple[Any, Path]:
    from efficientsam.models.efficientvit import sam as upstream
    from efficientsam.models.nn.norm import set_norm_eps

    model = getattr(upstream, f"efficientvit_sam_{name}")()
    set_norm_eps(model, 1e-6)
    ckpt = save_checkpoint(randomize(model, seed), tmp_path / f"renamed_{name}.pt")
    return upstream.EfficientViTSamPredictor(model.eval()), ckpt


def _compare(ref: Any, ours: samkit.SamPredictor, image: np.ndarray, kwargs: Any) -> None:
    m_r, s_r, l_r = ref.predict(**kwargs)
    m_o, s_o, l_o = ours.predict(**kwargs)
    report("low-res logits", l_o, l_r, 1e-3)
    report("iou", s_o, s_r, 1e-3)
    compare_masks(m_o, m_r)


def _check_predictors(ref: Any, ours: samkit.SamPredictor) -> None:
    for name, (h, w) in IMAGES.items():
        image = make_image(h, w, seed=len(name))
        ref.set_image(image)
        ours.set_image(image)
        print(f"[{name} {w}x{h}]")
        report("embedding", ours.features.numpy(), ref.features.numpy(), 1e-4)
        assert ours.get_image_state().input_size == tuple(ref.input_size)
        for case_name, case in CASES.items():
            print(f" case {case_name}")
            _compare(ref, ours, image, scale(case, h, w))


def test_efficientvit_l0_matches_upstream(tmp_path: Path) -> None:
    ref, ckpt = _reference("l0", seed=31, tmp_path=tmp_path)
    ours = samkit.SamPredictor(samkit.build_sam(ckpt))
    assert ours.model.config.encoder == EFFICIENTVIT_L0
    assert ours.model.variant == "efficientvit_sam_l0"
    norms = [
        m for m in ours.model.modules() if isinstance(m, torch.nn.LayerNorm | torch.nn.BatchNorm2d)
    ]
    assert norms and all(m.eps == 1e-6 for m in norms)  # the decoder transformer's included
    assert ours.geometry.encoder_side == 512 and ours.geometry.prompt_side == 1024
    _check_predictors(ref, ours)


def test_efficientvit_l0_points_near_corners_land_where_upstream_puts_them(
    tmp_path: Path,
) -> None:
    """A point 3 px inside each corner of a non-square image (and a box spanning all four):
    prompts go from original pixels to the 1024 frame while the encoder sees 512 px."""
    ref, ckpt = _reference("l0", seed=32, tmp_path=tmp_path)
    ours = samkit.SamPredictor(samkit.build_sam(ckpt))
    for h, w in ((300, 700), (650, 240)):
        image = make_image(h, w, seed=h)
        ref.set_image(image)
        ours.set_image(image)
        corners = np.array([[3, 3], [w - 4, 3], [3, h - 4], [w - 4, h - 4]], dtype=float)
        state = ours.get_image_state()
        mapped = ours.geometry.apply_coords(corners, state.original_size)
        np.testing.assert_allclose(mapped, ref.apply_coords(corners))
        assert mapped.max() < 1024 and max(state.input_size) == 1024
        for i, corner in enumerate(corners):
            print(f"[{w}x{h}] corner {i} at {corner.tolist()}")
            kwargs = {"point_coords": corner[None], "point_labels": np.array([1])}
            _compare(ref, ours, image, kwargs)
        print(f"[{w}x{h}] box over the four corners")
        _compare(ref, ours, image, {"box": np.array([3, 3, w - 4, h - 4], dtype=float)})


@pytest.mark.slow
def test_efficientvit_xl1_matches_upstream(tmp_path: Path) -> None:
    ref, ckpt = _reference("xl1", seed=33, tmp_path=tmp_path)
    ours = samkit.SamPredictor(samkit.build_sam(ckpt))
    assert ours.model.config.encoder == EFFICIENTVIT_XL1
    assert ours.geometry.encoder_side == 1024
    _check_predictors(ref, ours)
