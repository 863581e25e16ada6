"""ONNX export of the image encoder and the prompt decoder, each checked against torch.

Files written into the output folder:

- ``encoder.onnx``: ``image`` (1, 3, S, S) float32, normalised and zero-padded (S = 1024 for
  every published model) -> ``image_embeddings`` (1, 256, S/16, S/16). With
  ``bake_preprocess=True`` the input is instead the *resized* RGB image (h, w, 3) uint8 with
  ``max(h, w) == S`` (dynamic h, w) and normalisation + padding run inside the graph, which is
  exact. The resize itself stays outside: Pillow's antialiased bilinear (what the reference
  uses) has no exact ONNX equivalent.
- ``decoder.onnx``: the decoder contract of Meta's web demo, CVAT and AnyLabeling
  (:mod:`samkit.export.graphs`), with dynamic batch B, number of points N and original size.
  ``return_single_mask`` keeps one mask per prompt, the best by predicted IoU (token 0 once 3+
  points are given, as Meta's exporter does); ``return_low_res`` makes ``masks`` the low-res
  logits and ignores ``orig_im_size`` (for clients that upsample themselves).
- ``samkit_onnx.json``: model name, sizes, mean / std, options, files and measured checks.

Every export is verified: ``onnx.checker``, then ONNX Runtime against torch on the same
inputs; the max differences are printed and :class:`~samkit.errors.SamkitError` is raised
when one exceeds ``rtol * max|torch|``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from samkit.errors import SamkitError
from samkit.export.graphs import DECODER_INPUTS, DECODER_OUTPUTS, DecoderGraph, EncoderGraph
from samkit.export.onnx_check import check_decoder, check_encoder, decoder_inputs, import_onnx
from samkit.modeling import Sam

__all__ = [
    "DECODER_INPUTS",
    "DECODER_OUTPUTS",
    "MANIFEST",
    "check_decoder",
    "check_encoder",
    "export",
    "export_decoder",
    "export_encoder",
]

MANIFEST = "samkit_onnx.json"
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
DEFAULT_OPSET = 17
# protobuf's hard limit is 2 GiB; beyond this, weights go to a .data file
LARGE_BYTES = 1_800_000_000


# ------------------------------------------------------------------------------ writing
def _metadata(model: Sam, name: str, role: str, **extra: Any) -> dict[str, str]:
    from samkit import __version__

    props = {
        "model_name": name,
        "samkit_role": role,
        "input_size": str(model.image_size),
        "pixel_mean": json.dumps([round(float(v), 6) for v in model.pixel_mean.flatten()]),
        "pixel_std": json.dumps([round(float(v), 6) for v in model.pixel_std.flatten()]),
        "image_format": model.image_format,
        "mask_threshold": str(model.mask_threshold),
        "producer": f"samkit {__version__}",
    }
    props.update({k: json.dumps(v) if not isinstance(v, str) else v for k, v in extra.items()})
    return props


def _restore_unused_inputs(
    proto: Any, module: nn.Module, args: tuple[torch.Tensor, ...], input_names: list[str]
) -> None:
    """The tracer drops inputs the graph never reads (``orig_im_size`` with low-res output);
    put them back so every export keeps the full input contract."""
    import onnx

    present = {i.name for i in proto.graph.input}
    elem = {torch.float32: onnx.TensorProto.FLOAT, torch.uint8: onnx.TensorProto.UINT8}
    for name, arg in zip(input_names, args, strict=True):
        if name not in present:
            info = onnx.helper.make_tensor_value_info(name, elem[arg.dtype], list(arg.shape))
            proto.graph.input.insert(input_names.index(name), info)


def _trace_to_file(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
    props: dict[str, str],
    opset: int,
    external_data: bool | None,
) -> list[Path]:
    """Trace ``module`` (TorchScript-based exporter), add metadata, save; returns the files."""
    onnx, _ = import_onnx(runtime=False)
    n_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
    large = n_bytes > LARGE_BYTES if external_data is None else external_data
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings on shape arithmetic are expected
        traced = Path(tmp) / path.name
        with torch.no_grad():
            torch.onnx.export(
                module.eval(),
                args,
                str(traced),
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=dynamic_axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        proto = onnx.load(str(traced))
    _restore_unused_inputs(proto, module, args, input_names)
    onnx.helper.set_model_props(proto, props)
    data = path.with_name(path.name + ".data")
    if data.exists():
        data.unlink()
    if large:
        onnx.save_model(
            proto,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=data.name,
        )
    else:
        onnx.save_model(proto, str(path))
    onnx.checker.check_model(str(path))
    return [path, data] if large else [path]


def export_encoder(
    model: Sam,
    path: str | Path,
    *,
    name: str = "sam",
    bake_preprocess: bool = False,
    image_dtype: str = "uint8",
    opset: int = DEFAULT_OPSET,
    external_data: bool | None = None,
) -> list[Path]:
    """Write the image encoder to ``path`` (plus ``path.data`` for models over ~1.8 GB);
    with ``bake_preprocess`` its ``image`` input has ``image_dtype`` (see :func:`export`)."""
    graph = EncoderGraph(model, bake_preprocess).eval()
    s = model.image_size
    if bake_preprocess:
        dtype = _IMAGE_DTYPES[check_image_dtype(image_dtype)]
        dummy = torch.randint(0, 256, (s, (3 * s) // 4, 3), dtype=torch.uint8).to(dtype)
        axes = {"image": {0: "height", 1: "width"}}
    else:
        dummy = torch.randn(1, 3, s, s)
        axes = {}
    props = _metadata(
        model, name, "encoder", bake_preprocess=bake_preprocess, image_dtype=image_dtype
    )
    return _trace_to_file(
        graph,
        (dummy,),
        Path(path),
        ["image"],
        ["image_embeddings"],
        axes,
        props,
        opset,
        external_data,
    )


_IMAGE_DTYPES = {"uint8": torch.uint8, "float32": torch.float32}


def check_image_dtype(image_dtype: str) -> str:
    """``image_dtype`` of a baked-preprocess encoder: "uint8" or "float32"."""
    if image_dtype not in _IMAGE_DTYPES:
        raise SamkitError(f"image_dtype must be 'uint8' or 'float32', got {image_dtype!r}")
    return image_dtype


def export_decoder(
    model: Sam,
    path: str | Path,
    *,
    name: str = "sam",
    return_single_mask: bool = False,
    return_low_res: bool = False,
    opset: int = DEFAULT_OPSET,
) -> list[Path]:
    """Write the prompt decoder under the web-demo contract to ``path``."""
    graph = DecoderGraph(model, return_single_mask, return_low_res).eval()
    inputs = decoder_inputs(
        model, points=[(300.0, 200.0, 1.0), (520.0, 610.0, 0.0), (0.0, 0.0, -1.0)], orig=(700, 900)
    )
    axes = {
        "point_coords": {0: "batch", 1: "num_points"},
        "point_labels": {0: "batch", 1: "num_points"},
        "mask_input": {0: "batch"},
        "masks": {0: "batch", 1: "num_masks", 2: "height", 3: "width"},
        "iou_predictions": {0: "batch", 1: "num_masks"},
        "low_res_masks": {0: "batch", 1: "num_masks"},
    }
    props = _metadata(
        model,
        name,
        "decoder",
        return_single_mask=return_single_mask,
        return_low_res=return_low_res,
        num_mask_tokens=model.mask_decoder.num_mask_tokens,
    )
    args = tuple(torch.from_numpy(inputs[k]) for k in DECODER_INPUTS)
    return _trace_to_file(
        graph,
        args,
        Path(path),
        list(DECODER_INPUTS),
        list(DECODER_OUTPUTS),
        axes,
        props,
        opset,
        False,
    )


# ------------------------------------------------------------------------------- export
def export(
    model: Sam,
    output: str | Path,
    *,
    name: str = "sam",
    bake_preprocess: bool = False,
    image_dtype: str = "uint8",
    return_single_mask: bool = False,
    return_low_res: bool = False,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    rtol: float = 1e-3,
    int8: bool = False,
    external_data: bool | None = None,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Export encoder and decoder of ``model`` into the folder ``output``; returns the files.

    ``check`` runs onnx.checker (always) and ONNX Runtime vs torch (printing the max
    differences, raising SamkitError beyond ``rtol`` relative). ``int8`` also writes dynamically
    quantised copies (``encoder.int8.onnx``, ``decoder.int8.onnx``). ``bake_preprocess``
    makes the encoder take the resized (h, w, 3) RGB image as ``image_dtype``: "uint8"
    (default) or "float32" pixel values 0-255, the input samexporter / AnyLabeling send;
    samkit's ONNX Runtime backend feeds either.
    """
    check_image_dtype(image_dtype)
    check_export_options(output, opset=opset, rtol=rtol)
    final = Path(output)
    final.mkdir(parents=True, exist_ok=True)
    # Everything is written into a hidden staging folder and moved into place only once the
    # checks passed: a failed export leaves no encoder without decoder or files without manifest.
    folder = Path(tempfile.mkdtemp(dir=final, prefix=".export-"))
    try:
        files = _export_into(model, folder, name, bake_preprocess, image_dtype, return_single_mask,
                             return_low_res, opset, check, rtol, int8, external_data, log)  # fmt: skip
        for path in files:
            os.replace(path, final / path.name)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    log(f"wrote {', '.join(p.name for p in files)} to {final}/")
    return [final / p.name for p in files]


def check_export_options(
    output: str | os.PathLike[str], *, opset: Any, rtol: Any, runtime: bool = True
) -> None:
    """Export arguments and the ONNX packages (onnxruntime too when ``runtime``: the check
    against torch or int8), checked before any work: SamkitError naming what is missing."""
    from samkit.export.onnx_check import import_onnx

    import_onnx(runtime)
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 17:
        raise SamkitError(
            f"opset must be an int >= 17 (LayerNormalization needs 17), got {opset!r}"
        )
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not 0 < rtol < float("inf"):
        raise SamkitError(f"rtol must be a positive number (e.g. 1e-3), got {rtol!r}")
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise SamkitError(f"output {str(out)!r} is a file; give a folder for the ONNX files")


def _export_into(
    model: Sam,
    folder: Path,
    name: str,
    bake_preprocess: bool,
    image_dtype: str,
    return_single_mask: bool,
    return_low_res: bool,
    opset: int,
    check: bool,
    rtol: float,
    int8: bool,
    external_data: bool | None,
    log: Callable[[str], None],
) -> list[Path]:
    """:func:`export` into ``folder`` (the staging folder): both graphs, their checks against
    torch, the int8 copies and the manifest; returns the files written."""
    model = model.eval()
    log(f"exporting {name} (ONNX opset {opset}, TorchScript-based exporter)")
    encoder: dict[str, Any] = {"bake_preprocess": bake_preprocess, "image_dtype": image_dtype}
    decoder = {"return_single_mask": return_single_mask, "return_low_res": return_low_res}
    enc_files = export_encoder(
        model, folder / ENCODER_FILE, name=name, opset=opset, external_data=external_data, **encoder
    )
    dec_files = export_decoder(model, folder / DECODER_FILE, name=name, opset=opset, **decoder)
    checks: dict[str, float] = {}
    if check:
        log("checking encoder.onnx")
        checks["encoder_max_rel_diff"] = check_encoder(
            model, enc_files[0], rtol=rtol, log=log, **encoder
        )
        log("checking decoder.onnx")
        checks["decoder_max_rel_diff"] = check_decoder(
            model, dec_files[0], rtol=rtol, log=log, **decoder
        )
    manifest = _manifest(model, name, opset, encoder, decoder, checks)
    files = [*enc_files, *dec_files]
    if int8:
        from samkit.export.quantize import quantize_files

        quantized = quantize_files(folder / ENCODER_FILE, folder / DECODER_FILE, log=log)
        manifest["int8"] = {role: p.name for role, p in quantized.items()}
        files.extend(quantized.values())
    manifest_path = folder / MANIFEST
    from samkit.io_utils import atomic_write_text

    atomic_write_text(manifest_path, json.dumps(manifest, indent=2) + "\n")
    files.append(manifest_path)
    return files


def _manifest(
    model: Sam,
    name: str,
    opset: int,
    encoder: dict[str, Any],
    decoder: dict[str, bool],
    checks: dict[str, float],
) -> dict[str, Any]:
    """The contents of ``samkit_onnx.json``: what a runtime needs to feed and read the graphs
    (sizes, mean / std, image format, mask threshold), the export options and the checks."""
    baked = encoder["bake_preprocess"]
    return {
        "format": "samkit-onnx",
        "version": 1,
        "model": name,
        "variant": model.variant,
        "encoder_kind": model.config.encoder.kind if model.config is not None else None,
        "image_size": model.image_size,
        "embedding_size": list(model.prompt_encoder.image_embedding_size),
        "low_res_size": list(model.prompt_encoder.mask_input_size),
        "pixel_mean": [float(v) for v in model.pixel_mean.flatten()],
        "pixel_std": [float(v) for v in model.pixel_std.flatten()],
        "image_format": model.image_format,
        "mask_threshold": float(model.mask_threshold),
        "opset": opset,
        "encoder": {
            "file": ENCODER_FILE,
            "bake_preprocess": baked,
            "image_dtype": encoder["image_dtype"] if baked else "float32",
        },
        "decoder": {
            "file": DECODER_FILE,
            **decoder,
            "num_mask_tokens": model.mask_decoder.num_mask_tokens,
        },
        "checks": checks,
    }
