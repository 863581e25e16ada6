"""``SAM2ImagePredictor``: Meta's SAM 2 image predictor API on samkit's network (encode once,
decode many), with the decoder's prompt-independent work done once per image and the hole /
sprinkle removal without a CUDA extension."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from samkit.errors import ArgumentError, PromptError, SamkitError
from samkit.modeling.decoder_fast import DecoderCache
from samkit.modeling.sam2 import Sam2, Sam2Features
from samkit.sam2.transforms import postprocess_masks, preprocess_image, to_input_coords
from samkit.validation import check_coordinates, check_image, check_mask_input

__all__ = ["SAM2ImagePredictor"]

Prediction = tuple[np.ndarray, np.ndarray, np.ndarray]


def _as_rgb_array(image: Any, name: str) -> np.ndarray:
    """A NumPy (H, W, 3) uint8 RGB array or a PIL image -> the array."""
    try:
        from PIL import Image as PILImage
    except ImportError:  # pragma: no cover - Pillow is a dependency
        PILImage = None  # type: ignore[assignment]
    if PILImage is not None and isinstance(image, PILImage.Image):
        image = np.asarray(image.convert("RGB"))
    return check_image(image, name)


class SAM2ImagePredictor:
    """Drop-in for ``sam2.sam2_image_predictor.SAM2ImagePredictor``.

    ``SAM2ImagePredictor(sam_model, mask_threshold=0.0, max_hole_area=0.0,
    max_sprinkle_area=0.0)``; ``set_image`` / ``set_image_batch`` then ``predict`` /
    ``predict_batch``. Returns NumPy arrays as Meta's does: masks (C, H, W) float32 0/1 (or
    logits with ``return_logits``), IoU scores (C,), low-res logits (C, 256, 256) clamped to
    [-32, 32]; a leading B axis when B prompts are given. ``object_scores`` of the last call
    (B, 1) logits stay on :attr:`last_object_scores`.
    """

    def __init__(
        self,
        sam_model: Sam2,
        mask_threshold: float = 0.0,
        max_hole_area: float = 0.0,
        max_sprinkle_area: float = 0.0,
        **kwargs: Any,
    ) -> None:
        if not isinstance(sam_model, Sam2):
            raise ArgumentError(
                f"sam_model must be a SAM 2 network (samkit.sam2.build_sam2), got "
                f"{type(sam_model).__name__}"
            )
        self.model = sam_model
        self.mask_threshold = float(mask_threshold)
        self.max_hole_area = float(max_hole_area)
        self.max_sprinkle_area = float(max_sprinkle_area)
        s = sam_model.image_size // 16
        self._bb_feat_sizes = [(4 * s, 4 * s), (2 * s, 2 * s), (s, s)]
        self.last_object_scores: np.ndarray | None = None
        self.reset_predictor()

    @classmethod
    def from_pretrained(cls, model_id: str, **kwargs: Any) -> SAM2ImagePredictor:
        """A published model by Hugging Face id (``facebook/sam2.1-hiera-large``) or any samkit
        name for it; its checkpoint is fetched from Meta's download site into samkit's cache on
        first use (a clear error when offline and not cached)."""
        from samkit.sam2.build import build_sam2_model

        device = kwargs.pop("device", "cpu")
        return cls(build_sam2_model(model_id, device=device), **kwargs)

    # ------------------------------------------------------------------ state
    @property
    def device(self) -> torch.device:
        return self.model.device

    def reset_predictor(self) -> None:
        """Forget the current image(s)."""
        self._is_image_set = False
        self._is_batch = False
        self._features: dict[str, Any] | None = None
        self._orig_hw: list[tuple[int, int]] = []
        self._state: Sam2Features | None = None
        self._caches: dict[int, DecoderCache] = {}

    @property
    def is_image_set(self) -> bool:
        return self._is_image_set

    def _encode(self, images: list[np.ndarray]) -> None:
        size = self.model.image_size
        mean, std = self.model.pixel_mean, self.model.pixel_std
        batch = torch.cat([preprocess_image(im, size, mean, std, self.device) for im in images])
        with torch.inference_mode():
            state = self.model.encode_image(batch)
        self._state = state
        self._orig_hw = [(int(im.shape[0]), int(im.shape[1])) for im in images]
        self._features = {"image_embed": state.embedding, "high_res_feats": list(state.high_res)}
        self._is_image_set = True

    def set_image(self, image: Any) -> None:
        """Encode one (H, W, 3) uint8 RGB array or PIL image."""
        self.reset_predictor()
        self._encode([_as_rgb_array(image, "image")])

    def set_image_batch(self, image_list: list[np.ndarray]) -> None:
        """Encode a list of (H, W, 3) uint8 RGB arrays in one encoder pass."""
        self.reset_predictor()
        if not isinstance(image_list, list) or not image_list:
            raise ArgumentError("image_list must be a non-empty list of (H, W, 3) uint8 arrays")
        self._encode([_as_rgb_array(im, f"image_list[{i}]") for i, im in enumerate(image_list)])
        self._is_batch = True

    def get_image_embedding(self) -> torch.Tensor:
        """The 64x64 level (B, 256, 64, 64) with ``no_mem_embed`` added."""
        if self._state is None:
            raise SamkitError("An image must be set with .set_image(...) to get an embedding.")
        return self._state.embedding

    # ------------------------------------------------------------------ prompts
    def _prompts(
        self,
        point_coords: Any,
        point_labels: Any,
        box: Any,
        mask_input: Any,
        normalize_coords: bool,
        img_idx: int,
    ) -> tuple[tuple[torch.Tensor, torch.Tensor] | None, torch.Tensor | None]:
        """User prompts -> (coords (B, K, 2), labels (B, K)) in the input frame, with box
        corners first (labels 2, 3), and mask logits (B, 1, s, s)."""
        size, hw, dev = self.model.image_size, self._orig_hw[img_idx], self.device
        points = None
        if point_coords is not None:
            if point_labels is None:
                raise PromptError("point_labels must be supplied if point_coords is supplied.")
            coords = torch.as_tensor(check_coordinates(point_coords, "point_coords"))
            coords = to_input_coords(coords.to(dev, torch.float32), size, hw, normalize_coords)
            labels = torch.as_tensor(np.asarray(point_labels), dtype=torch.int, device=dev)
            if coords.ndim == 2:
                coords, labels = coords[None], labels[None]
            if coords.ndim != 3 or coords.shape[-1] != 2 or labels.shape != coords.shape[:2]:
                raise PromptError(
                    f"point_coords must be (K, 2) or (B, K, 2) with point_labels (K,) or (B, K); "
                    f"got {tuple(coords.shape)} and {tuple(labels.shape)}"
                )
            points = (coords, labels)
        if box is not None:
            boxes = torch.as_tensor(check_coordinates(box, "box")).to(dev, torch.float32)
            if boxes.shape[-1] != 4 or boxes.ndim > 2:
                raise PromptError(f"box must be (4,) or (B, 4) XYXY, got {tuple(boxes.shape)}")
            corners = to_input_coords(boxes.reshape(-1, 2, 2), size, hw, normalize_coords)
            corner_labels = torch.tensor([[2, 3]], dtype=torch.int, device=dev)
            corner_labels = corner_labels.repeat(corners.shape[0], 1)
            if points is not None:
                if points[0].shape[0] != corners.shape[0]:
                    raise PromptError(
                        f"{corners.shape[0]} boxes and {points[0].shape[0]} point groups: give "
                        "one point group per box"
                    )
                points = (
                    torch.cat([corners, points[0]], dim=1),
                    torch.cat([corner_labels, points[1]], dim=1),
                )
            else:
                points = (corners, corner_labels)
        masks = None
        if mask_input is not None:
            low = self._bb_feat_sizes[0][0]
            arr = np.asarray(mask_input, dtype=np.float32)
            arr = check_mask_input(arr[None] if arr.ndim == 3 else arr, 4, low)
            masks = torch.as_tensor(arr, device=dev)
        return points, masks

    def _predict(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        mask_input: torch.Tensor | None,
        multimask_output: bool,
        return_logits: bool,
        img_idx: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self._state is None:
            raise SamkitError("An image must be set with .set_image(...) before mask prediction.")
        features = self._state.image(img_idx)
        cache = None
        if mask_input is None and self.model.mask_decoder.fast:
            cache = self._caches.get(img_idx)
            if cache is None:
                with torch.inference_mode():
                    cache = self._caches[img_idx] = self.model.prepare_decoder(features.embedding)
        with torch.inference_mode():
            low, iou, obj = self.model.decode(
                features, points, mask_input, multimask_output, cache=cache
            )
            masks = postprocess_masks(
                low,
                self._orig_hw[img_idx],
                self.mask_threshold,
                self.max_hole_area,
                self.max_sprinkle_area,
            )
        self.last_object_scores = obj.float().cpu().numpy()
        if not return_logits:
            masks = masks > self.mask_threshold
        return masks, iou, torch.clamp(low, -32.0, 32.0)

    @staticmethod
    def _numpy(*tensors: torch.Tensor) -> Prediction:
        a, b, c = (t.squeeze(0).float().detach().cpu().numpy() for t in tensors)
        return a, b, c

    def predict(
        self,
        point_coords: Any = None,
        point_labels: Any = None,
        box: Any = None,
        mask_input: Any = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ) -> Prediction:
        """Masks for prompts on the current image (see the class docstring for shapes).

        point_coords (K, 2) / (B, K, 2) XY and point_labels (K,) / (B, K) (1 foreground,
        0 background); box (4,) / (B, 4) XYXY; mask_input (1, 256, 256) / (B, 1, 256, 256)
        low-res logits. Coordinates are original-image pixels, or in [0, 1] with
        ``normalize_coords=False``.
        """
        if not self._is_image_set:
            raise SamkitError("An image must be set with .set_image(...) before mask prediction.")
        points, masks = self._prompts(
            point_coords, point_labels, box, mask_input, normalize_coords, 0
        )
        return self._numpy(*self._predict(points, masks, multimask_output, return_logits, 0))

    def predict_batch(
        self,
        point_coords_batch: list[Any] | None = None,
        point_labels_batch: list[Any] | None = None,
        box_batch: list[Any] | None = None,
        mask_input_batch: list[Any] | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """:meth:`predict` for every image of :meth:`set_image_batch`, one prompt set per image
        (lists of per-image prompts); returns lists of masks, IoU scores and low-res logits."""
        if not self._is_batch:
            raise SamkitError("predict_batch needs images set with .set_image_batch(...)")
        out: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
        for i in range(len(self._orig_hw)):

            def pick(batch: list[Any] | None, i: int = i) -> Any:
                return batch[i] if batch is not None else None

            points, masks = self._prompts(
                pick(point_coords_batch),
                pick(point_labels_batch),
                pick(box_batch),
                pick(mask_input_batch),
                normalize_coords,
                i,
            )
            result = self._numpy(*self._predict(points, masks, multimask_output, return_logits, i))
            for acc, value in zip(out, result, strict=True):
                acc.append(value)
        return out
