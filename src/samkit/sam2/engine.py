"""SAM 2 behind samkit's engine seam: :class:`Sam2Predictor` is :class:`~samkit.predictor.
SamPredictor` (device, dtype, decoder batches, the decoder's per-image cache, Meta's SAM API)
with SAM 2's encoder outputs kept in the image state (the two high-res levels as ``extras``)
and SAM 2's prompt convention (box corners as the first two points); :class:`Sam2Engine` is
the torch engine over it, so the front, segment everything and auto-annotation run SAM 2."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from samkit import device as devices
from samkit.engine import TorchEngine
from samkit.errors import SamkitError
from samkit.families.state import ImageState
from samkit.modeling.decoder_fast import OutputLimits
from samkit.modeling.sam2 import Sam2, Sam2Features
from samkit.predictor import SamPredictor
from samkit.validation import check_image

__all__ = ["HIGH_RES_KEYS", "Sam2Engine", "Sam2Predictor", "features_of", "make_engine"]

HIGH_RES_KEYS = ("high_res_0", "high_res_1")


def features_of(state: ImageState) -> Sam2Features:
    """The decoder's inputs held by a SAM 2 image state (tensors on one device)."""
    extras = state.extras or {}
    missing = [k for k in HIGH_RES_KEYS if k not in extras]
    if missing:
        raise SamkitError(
            f"this image state has no {', '.join(missing)}: it was not encoded by a SAM 2 model"
        )
    return Sam2Features(state.features, (extras[HIGH_RES_KEYS[0]], extras[HIGH_RES_KEYS[1]]))


def merge_boxes(
    points: tuple[torch.Tensor, torch.Tensor] | None, boxes: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """SAM 2's prompt convention: boxes (B, 4) become two corner points labelled 2 and 3,
    placed before the points (B, K, 2)."""
    if boxes is None:
        return points
    corners = boxes.reshape(-1, 2, 2)
    labels = torch.tensor([[2, 3]], dtype=torch.int, device=boxes.device)
    labels = labels.repeat(corners.shape[0], 1)
    if points is None:
        return corners, labels
    return torch.cat([corners, points[0]], dim=1), torch.cat([labels, points[1].int()], dim=1)


class Sam2Predictor(SamPredictor):
    """:class:`~samkit.predictor.SamPredictor` over a :class:`~samkit.modeling.sam2.Sam2`
    (same options). ``get_image_state()`` holds the 64x64 level as ``features`` and the two
    projected high-res levels as ``extras``."""

    model: Sam2  # type: ignore[assignment]

    def __init__(self, sam_model: Sam2, **options: Any) -> None:
        if not isinstance(sam_model, Sam2):
            raise SamkitError(
                f"Sam2Predictor needs a SAM 2 network, got {type(sam_model).__name__}"
            )
        compile_opt = options.pop("compile", False)
        super().__init__(sam_model, **options)  # type: ignore[arg-type]
        self._encoder = sam_model.encode_image
        if compile_opt in (True, "encoder"):
            self._encoder = torch.compile(sam_model.encode_image)
        if compile_opt in (True, "decoder"):
            self._decode = torch.compile(sam_model.decode, dynamic=True)
        self.last_object_scores: torch.Tensor | None = None

    def _encode_states(
        self, x: torch.Tensor, sizes: list[tuple[tuple[int, int], tuple[int, int]]]
    ) -> list[ImageState]:
        if self.model.training:
            self.optimize()
        with devices.autocast(self.device, self.dtype):
            feats = self._encoder(x)
        states = []
        for j, (orig, inp) in enumerate(sizes):
            one = feats.image(j)
            extras = {k: t.float() for k, t in zip(HIGH_RES_KEYS, one.high_res, strict=True)}
            states.append(ImageState(one.embedding.float(), orig, inp, extras))
        return states

    @torch.inference_mode()
    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        if image_format not in ("RGB", "BGR"):
            raise SamkitError(f"image_format must be 'RGB' or 'BGR', got {image_format!r}")
        image = check_image(image)
        if image_format != self.model.image_format:
            image = image[..., ::-1]
        x, input_size = self.preprocess(image)
        self._state = self._encode_states(x, [((image.shape[0], image.shape[1]), input_size)])[0]

    @torch.inference_mode()
    def encode_batch(
        self, images: list[np.ndarray], image_format: str = "RGB", batch_size: int = 8
    ) -> list[ImageState]:
        if image_format not in ("RGB", "BGR"):
            raise SamkitError(f"image_format must be 'RGB' or 'BGR', got {image_format!r}")
        if batch_size < 1:
            raise SamkitError(f"batch_size must be >= 1, got {batch_size}")
        states: list[ImageState] = []
        for start in range(0, len(images), batch_size):
            inputs, sizes = [], []
            for i, image in enumerate(images[start : start + batch_size]):
                image = check_image(image, f"images[{start + i}]")
                if image_format != self.model.image_format:
                    image = image[..., ::-1]
                x, input_size = self.preprocess(image)
                inputs.append(x)
                sizes.append(((image.shape[0], image.shape[1]), input_size))
            states.extend(self._encode_states(torch.cat(inputs), sizes))
        return states

    def set_torch_image(self, transformed_image: torch.Tensor, original_image_size: Any) -> None:
        raise SamkitError("set_torch_image is SAM-1's API; use set_image with SAM 2 models")

    def _decode_chunk(
        self,
        state: ImageState,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None,
        mask_input: torch.Tensor | None,
        multimask_output: bool,
        dtype: torch.dtype,
        limits: OutputLimits | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """SAM 2's decoder on one chunk (``limits`` is not used: SAM 2's logits are computed
        whole)."""
        points = None
        if point_coords is not None and point_labels is not None:
            points = (point_coords, point_labels.int())
        points = merge_boxes(points, boxes)
        features = features_of(state)
        with devices.autocast(self.device, dtype), devices.thread_policy(self.thread_policy):
            cache = None
            if mask_input is None and self.model.mask_decoder.fast:
                cache = state.decoder.get(self.model, state.features, dtype)  # type: ignore[arg-type]
            low, scores, obj = self._decode(
                features, points, mask_input, multimask_output, cache=cache
            )
        self.last_object_scores = obj.float()
        return low.float(), scores.float()


class Sam2Engine(TorchEngine):
    """The torch :class:`~samkit.engine.Engine` over a :class:`Sam2Predictor` (options as
    :class:`~samkit.engine.TorchEngine`'s).

    ``max_hole_area`` / ``max_sprinkle_area`` (low-res pixels, default 0: off): Meta's
    optional clean-up of the low-res logits before they are resized to the image
    (:func:`~samkit.sam2.transforms.fill_holes_and_sprinkles`), applied by :meth:`upscale`
    and :meth:`upsample`; the returned low-res logits stay as decoded.
    """

    def __init__(
        self,
        model: Sam2,
        *,
        threads: int | None = None,
        max_hole_area: float = 0.0,
        max_sprinkle_area: float = 0.0,
        **options: Any,
    ) -> None:
        if threads is not None:
            devices.set_cpu_threads(threads)
        self._bind(Sam2Predictor(model, **options))
        self.max_hole_area = float(max_hole_area)
        self.max_sprinkle_area = float(max_sprinkle_area)

    def _clean(self, low: Any) -> Any:
        if self.max_hole_area <= 0 and self.max_sprinkle_area <= 0:
            return low
        from samkit.sam2.transforms import fill_holes_and_sprinkles

        x = torch.as_tensor(low, device=self.device)
        return fill_holes_and_sprinkles(
            x, self.mask_threshold, self.max_hole_area, self.max_sprinkle_area
        )

    def upscale(self, low_res_logits: np.ndarray, state: Any = None) -> np.ndarray:
        return super().upscale(self._clean(low_res_logits), state)

    def upsample(self, low: Any) -> Any:
        return super().upsample(self._clean(low))


def make_engine(network: Sam2, **options: Any) -> Sam2Engine:
    """The SAM 2 family's engine factory."""
    return Sam2Engine(network, **options)
