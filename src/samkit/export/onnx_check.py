"""ONNX Runtime against torch on the same inputs, for every exported file.

The max differences are printed; :class:`~samkit.errors.SamkitError` is raised when one
exceeds ``rtol * max|torch|``.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np
import torch

from samkit.errors import SamkitError
from samkit.export.graphs import DECODER_INPUTS, DECODER_OUTPUTS, DecoderGraph
from samkit.modeling import Sam

__all__ = ["check_decoder", "check_encoder", "decoder_inputs", "import_onnx"]


def import_onnx(runtime: bool = True) -> tuple[Any, Any]:
    """The ``onnx`` module and (with ``runtime``) ``onnxruntime``, else None for it; a
    SamkitError with the install line when one is missing."""
    try:
        import onnx

        onnxruntime = import_module("onnxruntime") if runtime else None
    except ImportError as err:
        raise SamkitError(
            f"ONNX export needs onnx and onnxruntime ({err}); install them with "
            "`pip install 'samkit[onnx]'` (or `pip install onnx onnxruntime`)"
        ) from None
    return onnx, onnxruntime


def _session(path: Path) -> Any:
    _, ort = import_onnx()
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _compare(
    what: str, ours: np.ndarray, ref: np.ndarray, rtol: float, log: Callable[[str], None]
) -> float:
    if ours.shape != ref.shape:
        raise SamkitError(f"{what}: ONNX Runtime gives shape {ours.shape}, torch {ref.shape}")
    err = float(np.abs(ours.astype(np.float64) - ref).max()) if ref.size else 0.0
    scale = max(float(np.abs(ref).max()) if ref.size else 0.0, 1e-12)
    log(
        f"  {what}: ORT vs torch max|diff| {err:.3e} (max|torch| {scale:.3e}, relative {err / scale:.2e})"
    )
    if not err <= rtol * scale:
        raise SamkitError(
            f"{what}: ONNX Runtime differs from torch by {err:.3e} > {rtol} * {scale:.3e}"
        )
    return err / scale


def check_encoder(
    model: Sam,
    path: str | Path,
    *,
    bake_preprocess: bool = False,
    image_dtype: str = "uint8",
    rtol: float = 1e-3,
    log: Callable[[str], None] = print,
) -> float:
    """Run the exported encoder and torch on one synthetic image; returns the relative max
    difference of the embeddings, raising SamkitError above ``rtol``. A baked-preprocess
    encoder gets the resized image as ``image_dtype``."""
    from samkit import transforms

    s = model.image_size
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(s, (3 * s) // 4, 3), dtype=np.uint8)
    mean = tuple(model.pixel_mean.flatten().tolist())
    std = tuple(model.pixel_std.flatten().tolist())
    x = transforms.normalize_pad(image, s, mean, std)
    with torch.inference_mode():
        ref = model.image_encoder(torch.from_numpy(x).to(model.device)).float().cpu().numpy()
    feed = image.astype(image_dtype) if bake_preprocess else x
    ours = _session(Path(path)).run(None, {"image": feed})[0]
    return _compare("image_embeddings", ours, ref, rtol, log)


def decoder_inputs(
    model: Sam,
    points: list[tuple[float, float, float]],
    orig: tuple[int, int],
    mask_seed: int | None = None,
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    grid = model.prompt_encoder.image_embedding_size
    low = model.prompt_encoder.mask_input_size
    pts = np.asarray(points, dtype=np.float32)
    mask = np.zeros((1, 1, *low), dtype=np.float32)
    if mask_seed is not None:
        mask = np.random.default_rng(mask_seed).normal(0, 4, size=mask.shape).astype(np.float32)
    return {
        "image_embeddings": rng.normal(
            0, 0.5, size=(1, model.prompt_encoder.embed_dim, *grid)
        ).astype(np.float32),
        "point_coords": pts[None, :, :2].copy(),
        "point_labels": pts[None, :, 2].copy(),
        "mask_input": mask,
        "has_mask_input": np.array([0.0 if mask_seed is None else 1.0], dtype=np.float32),
        "orig_im_size": np.array(orig, dtype=np.float32),
    }


def check_decoder(
    model: Sam,
    path: str | Path,
    *,
    return_single_mask: bool = False,
    return_low_res: bool = False,
    rtol: float = 1e-3,
    log: Callable[[str], None] = print,
) -> float:
    """Run the exported decoder and torch on point, box and mask prompts at several original
    sizes; returns the worst relative max difference, raising SamkitError above ``rtol``."""
    graph = DecoderGraph(model, return_single_mask, return_low_res).eval()
    session = _session(Path(path))
    cases = {
        "point": ([(410.0, 300.0, 1.0), (0.0, 0.0, -1.0)], (480, 640), None),
        "box+point": (
            [(500.0, 380.0, 1.0), (120.0, 200.0, 2.0), (800.0, 640.0, 3.0)],
            (700, 466),
            None,
        ),
        "mask+points": (
            [(300.0, 500.0, 1.0), (700.0, 200.0, 0.0), (0.0, 0.0, -1.0)],
            (333, 1000),
            7,
        ),
    }
    worst = 0.0
    for case, (points, orig, seed) in cases.items():
        feeds = decoder_inputs(model, points, orig, seed)
        with torch.inference_mode():
            ref = graph(*(torch.from_numpy(feeds[k]).to(model.device) for k in DECODER_INPUTS))
        ours = session.run(list(DECODER_OUTPUTS), feeds)
        for out_name, o, r in zip(DECODER_OUTPUTS, ours, ref, strict=True):
            worst = max(
                worst, _compare(f"{case} {out_name}", o, r.float().cpu().numpy(), rtol, log)
            )
    return worst
