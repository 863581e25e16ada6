"""Model summary: parameter counts per component, checkpoint size, GFLOPs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from samkit.build import build_from_config
from samkit.registry import VARIANTS
from samkit.summary import compute_gflops, model_summary


def test_mobile_sam_summary_matches_published_figures(tmp_path: Path) -> None:
    model = build_from_config(VARIANTS["mobile_sam"].config)
    ckpt = tmp_path / "mobile_sam.pt"
    torch.save(model.state_dict(), ckpt)
    summary = model_summary(model, ckpt)
    # MobileSAM: 10.13 M in the official file, of which 0.32 M is TinyViT's unused classifier.
    assert summary.params_total == pytest.approx(9.81e6, rel=2e-3)
    assert summary.params_mask_decoder == pytest.approx(4.06e6, rel=2e-3)
    assert summary.encoder_gflops == pytest.approx(77.5, rel=5e-3)
    assert summary.decoder_gflops == pytest.approx(3.6, rel=2e-2)
    assert summary.checkpoint_bytes == ckpt.stat().st_size
    text = summary.table()
    assert "mobile_sam" in text and "GFLOPs" in text
    assert summary.as_dict()["params_total"] == summary.params_total


def test_sam_b_summary_uses_registry_size_without_file() -> None:
    with torch.device("meta"):
        model = build_from_config(VARIANTS["sam_b"].config)
    summary = model_summary(model)
    assert summary.params_total == pytest.approx(93.7e6, rel=1e-3)
    assert summary.checkpoint == "sam_vit_b_01ec64.pth"
    assert summary.checkpoint_bytes == 375_042_383


def test_vit_h_encoder_costs_more_than_vit_b() -> None:
    b, _ = compute_gflops(VARIANTS["sam_b"].config)
    h, dec = compute_gflops(VARIANTS["sam_h"].config)
    assert b == pytest.approx(972, rel=1e-2)
    assert h > 5 * b
    assert dec == pytest.approx(3.6, rel=2e-2)
