"""Segment everything's speed paths: the decoder's output limits (exact), fast mode's skipped
points (covered by kept masks) and its agreement with exact mode."""

from __future__ import annotations

import pytest
import torch

from amg_weights import blob_weights
from reference import make_image, randomize, reference_vit
from samkit.build import build_from_config
from samkit.modeling.decoder_fast import OutputLimits
from samkit.predictor import SamPredictor
from samkit.registry import SamConfig, ViTConfig

TINY_VIT = ViTConfig(embed_dim=64, depth=1, num_heads=2, global_attn_indexes=())


@pytest.fixture(scope="module")
def blob_model() -> torch.nn.Module:
    state = blob_weights(randomize(reference_vit(TINY_VIT), 0))
    model = build_from_config(SamConfig(encoder=TINY_VIT))
    model.load_state_dict(state)
    return model.eval()


def test_output_limits_compute_the_same_logits(blob_model) -> None:
    """Limited decoding (rows / columns of the resized image, prompts above an IoU floor)
    returns the unlimited call's values where it computes, zeros elsewhere, same IoUs."""
    predictor = SamPredictor(blob_model)
    predictor.set_image(make_image(300, 640, seed=1))
    gen = torch.Generator().manual_seed(0)
    pts = torch.rand(12, 1, 2, generator=gen) * torch.tensor([1024.0, 480.0])
    labels = torch.ones(12, 1, dtype=torch.int)
    full, iou = predictor.decode_low_res(pts, labels)
    limits = OutputLimits(rows=122, cols=250, iou_floor=0.9)
    cut, iou_cut = predictor.decode_low_res(pts, labels, limits=limits)
    active = (iou > 0.9).any(1)
    assert torch.equal(iou, iou_cut)
    assert 0 < int(active.sum()) < len(active), "the IoU floor should drop some prompts"
    assert torch.equal(cut[active][..., :124, :252], full[active][..., :124, :252])
    assert not cut[~active].any() and not cut[..., 124:, :].any() and not cut[..., 252:].any()
    assert not torch.equal(full[..., 124:, :], torch.zeros_like(full[..., 124:, :]))
