"""SAM: an image encoder, a prompt encoder and a mask decoder handed to one constructor."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from samkit import device as devices
from samkit.modeling import decoder_fast
from samkit.modeling.decoder_fast import DecoderCache, OutputLimits
from samkit.modeling.mask_decoder import MaskDecoder
from samkit.modeling.prompt_encoder import PromptEncoder


class Sam(nn.Module):
    """The network. Pre- and post-processing live in :mod:`samkit.transforms`; the
    encode-once / prompt-many engine in :mod:`samkit.predictor`."""

    mask_threshold: float = 0.0
    image_format: str = "RGB"
    pixel_mean: torch.Tensor
    pixel_std: torch.Tensor

    def __init__(
        self,
        image_encoder: nn.Module,
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
        """Side of the prompt frame (the encoder input's for SAM-1; see
        :mod:`samkit.families.geometry`)."""
        return int(self.prompt_encoder.input_image_size[0])

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

    # ------------------------------------------------------------------ Meta's batched surface
    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(3, h, w) RGB pixel values (already resized, longest side ``image_size``) ->
        normalised and zero-padded (3, S, S) float, as Meta's ``Sam.preprocess``."""
        x = (x - self.pixel_mean) / self.pixel_std
        h, w = x.shape[-2:]
        return torch.nn.functional.pad(x, (0, self.image_size - w, 0, self.image_size - h))

    def postprocess_masks(
        self,
        masks: torch.Tensor,
        input_size: tuple[int, ...],
        original_size: tuple[int, ...],
    ) -> torch.Tensor:
        """Low-res logits (B, C, 256, 256) -> logits (B, C, H, W) in the original frame
        (:func:`samkit.transforms.postprocess_masks`; Meta's ``Sam.postprocess_masks``)."""
        from samkit.transforms import postprocess_masks

        hw_in = (int(input_size[0]), int(input_size[1]))
        hw_orig = (int(original_size[0]), int(original_size[1]))
        return postprocess_masks(masks, hw_in, hw_orig, self.image_size)

    def forward(
        self, batched_input: list[dict[str, Any]], multimask_output: bool
    ) -> list[dict[str, torch.Tensor]]:
        """Meta's ``Sam.__call__``: a list of images with their prompts -> masks.

        Each input: ``image`` (3, h, w) resized RGB pixel values, ``original_size`` (H, W),
        and optionally ``point_coords`` (B, K, 2) with ``point_labels`` (B, K), ``boxes``
        (B, 4), ``mask_inputs`` (B, 1, 256, 256), all in the resized frame. Each output:
        ``masks`` (B, C, H, W) bool, ``iou_predictions`` (B, C), ``low_res_logits``
        (B, C, 256, 256). As Meta's, no gradients are tracked in eval mode; in train mode
        they are.
        """
        with torch.set_grad_enabled(self.training and torch.is_grad_enabled()):
            images = torch.stack([self.preprocess(x["image"]) for x in batched_input])
            embeddings = self.image_encoder(images)
            outputs = []
            for record, embedding in zip(batched_input, embeddings, strict=True):
                points = None
                if record.get("point_coords") is not None:
                    points = (record["point_coords"], record["point_labels"])
                low_res, iou = self.decode(
                    embedding[None],
                    points,
                    record.get("boxes"),
                    record.get("mask_inputs"),
                    multimask_output,
                )
                masks = self.postprocess_masks(
                    low_res, tuple(record["image"].shape[-2:]), tuple(record["original_size"])
                )
                outputs.append(
                    {
                        "masks": masks > self.mask_threshold,
                        "iou_predictions": iou,
                        "low_res_logits": low_res,
                    }
                )
        return outputs
