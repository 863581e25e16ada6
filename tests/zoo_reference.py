"""Helpers of the zoo parity tests: error reports with the tolerances of ``test_parity.py``,
prompt cases in fractions of the image, and the Hugging Face ``transformers`` reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

IMAGES = {"landscape": (427, 640), "portrait": (700, 466)}
CASES: dict[str, dict[str, np.ndarray]] = {
    "point": {"point_coords": np.array([[0.45, 0.4]]), "point_labels": np.array([1])},
    "pos_neg": {
        "point_coords": np.array([[0.45, 0.4], [0.2, 0.75]]),
        "point_labels": np.array([1, 0]),
    },
    "box": {"box": np.array([0.1, 0.15, 0.7, 0.8])},
    "box_point": {
        "box": np.array([0.1, 0.15, 0.7, 0.8]),
        "point_coords": np.array([[0.4, 0.5]]),
        "point_labels": np.array([1]),
    },
}


def scale(case: dict[str, np.ndarray], h: int, w: int) -> dict[str, np.ndarray]:
    """A case written in fractions of the image, in pixels of an (h, w) image."""
    out = dict(case)
    if "point_coords" in out:
        out["point_coords"] = out["point_coords"] * np.array([w, h])
    if "box" in out:
        out["box"] = out["box"] * np.array([w, h, w, h])
    return out


def report(what: str, ours: Any, ref: Any, rel_tol: float) -> float:
    """Print and check max|ours - ref| <= rel_tol * max|ref|; returns the ratio."""
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} vs {ref.shape}"
    err = float(np.abs(ours - ref).max())
    top = float(np.abs(ref).max())
    print(f"  {what}: max|diff| {err:.3e}  max|ref| {top:.3e}  ratio {err / top:.2e}")
    assert err <= rel_tol * top, f"{what}: {err} > {rel_tol} * {top}"
    return err / top


def compare_masks(ours: Any, ref: Any) -> float:
    """Masks differ on at most 0.01 % of pixels; returns the fraction that differs."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape and ours.dtype == ref.dtype == np.bool_
    frac = float((ours != ref).mean())
    print(f"  masks: {frac:.2e} of pixels differ ({ref.mean():.3f} foreground)")
    assert frac <= 1e-4
    assert 0.0 < ref.mean() < 1.0, "degenerate case: masks are all one value"
    return frac


def save_hf_checkpoint(model: torch.nn.Module, path: Path) -> Path:
    """``model``'s state dict as a ``.safetensors`` file (what ``save_pretrained`` writes),
    every tensor its own copy (safetensors refuses shared storage)."""
    from safetensors.torch import save_file

    save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}, path)
    return path


def hf_decode(
    hf: Any, embedding: torch.Tensor, case: dict[str, np.ndarray], hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """``transformers`` SamModel / SamHQModel decoding of one prompt case given in pixels of
    an image of size ``hw``: low-res logits (3, 256, 256) and IoU (3,), multimask output."""
    from samkit import transforms

    kwargs: dict[str, Any] = {"image_embeddings": embedding, "multimask_output": True}
    if "point_coords" in case:
        pts = transforms.apply_coords(case["point_coords"], hw, 1024)
        kwargs["input_points"] = torch.as_tensor(pts, dtype=torch.float)[None, None]
        kwargs["input_labels"] = torch.as_tensor(case["point_labels"], dtype=torch.long)[None, None]
    if "box" in case:
        box = transforms.apply_boxes(case["box"][None], hw, 1024)
        kwargs["input_boxes"] = torch.as_tensor(box, dtype=torch.float)[None]
    with torch.inference_mode():
        out = hf(**kwargs)
    return out.pred_masks[0, 0].numpy(), out.iou_scores[0, 0].numpy()


def hf_masks(low_res: np.ndarray, hw: tuple[int, int], input_size: tuple[int, int]) -> np.ndarray:
    """``transformers``' own post-processing of low-res logits (C, 256, 256) -> (C, H, W) bool."""
    from transformers import SamImageProcessor

    masks = SamImageProcessor().post_process_masks(
        [torch.from_numpy(low_res)[None]], [list(hw)], [list(input_size)]
    )
    return masks[0][0].numpy()
