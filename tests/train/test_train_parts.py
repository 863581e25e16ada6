"""Pieces of fine-tuning: simulated prompts, SAM's loss, LoRA merging, trainable-part selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from samkit.build import build_from_config
from samkit.errors import SamkitError
from samkit.train.data import lowres_targets
from samkit.train.lora import LoRALinear, add_lora, merged_state_dict
from samkit.train.losses import LossWeights, dice_loss, focal_loss, sam_loss
from samkit.train.model import select_trainable
from samkit.train.prompting import add_error_clicks, first_prompts
from train_helpers import TINY_TRAIN_CONFIG


def _targets() -> tuple[torch.Tensor, np.ndarray]:
    """Two objects on a 64x64 low-res grid (256 input): a square and a disc."""
    t = torch.zeros(2, 64, 64)
    t[0, 10:20, 30:50] = 1
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    t[1] = (((yy - 45) ** 2 + (xx - 20) ** 2) <= 64).float()
    boxes = np.array([[120, 40, 199, 79], [48, 148, 115, 211]], np.float32)
    return t, boxes


@pytest.mark.parametrize("mode", ["box", "point", "mixed"])
def test_first_prompts_come_from_the_masks(mode: str) -> None:
    targets, boxes = _targets()
    groups = first_prompts(targets, boxes, np.random.default_rng(0), mode, 3, 0.1, 256)
    seen = sorted(int(i) for g in groups for i in g.index)
    assert seen == [0, 1]
    for g in groups:
        if g.boxes is not None:
            assert mode != "point"
            err = (g.boxes.numpy() - boxes[g.index.numpy()]).__abs__()
            assert err.max() <= 20 * 256 / 1024 + 1e-4  # jitter capped at 5 px for a 256 input
            continue
        assert mode != "box" and g.coords is not None and g.labels is not None
        for row, obj in enumerate(g.index.tolist()):
            valid = g.labels[row] == 1
            assert 1 <= int(valid.sum()) <= 3
            assert g.multimask == (int(valid.sum()) == 1)
            cells = (g.coords[row][valid] / 4).long()
            assert bool((targets[obj][cells[:, 1], cells[:, 0]] > 0.5).all())


def test_error_clicks_label_the_error() -> None:
    targets, boxes = _targets()
    group = first_prompts(targets, boxes, np.random.default_rng(1), "box", 1, 0.0, 256)[0]
    empty = torch.full((2, 1, 64, 64), -5.0)  # predicts nothing: clicks must be positive, inside
    nxt = add_error_clicks(group, empty, targets, np.random.default_rng(2), use_mask=True)
    assert nxt.labels is not None and nxt.coords is not None and nxt.boxes is not None
    assert nxt.labels.tolist() == [[1], [1]]
    assert nxt.mask_input is not None and nxt.mask_input.shape == (2, 1, 64, 64)
    full = torch.full((2, 1, 64, 64), 5.0)  # predicts everything: clicks negative, outside
    nxt = add_error_clicks(nxt, full, targets, np.random.default_rng(3), use_mask=False)
    assert nxt.labels.tolist() == [[1, 0], [1, 0]] and nxt.mask_input is None
    cells = (nxt.coords[:, 1] / 4).long()
    assert all(targets[i, cells[i, 1], cells[i, 0]] == 0 for i in range(2))


def test_loss_terms_and_multimask_minimum() -> None:
    target = torch.zeros(1, 8, 8)
    target[0, 2:6, 2:6] = 1
    good = target * 20 - 10
    bad = -good
    assert float(focal_loss(good, target)) < 1e-6 < float(focal_loss(bad, target))
    assert float(dice_loss(good, target)) < 1e-3 and float(dice_loss(bad, target)) > 0.9
    logits = torch.stack([bad, good, bad], dim=1)  # (1, 3, 8, 8): candidate 1 is right
    iou_pred = torch.tensor([[0.0, 1.0, 0.0]])
    loss, terms = sam_loss(logits, iou_pred, target, LossWeights())
    assert int(terms["best"][0]) == 1
    assert float(loss[0]) < 1e-2  # min over candidates, IoU head exact
    loss_wrong_iou, _ = sam_loss(logits, torch.tensor([[1.0, 0.0, 1.0]]), target, LossWeights())
    assert float(loss_wrong_iou[0]) == pytest.approx(1.0, abs=1e-2)  # MSE over all 3


def test_lowres_targets_cover_the_mask() -> None:
    mask = np.zeros((1, 100, 50), bool)
    mask[0, 20:60, 10:30] = True
    t = lowres_targets(mask, 256)  # 100 x 50 -> 256 x 128 input, 64 x 64 grid
    assert t.shape == (1, 64, 64) and t.dtype == np.uint8
    assert t[0, :, 32:].max() == 0  # padding stays empty
    coverage = t[0].astype(float).sum() / 255 * 16  # input pixels
    assert coverage == pytest.approx(40 * 20 * 2.56**2, rel=0.02)


def test_lora_merges_into_plain_weights() -> None:
    torch.manual_seed(0)
    model = build_from_config(TINY_TRAIN_CONFIG)
    before = model.state_dict()
    n = add_lora(model.image_encoder, rank=2)
    assert n == TINY_TRAIN_CONFIG.encoder.depth  # one qkv per block
    layer = model.image_encoder.blocks[0].attn.qkv
    assert isinstance(layer, LoRALinear)
    torch.nn.init.normal_(layer.lora_B)
    x = torch.randn(3, layer.in_features)
    plain = torch.nn.functional.linear(x, layer.weight, layer.bias)
    assert torch.allclose(layer(x), plain, atol=1e-5)
    merged = merged_state_dict(model)
    assert set(merged) == set(before)
    key = "image_encoder.blocks.0.attn.qkv.weight"
    assert not torch.equal(merged[key], before[key])
    fresh = build_from_config(TINY_TRAIN_CONFIG)
    fresh.load_state_dict(merged)
    img = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        diff = (fresh.image_encoder(img) - model.image_encoder(img)).abs().max()
    print(f"LoRA merged vs adapter encoder: max diff {float(diff):.2e}")
    assert float(diff) < 1e-4


def test_select_trainable_parts() -> None:
    model = build_from_config(TINY_TRAIN_CONFIG)
    assert select_trainable(model, ["decoder"]) is False
    trains = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trains == {"mask_decoder"}
    model = build_from_config(TINY_TRAIN_CONFIG)
    assert select_trainable(model, ["decoder", "encoder"], encoder_blocks=1) is True
    names = [n for n, p in model.named_parameters() if p.requires_grad and n.startswith("image")]
    assert names and all(
        n.startswith(("image_encoder.blocks.1.", "image_encoder.neck.")) for n in names
    )
    with pytest.raises(SamkitError, match="parts among"):
        select_trainable(build_from_config(TINY_TRAIN_CONFIG), ["decoderr"])
    with pytest.raises(SamkitError, match="lora_rank"):
        select_trainable(build_from_config(TINY_TRAIN_CONFIG), ["encoder"], lora_rank=2)
