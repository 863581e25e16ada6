"""ONNX Runtime backend: :class:`OnnxPredictor` has the API of :class:`samkit.SamPredictor`
over the files written by ``samkit export format=onnx``; :class:`OnnxEngine` (from
:mod:`samkit.backends.onnx_engine`) is the :class:`~samkit.engine.Engine` over it.

Needs onnxruntime, NumPy and Pillow only: nothing here imports torch. Pre- and
post-processing are those of :mod:`samkit.transforms` (Pillow resize, normalise, pad,
coordinate mapping); masks come from the decoder graph's in-graph upsampling or, for low-res
logits, from :func:`samkit.postprocess.upsample_fast` (NumPy).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from samkit import transforms
from samkit.backends.onnx_engine import OnnxEngine
from samkit.current_image import CurrentImage
from samkit.errors import PromptError, SamkitError
from samkit.families.geometry import ResizeLongestPad
from samkit.families.state import ImageState, state_from_arrays, state_to_arrays
from samkit.postprocess import binarize
from samkit.validation import (
    check_box,
    check_coordinates,
    check_image,
    check_mask_input,
    check_points,
)

__all__ = ["OnnxEngine", "OnnxImageState", "OnnxPredictor", "load_export"]

PRECISIONS = {"fp32": (False, False), "int8": (True, True), "int8_decoder": (False, True)}


OnnxImageState = ImageState
"""One encoded image (NumPy features): the one :class:`~samkit.families.state.ImageState`."""


def load_export(source: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an export's manifest: ``source`` is the folder or its ``samkit_onnx.json``.
    Returns the manifest with ``folder`` (Path) added."""
    path = Path(source)
    manifest = path / "samkit_onnx.json" if path.is_dir() else path
    if not manifest.is_file():
        raise SamkitError(
            f"{source} is not an ONNX export: expected a folder holding samkit_onnx.json "
            "(write one with `samkit export model=... format=onnx`)"
        )
    try:
        info: dict[str, Any] = json.loads(manifest.read_text())
    except (OSError, ValueError) as exc:
        raise SamkitError(f"cannot read {manifest}: {exc}") from None
    if info.get("format") != "samkit-onnx":
        raise SamkitError(
            f"{manifest} is not a samkit ONNX manifest (format {info.get('format')!r})"
        )
    info["folder"] = manifest.parent
    return info


def _session(
    path: Path,
    providers: Sequence[str] | None,
    threads: int | None,
    config: Mapping[str, str] | None = None,
) -> Any:
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise SamkitError(
            f"the ONNX Runtime backend needs onnxruntime ({err}); install it with "
            "`pip install onnxruntime` (or onnxruntime-gpu)"
        ) from err
    if not path.is_file():
        raise SamkitError(f"ONNX file not found: {path}")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    for key, value in (config or {}).items():
        options.add_session_config_entry(key, value)
    available = ort.get_available_providers()
    chosen = (
        list(providers)
        if providers
        else [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    )
    return ort.InferenceSession(str(path), sess_options=options, providers=chosen)


class OnnxPredictor(CurrentImage[ImageState, np.ndarray]):
    """Encode once, prompt many, with ONNX Runtime.

    Args:
        source: an export folder (or its ``samkit_onnx.json``).
        precision: ``"fp32"``, ``"int8"`` (both int8 files) or ``"int8_decoder"``; int8 files
            exist when the export was made with ``int8=True``.
        providers: ONNX Runtime execution providers (default CUDA when available, then CPU).
        threads: intra-op threads (default: ONNX Runtime's choice).
        session_config: ONNX Runtime session config entries, e.g.
            ``{"session.intra_op.allow_spinning": "0"}`` to stop idle threads from spinning
            when torch shares the CPU.
    """

    def __init__(
        self,
        source: str | os.PathLike[str],
        *,
        precision: str = "fp32",
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        session_config: Mapping[str, str] | None = None,
    ) -> None:
        if precision not in PRECISIONS:
            raise SamkitError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}"
            )
        info = load_export(source)
        self.info = info
        folder: Path = info["folder"]
        files = {"encoder": info["encoder"]["file"], "decoder": info["decoder"]["file"]}
        for role, use_int8 in zip(("encoder", "decoder"), PRECISIONS[precision], strict=True):
            if use_int8:
                if role not in info.get("int8", {}):
                    raise SamkitError(
                        f"{folder} has no int8 {role}: export with int8=True "
                        "(or run samkit.export.quantize.quantize_folder)"
                    )
                files[role] = info["int8"][role]
        self.encoder = _session(folder / files["encoder"], providers, threads, session_config)
        self.decoder = _session(folder / files["decoder"], providers, threads, session_config)
        self.image_size = int(info["image_size"])
        self.low_res = int(info["low_res_size"][0])
        # the export contract is SAM-1's frames (resize longest side, pad)
        self.geometry = ResizeLongestPad(self.image_size, low_res=self.low_res)
        self.mean = tuple(float(v) for v in info["pixel_mean"])
        self.std = tuple(float(v) for v in info["pixel_std"])
        self.image_format = str(info.get("image_format", "RGB"))
        self.mask_threshold = float(info.get("mask_threshold", 0.0))
        self.bake_preprocess = bool(info["encoder"]["bake_preprocess"])
        kind = self.encoder.get_inputs()[0].type  # "tensor(uint8)" or "tensor(float)"
        self._image_dtype = np.uint8 if "uint8" in kind else np.float32
        self.single_mask = bool(info["decoder"]["return_single_mask"])
        self.graph_upscales = not info["decoder"]["return_low_res"]
        self._state = None

    # ----------------------------------------------------------------- image
    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        """Encode an (H, W, 3) uint8 image in ``image_format`` ("RGB" or "BGR")."""
        if image_format not in ("RGB", "BGR"):
            raise SamkitError(f"image_format must be 'RGB' or 'BGR', got {image_format!r}")
        image = check_image(image)
        if image_format != self.image_format:
            image = image[..., ::-1]
        original = (image.shape[0], image.shape[1])
        if self.bake_preprocess:  # the resized uint8 or float32 pixels, as the export takes
            resized = transforms.resize_image(image, self.image_size)
            x = np.ascontiguousarray(resized, dtype=self._image_dtype)
        else:
            x = self.geometry.encoder_input(image, self.mean, self.std)  # type: ignore[arg-type]
        features = self.encoder.run(None, {"image": x})[0]
        self._state = ImageState(features, original, self.geometry.input_size(original))

    def set_image_state(self, state: Any) -> None:
        """Restore an image state (this backend's, or a torch ``ImageState``: its features
        are converted to NumPy) without running the encoder."""
        self._state = self.as_state(state)

    def as_state(self, state: Any) -> ImageState:
        """Any image state -> this backend's (NumPy features, shape checked); the current
        image is left unchanged."""
        if state is self._state and state is not None:
            return state
        if not hasattr(state, "features"):
            raise SamkitError(
                f"state must be an image state (features, original_size, input_size), got "
                f"{type(state).__name__}"
            )
        arrays = state_to_arrays(state)
        feats = np.ascontiguousarray(arrays["features"])
        grid = self.image_size // 16
        if feats.shape != (1, 256, grid, grid):
            raise SamkitError(
                f"state.features must have shape (1, 256, {grid}, {grid}), got {feats.shape}"
            )
        restored = state_from_arrays(arrays)
        return ImageState(feats, restored.original_size, restored.input_size, restored.extras)

    # --------------------------------------------------------------- prompts
    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Prompts for one object in original-image pixels, as :meth:`SamPredictor.predict`.

        point_coords (K, 2) XY with point_labels (K,); box (4,) XYXY; mask_input (1, 256, 256)
        low-res logits. Returns masks (C, H, W) bool (float32 logits with ``return_logits``),
        scores (C,) and low-res logits (C, 256, 256); C = 3 with ``multimask_output`` else 1
        (always 1 for a decoder exported with ``return_single_mask``).
        """
        coords = labels = boxes = None
        if point_coords is not None or point_labels is not None:
            coords, labels = check_points(point_coords, point_labels, batched=False)
            coords, labels = coords[None], labels[None]
        if box is not None:
            boxes = check_box(box).reshape(1, 4)
        mask = None if mask_input is None else check_mask_input(mask_input, 3, self.low_res)[None]
        masks, scores, low = self.predict_batch(
            coords, labels, boxes, mask, multimask_output, return_logits
        )
        return masks[0], scores[0], low[0]

    def predict_batch(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        boxes: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """B objects in original-image pixels: point_coords (B, K, 2), point_labels (B, K),
        boxes (B, 4) XYXY, mask_input (B, 1, 256, 256). Returns masks (B, C, H, W), scores
        (B, C), low-res logits (B, C, 256, 256)."""
        state = self._require_state()
        coords = labels = box_in = None
        if point_coords is not None or point_labels is not None:
            coords, labels = check_points(point_coords, point_labels, batched=True)
            coords = self.geometry.apply_coords(coords, state.original_size)
        if boxes is not None:
            b = check_coordinates(boxes, "boxes", "(B, 4) XYXY")
            if b.ndim != 2 or b.shape[1] != 4:
                raise PromptError(f"boxes must have shape (B, 4) XYXY, got {b.shape}")
            box_in = self.geometry.apply_boxes(b, state.original_size)
        mask = None if mask_input is None else check_mask_input(mask_input, 4, self.low_res)
        want_masks = self.graph_upscales
        out = self._decode(coords, labels, box_in, mask, multimask_output, with_masks=want_masks)
        low, scores = out[0], out[1]
        logits = out[2] if want_masks else self._upsample(low, state)
        masks = logits if return_logits else binarize(logits, self.mask_threshold)
        return masks, scores, low

    def decode_low_res(
        self,
        point_coords: np.ndarray | None,
        point_labels: np.ndarray | None,
        boxes: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        state: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Decoder only against ``state`` (default: the current image), prompts already in the
        input frame (as ``SamPredictor.decode_low_res``):
        point_coords (B, K, 2), point_labels (B, K), boxes (B, 4), mask_input (B, 1, 256, 256)
        -> low-res logits (B, C, 256, 256) float32 and scores (B, C)."""
        coords = labels = None
        if point_coords is not None or point_labels is not None:
            coords, labels = check_points(point_coords, point_labels, batched=True)
        box = None if boxes is None else np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        mask = None if mask_input is None else check_mask_input(mask_input, 4, self.low_res)
        low, scores = self._decode(
            coords, labels, box, mask, multimask_output, with_masks=False, state=state
        )[:2]
        return low, scores

    def upscale(self, low_res_logits: np.ndarray, return_logits: bool = False) -> np.ndarray:
        """Low-res logits (..., 256, 256) of the current image -> masks (..., H, W) bool at the
        original size (float32 logits with ``return_logits``)."""
        state = self._require_state()
        logits = self._upsample(np.asarray(low_res_logits, dtype=np.float32), state)
        return logits if return_logits else binarize(logits, self.mask_threshold)

    def _upsample(self, low: np.ndarray, state: ImageState) -> np.ndarray:
        """Low-res logits (..., s, s) -> (..., H, W) float32 (**fast** contract)."""
        result: np.ndarray = self.geometry.upsample(low, state.input_size, state.original_size)
        return result

    def _decode(
        self,
        coords: np.ndarray | None,
        labels: np.ndarray | None,
        boxes: np.ndarray | None,
        mask: np.ndarray | None,
        multimask_output: bool,
        with_masks: bool,
        state: Any = None,
    ) -> list[np.ndarray]:
        """Run the decoder graph; returns [low_res, scores] (+ [masks]) for the requested tokens.
        Prompts are in the input frame; a padding point is appended when there is no box,
        exactly as the torch prompt encoder does. ``state``: default the current image."""
        state = self._require_state() if state is None else self.as_state(state)
        sizes = [len(a) for a in (coords, boxes, mask) if a is not None]
        batch = sizes[0] if sizes else 1
        if any(n != batch for n in sizes):
            raise PromptError(
                f"point_coords, boxes and mask_input must share the batch size, got {sizes}"
            )
        pts = np.zeros((batch, 0, 2), np.float32) if coords is None else coords.astype(np.float32)
        lab = np.zeros((batch, 0), np.float32) if labels is None else labels.astype(np.float32)
        if boxes is not None:
            pts = np.concatenate([pts, boxes.reshape(batch, 2, 2).astype(np.float32)], axis=1)
            lab = np.concatenate(
                [lab, np.tile(np.array([[2.0, 3.0]], np.float32), (batch, 1))], axis=1
            )
        elif coords is not None:
            pts = np.concatenate([pts, np.zeros((batch, 1, 2), np.float32)], axis=1)
            lab = np.concatenate([lab, -np.ones((batch, 1), np.float32)], axis=1)
        feeds = {
            "image_embeddings": state.features,
            "point_coords": np.ascontiguousarray(pts),
            "point_labels": np.ascontiguousarray(lab),
            "mask_input": np.zeros((batch, 1, self.low_res, self.low_res), np.float32)
            if mask is None
            else mask,
            "has_mask_input": np.array([0.0 if mask is None else 1.0], np.float32),
            "orig_im_size": np.array(state.original_size, np.float32),
        }
        names = ["low_res_masks", "iou_predictions"] + (["masks"] if with_masks else [])
        outs = self.decoder.run(names, feeds)
        if self.single_mask:
            return outs
        sel = slice(1, None) if multimask_output else slice(0, 1)
        return [np.ascontiguousarray(o[:, sel]) for o in outs]
