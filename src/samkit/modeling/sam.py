"""SAM: an image encoder, a prompt encoder and a mask decoder handed to one constructor."""

from __future__ import annotations

import torch
from torch import nn

from samkit import device as devices
from samkit.modeling import decoder_fast
from samkit.modeling.decoder_fast import DecoderCache, OutputLimits
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
        cache: DecoderCache | None = None,
        limits: OutputLimits | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts in the 1024-input frame -> low-res logits (B, M, 256, 256), IoU (B, M).

        ``image_embeddings`` (1 or B, 256, 64, 64); with batch 1 every prompt decodes against
        the same image and the image-side work is done once per call, or not at all when
        ``cache`` (from :meth:`prepare_decoder` on the same embedding) is given. ``cache`` is
        ignored when it does not match ``image_embeddings`` or when ``mask_input`` is given.
        ``limits``: which logits the caller reads (:class:`~samkit.modeling.decoder_fast.
        OutputLimits`); the others may come back as 0.
        """
        # Prompt tokens: K per point prompt, 2 per box (corners).
        rows = 0 if points is None else points[0].shape[0] * points[0].shape[1]
        rows += 0 if boxes is None else 2 * boxes.shape[0]
        cpu_tokens_only = mask_input is None and self.device.type == "cpu"
        with devices.token_work(rows=rows, enabled=cpu_tokens_only):
            sparse, dense = self.prompt_encoder(points, boxes, mask_input)
        if cache is not None and (mask_input is not None or not cache.matches(image_embeddings)):
            cache = None
        image_pe = self.prompt_encoder.get_dense_pe() if cache is None else cache.image_pe
        if (
            cache is None
            and mask_input is None
            and image_embeddings.shape[0] == 1
            and self.mask_decoder.fast
            and decoder_fast.fast_path_allowed(sparse)
        ):
            cache = self.prepare_decoder(image_embeddings, image_pe)
        return self.mask_decoder(
            image_embeddings, image_pe, sparse, dense, multimask_output, cache, limits
        )

    def prepare_decoder(
        self, image_embeddings: torch.Tensor, image_pe: torch.Tensor | None = None
    ) -> DecoderCache:
        """The decoder's prompt-independent work for one image embedding (1, 256, 64, 64),
        valid for every prompt without ``mask_input``. Costs about a fifth of one decoder call."""
        if image_pe is None:
            image_pe = self.prompt_encoder.get_dense_pe()
        return decoder_fast.prepare_image(
            self.mask_decoder.transformer,
            image_embeddings,
            self.prompt_encoder.no_mask_embed.weight,
            image_pe,
        )
