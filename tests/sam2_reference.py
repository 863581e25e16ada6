"""Helpers for the SAM 2 parity tests: Meta's ``sam2`` network built from its own config with
hydra (``build_sam2``), seeded random weights written as an official ``{"model": state_dict}``
checkpoint, and samkit's network loaded from that file."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from reference import randomize
from samkit.modeling.sam2 import Sam2
from samkit.sam2.build import build_sam2_from_config, load_sam2_state
from samkit.sam2.variants import SAM2_VARIANTS
from samkit.weights import load_state_dict

META_CONFIGS = {
    "tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "small": "configs/sam2.1/sam2.1_hiera_s.yaml",
}


def meta_model(size: str = "tiny", image_size: int = 1024, seed: int = 0) -> torch.nn.Module:
    """Meta's SAM 2.1 network from its config (``image_size`` overridden when not 1024) with
    seeded random weights; eval mode, dynamic multimask on (Meta's image default)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sam2.build_sam import build_sam2

        overrides = [] if image_size == 1024 else [f"++model.image_size={image_size}"]
        model = build_sam2(META_CONFIGS[size], None, device="cpu", hydra_overrides_extra=overrides)
    randomize(model, seed)
    return model.eval()


def write_checkpoint(model: torch.nn.Module, path: Path) -> Path:
    """The official layout: ``{"model": state_dict}``."""
    torch.save({"model": model.state_dict()}, path)
    return path


def samkit_model(path: Path, size: str = "tiny", image_size: int = 1024) -> Sam2:
    """samkit's network of the same architecture, strictly loaded from ``path``."""
    config = replace(SAM2_VARIANTS[f"sam2.1_hiera_{size}"].config, image_size=image_size)
    model = build_sam2_from_config(config)
    load_sam2_state(model, load_state_dict(path), str(path))
    return model


def meta_predictor(model: torch.nn.Module, **kwargs: object) -> object:
    """Meta's ``SAM2ImagePredictor`` (feature sizes set for a reduced input side)."""
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    predictor = SAM2ImagePredictor(model, **kwargs)
    s = model.image_size // 16
    predictor._bb_feat_sizes = [(4 * s, 4 * s), (2 * s, 2 * s), (s, s)]
    return predictor


def rel_err(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """max |a - b| / max(max |b|, 1e-6)."""
    a64 = torch.as_tensor(np.asarray(a), dtype=torch.float64)
    b64 = torch.as_tensor(np.asarray(b), dtype=torch.float64)
    return float((a64 - b64).abs().max() / b64.abs().max().clamp_min(1e-6))


def mask_mismatch(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels where the two binary masks differ."""
    return float(np.mean(np.asarray(a) != np.asarray(b)))
