"""SAM 2 / SAM 2.1: a Hiera + FPN image encoder, SAM's prompt encoder and SAM 2's mask decoder
handed to one constructor, plus the video modules' tensors (kept, so that a checkpoint loads
strictly and is written back in Meta's layout).

Image mode (Meta's ``SAM2ImagePredictor``): the decoder's ``conv_s0`` / ``conv_s1`` project the
two high-res levels once per image, and ``no_mem_embed`` is added to the 64x64 level.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from samkit.modeling.decoder_fast import DecoderCache, prepare_image
from samkit.modeling.fpn import Sam2ImageEncoder
from samkit.modeling.prompt_encoder import PromptEncoder
from samkit.modeling.sam2_decoder import Sam2MaskDecoder


@dataclass(frozen=True)
class Sam2Features:
    """One encoded batch. embedding (B, C, s, s) with ``no_mem_embed`` added; high_res the
    projected skip features [(B, C/8, 4s, 4s), (B, C/4, 2s, 2s)] (s = 64 at 1024)."""

    embedding: torch.Tensor
    high_res: tuple[torch.Tensor, torch.Tensor]

    def image(self, i: int) -> Sam2Features:
        """Image ``i`` of the batch, batch 1."""
        return Sam2Features(
            self.embedding[i : i + 1], (self.high_res[0][i : i + 1], self.high_res[1][i : i + 1])
        )

    @property
    def levels(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The three levels, highest resolution first (Meta's ``high_res_feats`` + embed)."""
        return (self.high_res[0], self.high_res[1], self.embedding)


class KeptTensors(nn.Module):
    """Parameters under dotted names (``layers.0.norm1.weight``...) in nested modules, so a
    state dict round-trips; no forward. Holds the video modules' weights until they are built."""

    def __init__(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        super().__init__()
        for name, shape in shapes.items():
            module: nn.Module = self
            *path, leaf = name.split(".")
            for part in path:
                child = module._modules.get(part)
                if child is None:
                    child = nn.Module()
                    module.add_module(part, child)
                module = child
            module.register_parameter(leaf, nn.Parameter(torch.zeros(shape)))


class Sam2(nn.Module):
    """The network; transforms in :mod:`samkit.sam2.transforms`, the encode-once / prompt-many
    engine in :mod:`samkit.sam2.predictor`."""

    mask_threshold: float = 0.0
    image_format: str = "RGB"
    pixel_mean: torch.Tensor
    pixel_std: torch.Tensor

    def __init__(
        self,
        image_encoder: Sam2ImageEncoder,
        prompt_encoder: PromptEncoder,
        mask_decoder: Sam2MaskDecoder,
        video_tensors: Mapping[str, tuple[int, ...]],
        image_size: int = 1024,
        pixel_mean: tuple[float, float, float] = (0.485, 0.456, 0.406),
        pixel_std: tuple[float, float, float] = (0.229, 0.224, 0.225),
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.sam_prompt_encoder = prompt_encoder
        self.sam_mask_decoder = mask_decoder
        dim = prompt_encoder.embed_dim
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, dim))
        top = {k: v for k, v in video_tensors.items() if "." not in k}
        for name, shape in top.items():
            self.register_parameter(name, nn.Parameter(torch.zeros(shape)))
        groups: dict[str, dict[str, tuple[int, ...]]] = {}
        for name, shape in video_tensors.items():
            if "." in name:
                head, rest = name.split(".", 1)
                groups.setdefault(head, {})[rest] = shape
        for head, shapes in groups.items():
            self.add_module(head, KeptTensors(shapes))
        self._image_size = image_size
        self.register_buffer(
            "pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), persistent=False
        )
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), persistent=False)
        self.config: Any = None  # set by samkit.sam2.build to the Sam2Config it was built from
        self.variant: str | None = None

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    @property
    def image_size(self) -> int:
        return self._image_size

    # Meta's SAM 2 attribute names for the two heads, as samkit's SAM uses them.
    @property
    def prompt_encoder(self) -> PromptEncoder:
        return self.sam_prompt_encoder

    @property
    def mask_decoder(self) -> Sam2MaskDecoder:
        return self.sam_mask_decoder

    def encode_image(self, x: torch.Tensor) -> Sam2Features:
        """x (B, 3, S, S) resized and normalised -> the three feature levels, ready for the
        decoder (skip projections applied, ``no_mem_embed`` added)."""
        level0, level1, level2 = self.image_encoder(x)
        s0, s1 = self.sam_mask_decoder.project_high_res(level0, level1)
        embedding = level2 + self.no_mem_embed.reshape(1, -1, 1, 1)
        return Sam2Features(embedding, (s0, s1))

    def prepare_decoder(self, embedding: torch.Tensor) -> DecoderCache:
        """The decoder's prompt-independent work for one image (1, C, s, s), valid for every
        prompt without a mask input."""
        return prepare_image(
            self.sam_mask_decoder.transformer,
            embedding,
            self.sam_prompt_encoder.no_mask_embed.weight,
            self.sam_prompt_encoder.get_dense_pe(),
        )

    def decode(
        self,
        features: Sam2Features,
        points: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
        cache: DecoderCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Prompts in the ``image_size`` input frame -> low-res logits (B, M, 4s, 4s), IoU
        (B, M) and object-score logits (B, 1).

        ``features`` of batch 1 (every prompt on the same image) or B. ``points``: coords
        (B, K, 2) and labels (B, K); boxes go in as their two corners with labels 2 and 3, first
        (Meta's SAM 2 predictor); a padding point is always appended. ``mask_input`` (B, 1, 4s,
        4s) low-res logits. ``cache`` (from :meth:`prepare_decoder` on ``features.embedding``)
        skips the image-side work; ignored with ``mask_input``.
        """
        sparse, dense = self.sam_prompt_encoder(points, None, mask_input)
        if cache is not None and (mask_input is not None or not cache.matches(features.embedding)):
            cache = None
        return self.sam_mask_decoder(
            features.embedding,
            self.sam_prompt_encoder.get_dense_pe() if cache is None else cache.image_pe,
            sparse,
            dense,
            multimask_output,
            high_res_features=list(features.high_res),
            cache=cache,
        )
