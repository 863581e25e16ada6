"""SAM: an image encoder, a prompt encoder and a mask decoder handed to one constructor."""

from __future__ import annotations

import torch
from torch import nn

from samkit.modeling.mask_decoder import MaskDecoder
from samkit.modeling.prompt_encoder import PromptEncoder
from samkit.modeling.tiny_vit import TinyViT
from samkit.modeling.vit import ImageEncoderViT


class Sam(nn.Module):
    """The network. Pre- and post-processing live in :mod:`samkit.transforms`; the
    encode-once / prompt-many engine in :mod:`samkit.predictor`."""

    mask_threshold: float = 0.0
    image_format: str = "RGB"
    pixel_mean: torch.Tensor
    pixel_std: torch.Tensor

    def __init__(
        self,
        image_encoder: ImageEncoderViT | TinyViT,
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder,
        pixel_mean: tuple[float, float, float],
        pixel_std: tuple[float, float, float],
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.register_buffer(
            "pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), persistent=False
        )
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), persistent=False)
        self.config = None  # set by samkit.build to the SamConfig the model was built from
        self.variant: str | None = None  # registered variant name, when the config is one

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    @property
    def image_size(self) -> int:
        return int(self.image_encoder.img_size)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, S, S) normalised and padded -> image embeddings (B, 256, S/16, S/16)."""
        return self.image_encoder(x)

    def decode(
        self,
        image_embeddings: torch.Tensor,
        points: tuple[torch.Tensor, torch.Tensor] | None = None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts in the 1024-input frame -> low-res logits (B, M, 256, 256), IoU (B, M)."""
        sparse, dense = self.prompt_encoder(points, boxes, mask_input)
        return self.mask_decoder(
            image_embeddings,
            self.prompt_encoder.get_dense_pe(),
            sparse,
            dense,
            multimask_output,
        )
