"""Distillation data: model inputs built the way the predictor builds them, the teacher run over
images (flipped before it sees them), and (input, teacher embedding) pairs read from the cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from samkit import transforms
from samkit.distillation.cache import CacheDamagedError, ImageSample, TeacherCache
from samkit.modeling import Sam

__all__ = ["EmbeddingPairs", "TeacherEncoder", "model_input"]


def model_input(
    image: np.ndarray,
    size: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    flip: bool = False,
) -> tuple[np.ndarray, tuple[int, int]]:
    """(H, W, 3) uint8 RGB -> the model input (3, S, S) float32 (resized so the long side is
    ``size``, normalised, zero-padded bottom/right) and the resized size (h, w).

    ``flip`` mirrors the image left-right BEFORE resizing and padding, so the padding stays at
    the right and the teacher's embedding of this input is a valid target for it.
    """
    if flip:
        image = image[:, ::-1]
    resized = transforms.resize_image(np.ascontiguousarray(image), size)
    x = transforms.normalize_pad(resized, size, mean, std)[0]
    return x, (int(resized.shape[0]), int(resized.shape[1]))


def _stats(model: Sam) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    m = [float(v) for v in model.pixel_mean.flatten()]
    s = [float(v) for v in model.pixel_std.flatten()]
    return (m[0], m[1], m[2]), (s[0], s[1], s[2])


class TeacherEncoder:
    """The teacher's image encoder as the cache's ``encode`` callable; ``calls`` counts the
    encoder passes and ``images`` the images encoded (tests check that a cached run makes none).
    """

    def __init__(self, teacher: Sam, device: str | torch.device = "cpu") -> None:
        self.model = teacher.eval().to(device)
        self.device = torch.device(device)
        self.mean, self.std = _stats(teacher)
        self.calls = 0
        self.images = 0

    @torch.inference_mode()
    def __call__(self, images: list[np.ndarray], flip: bool) -> np.ndarray:
        """(H, W, 3) uint8 RGB images -> (n, C, g, g) float32 teacher embeddings."""
        size = self.model.image_size
        x = np.stack([model_input(im, size, self.mean, self.std, flip)[0] for im in images])
        out = self.model.image_encoder(torch.from_numpy(x).to(self.device))
        self.calls += 1
        self.images += len(images)
        return out.float().cpu().numpy()


@dataclass(frozen=True)
class Item:
    sample: int
    digest: str
    flip: bool


class EmbeddingPairs(torch.utils.data.Dataset):
    """(model input, teacher embedding) pairs for every readable sample and flip variant.

    Each item is a dict: ``image`` (3, S, S) float32 normalised padded input, ``target``
    (C, g, g) float32 teacher embedding of exactly that input, ``input_size`` (2,) int64 (h, w)
    of the image inside the padded input, ``flip`` bool. ``hashes``: the samples' content
    hashes from :func:`samkit.distillation.cache.fill` ("" marks an unreadable sample, left out).
    """

    def __init__(
        self,
        samples: Sequence[ImageSample],
        hashes: Sequence[str],
        cache: TeacherCache,
        *,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        flips: Sequence[bool] = (False,),
        gt_prompts: int = 0,
    ) -> None:
        self.samples = samples
        self.gt_prompts = gt_prompts
        self.cache = cache
        self.mean, self.std = mean, std
        self.items = [
            Item(i, digest, f) for i, digest in enumerate(hashes) if digest for f in flips
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.items[index]
        sample = self.samples[item.sample]
        image = sample.image()
        x, input_size = model_input(image, self.cache.image_size, self.mean, self.std, item.flip)
        target = np.asarray(self.cache.get(item.digest, item.flip), dtype=np.float32)
        if not np.isfinite(target).all():
            raise CacheDamagedError(
                f"the teacher embedding of {sample.path} in {self.cache.root} holds NaN or "
                f"infinite values (shard {self.cache.shard_of(item.digest, item.flip)}); "
                "delete that shard so it is computed again"
            )
        out = {
            "image": torch.from_numpy(x),
            "target": torch.from_numpy(target),
            "input_size": torch.tensor(input_size, dtype=torch.int64),
            "flip": torch.tensor(item.flip),
        }
        if self.gt_prompts > 0:
            out.update(self._gt(getattr(sample, "instances", ()), image.shape[:2], item.flip))
        return out

    def _gt(
        self, instances: Sequence[Any], size: tuple[int, int], flip: bool
    ) -> dict[str, torch.Tensor]:
        from samkit.evaluation.clicks import interior_point

        k = self.gt_prompts
        boxes, points = np.zeros((k, 4), np.float64), np.zeros((k, 2), np.float64)
        chosen = [inst for inst in instances if inst.area > 0][:k]
        w = size[1]
        for j, inst in enumerate(chosen):
            x0, y0, x1, y1 = (float(v) for v in inst.box)
            px, py = interior_point(inst.mask)
            if flip:  # pixel x -> w - 1 - x
                x0, x1, px = w - 1 - x1, w - 1 - x0, w - 1 - px
            boxes[j] = transforms.apply_boxes(
                np.array([x0, y0, x1, y1]), size, self.cache.image_size
            )
            points[j] = transforms.apply_coords(np.array([px, py]), size, self.cache.image_size)
        return {
            "gt_boxes": torch.from_numpy(boxes).float(),
            "gt_points": torch.from_numpy(points).float(),
            "gt_count": torch.tensor(len(chosen)),
        }
