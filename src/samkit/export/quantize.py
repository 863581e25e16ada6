"""int8 dynamic quantisation of exported ONNX files (onnxruntime.quantization).

Weights of the matrix products (``MatMul`` / ``Gemm``) are stored as int8 and activations are
quantised on the fly, per tensor. Convolutions stay float: ONNX Runtime's dynamic
``ConvInteger`` is slower than its float convolution on CPU. The decoder's and the ViT
encoder's work is almost all matrix products; TinyViT's early stages are convolutions, so
its encoder gains less (``benchmarks/bench_onnx.py`` measures size, speed and mask agreement).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from samkit.errors import SamkitError

__all__ = ["int8_path", "quantize_files", "quantize_folder", "quantize_model"]

DEFAULT_OPS = ("MatMul", "Gemm")


def int8_path(path: str | os.PathLike[str]) -> Path:
    """``encoder.onnx`` -> ``encoder.int8.onnx``."""
    p = Path(path)
    return p.with_name(f"{p.stem}.int8{p.suffix}")


def quantize_model(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str] | None = None,
    *,
    op_types: Sequence[str] = DEFAULT_OPS,
    per_channel: bool = False,
) -> Path:
    """Write a dynamically quantised (int8 weights) copy of ``src``; returns its path
    (default ``<stem>.int8.onnx`` next to ``src``)."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise SamkitError(
            f"int8 quantisation needs onnxruntime ({err}); `pip install onnxruntime`"
        ) from err
    source = Path(src)
    if not source.is_file():
        raise SamkitError(f"ONNX file not found: {source}")
    target = Path(dst) if dst is not None else int8_path(source)
    quantize_dynamic(
        str(source),
        str(target),
        op_types_to_quantize=list(op_types),
        per_channel=per_channel,
        weight_type=QuantType.QInt8,
    )
    return target


def quantize_files(
    encoder: str | os.PathLike[str] | None,
    decoder: str | os.PathLike[str] | None,
    log: Callable[[str], None] = print,
) -> dict[str, Path]:
    """Quantise the given encoder / decoder files; returns ``{"encoder": path, ...}``."""
    out: dict[str, Path] = {}
    for role, path in (("encoder", encoder), ("decoder", decoder)):
        if path is None:
            continue
        target = quantize_model(path)
        size_in, size_out = Path(path).stat().st_size, target.stat().st_size
        log(
            f"  int8 {role}: {size_in / 2**20:.1f} MiB -> {size_out / 2**20:.1f} MiB ({target.name})"
        )
        out[role] = target
    return out


def quantize_folder(
    folder: str | os.PathLike[str], log: Callable[[str], None] = print
) -> dict[str, Path]:
    """Add int8 copies to an existing export folder and record them in its manifest."""
    from samkit.io_utils import atomic_write_text

    manifest_path = Path(folder) / "samkit_onnx.json"
    if not manifest_path.is_file():
        raise SamkitError(f"{folder} is not an ONNX export (no samkit_onnx.json)")
    manifest = json.loads(manifest_path.read_text())
    root = manifest_path.parent
    files = quantize_files(
        root / manifest["encoder"]["file"], root / manifest["decoder"]["file"], log=log
    )
    manifest["int8"] = {role: p.name for role, p in files.items()}
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2) + "\n")
    return files
