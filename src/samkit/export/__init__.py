"""Export a SAM network to deployment formats.

A format is one module in this package that provides
``export(model: Sam, output: Path, *, name: str, **options) -> list[Path]``; :data:`FORMATS`
maps the format name to that module, so TorchScript, CoreML, TFLite or TensorRT each arrive
as one new module plus one line here. :func:`export` is the single entry point used by
``SAM.export`` and ``samkit export``.
"""

from __future__ import annotations

import os
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from samkit.errors import SamkitError

if TYPE_CHECKING:
    from samkit.modeling import Sam

__all__ = ["FORMATS", "cli_export", "export", "onnx_export_for", "resolve_model"]

FORMATS: dict[str, str] = {
    "onnx": "samkit.export.onnx",
}
"""Format name -> module implementing it."""


def resolve_model(model: Any) -> tuple[Sam, str]:
    """A network and a file-name stem from ``model``.

    ``model`` may be a :class:`~samkit.modeling.Sam`, an object holding one in ``.model``
    (``SAM``, ``SamPredictor``) or a checkpoint path / model name for :func:`samkit.build_sam`.
    """
    from samkit.entrance import load_network

    net = load_network(model, "export")
    if isinstance(model, (str, os.PathLike)):
        return net, Path(os.fspath(model)).stem
    return net, net.variant or f"sam_{net.config.encoder.kind if net.config else 'custom'}"


def export(
    model: Any,
    format: str = "onnx",
    output: str | os.PathLike[str] | None = None,
    **options: Any,
) -> list[Path]:
    """Export ``model`` to ``format`` and return the files written.

    ``output`` is the folder to write into (default ``<name>_<format>/`` in the current
    directory; ``name`` defaults to the checkpoint's file stem or the variant's name). ``options``
    go to the format's exporter, e.g. for ONNX ``bake_preprocess``, ``return_single_mask``,
    ``return_low_res``, ``opset``, ``check``, ``int8`` (see :func:`samkit.export.onnx.export`).
    """
    key = str(format).lower()
    if key not in FORMATS:
        raise SamkitError(
            f"unknown export format {format!r}; available: {', '.join(sorted(FORMATS))}"
        )
    if key == "onnx":  # before the model loads: a bad argument must not cost an export
        from samkit.export.onnx import DEFAULT_OPSET, check_export_options

        check_export_options(
            "." if output is None else output,
            opset=options.get("opset", DEFAULT_OPSET),
            rtol=options.get("rtol", 1e-3),
        )
    net, stem = resolve_model(model)
    name = str(options.pop("name", stem))
    folder = Path(output) if output is not None else Path(f"{name}_{key}")
    module = import_module(FORMATS[key])
    files: list[Path] = module.export(net, folder, name=name, **options)
    return files


def cli_export(args: dict[str, Any]) -> int:
    """``samkit export model=... format=onnx [output=...] [key=value ...]``."""
    options = {
        k: v for k, v in args.items() if k not in ("model", "format", "output") and v is not None
    }
    files = export(args["model"], format=args["format"], output=args["output"], **options)
    for path in files:
        print(path)
    return 0


def onnx_export_for(model: Any) -> Path:
    """The ONNX export folder for ``model``, written on first use: a checkpoint (path or name)
    is exported once into ``<cache>/onnx/<stem>-<bytes>-<mtime>/`` and reused; a built network
    is exported into a temporary folder (what ``SAM(..., backend="onnxruntime")`` runs)."""
    import tempfile

    if isinstance(model, (str, os.PathLike)):
        from samkit.weights import cache_dir, resolve_checkpoint

        ckpt = resolve_checkpoint(model)
        stat = ckpt.stat()
        folder = cache_dir() / "onnx" / f"{ckpt.stem}-{stat.st_size}-{stat.st_mtime_ns}"
        if not (folder / "samkit_onnx.json").is_file():
            export(ckpt, format="onnx", output=folder, name=ckpt.stem)
        return folder
    folder = Path(tempfile.mkdtemp(prefix="samkit_onnx_"))
    export(model, format="onnx", output=folder)
    return folder
