"""Exportable torch modules: the image encoder and the prompt decoder as deployed.

These wrap the network's own modules (no copied weights) in the input / output contract of
the deployment formats, so every exporter (ONNX today; TorchScript, CoreML, TFLite later)
traces the same graphs.

Decoder contract (Meta's web demo, CVAT, AnyLabeling): inputs ``image_embeddings``
(1, 256, 64, 64), ``point_coords`` (B, N, 2) float32 XY in the S-input frame,
``point_labels`` (B, N) float32 (1 foreground, 0 background, 2 / 3 box corners, -1 padding;
no padding point is added inside), ``mask_input`` (B, 1, 256, 256) low-res logits,
``has_mask_input`` (1,) float32 0 or 1, ``orig_im_size`` (2,) float32 (H, W). Outputs
``masks`` (B, M, H, W) logits in the original frame, ``iou_predictions`` (B, M),
``low_res_masks`` (B, M, 256, 256); M = 4 (token 0 single-mask output, 1..3 multimask) or 1.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from samkit.modeling import Sam
from samkit.postprocess import upsample_graph

__all__ = ["DECODER_INPUTS", "DECODER_OUTPUTS", "DecoderGraph", "EncoderGraph"]

DECODER_INPUTS = (
    "image_embeddings",
    "point_coords",
    "point_labels",
    "mask_input",
    "has_mask_input",
    "orig_im_size",
)
DECODER_OUTPUTS = ("masks", "iou_predictions", "low_res_masks")


class EncoderGraph(nn.Module):
    """Image encoder as exported: preprocessed (1, 3, S, S) float32 in, or with
    ``bake_preprocess`` the resized (h, w, 3) uint8 RGB image, normalised and padded inside."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: Sam, bake_preprocess: bool = False) -> None:
        super().__init__()
        self.image_encoder = model.image_encoder
        self.image_size = model.image_size
        self.bake_preprocess = bake_preprocess
        self.register_buffer(
            "mean", model.pixel_mean.detach().clone().view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", model.pixel_std.detach().clone().view(1, 3, 1, 1), persistent=False
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.bake_preprocess:
            h, w = image.shape[0], image.shape[1]
            x = image.permute(2, 0, 1).unsqueeze(0).to(torch.float32)
            x = (x - self.mean) / self.std
            image = F.pad(x, (0, self.image_size - w, 0, self.image_size - h))
        return self.image_encoder(image)


class DecoderGraph(nn.Module):
    """Prompt encoder + mask decoder + mask upsampling under the web-demo decoder contract
    (see the module docstring for inputs and outputs)."""

    def __init__(
        self, model: Sam, return_single_mask: bool = False, return_low_res: bool = False
    ) -> None:
        super().__init__()
        self.prompt_encoder = model.prompt_encoder
        self.mask_decoder = model.mask_decoder
        self.image_size = model.image_size
        self.return_single_mask = return_single_mask
        self.return_low_res = return_low_res

    def embed_points(self, point_coords: torch.Tensor, point_labels: torch.Tensor) -> torch.Tensor:
        """(B, N, 2) input-frame XY and (B, N) float labels -> sparse embeddings (B, N, C)."""
        pe = self.prompt_encoder
        emb = pe.pe_layer._encode((point_coords + 0.5) / self.image_size)
        labels = point_labels.unsqueeze(-1)
        emb = torch.where(labels == -1, pe.not_a_point_embed.weight, emb)
        for i, table in enumerate(pe.point_embeddings):
            weight = cast(nn.Embedding, table).weight
            emb = emb + (labels == i).to(emb.dtype) * weight
        return emb

    def embed_masks(self, mask_input: torch.Tensor, has_mask_input: torch.Tensor) -> torch.Tensor:
        """(B, 1, 256, 256) logits and a 0/1 flag -> dense embeddings (B, C, 64, 64)."""
        pe = self.prompt_encoder
        has = has_mask_input.reshape(-1, 1, 1, 1)
        no_mask = pe.no_mask_embed.weight.reshape(1, -1, 1, 1)
        return has * pe.mask_downscaling(mask_input) + (1 - has) * no_mask

    def upscale(self, masks: torch.Tensor, orig_im_size: torch.Tensor) -> torch.Tensor:
        """Low-res logits -> logits (B, M, H, W): bilinear to S x S, crop the padding, bilinear
        to (H, W); the crop size is rounded in float64 exactly like transforms.preprocess_shape."""
        return upsample_graph(masks, orig_im_size, self.image_size)

    def select_best(
        self, masks: torch.Tensor, scores: torch.Tensor, point_labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One mask per prompt: the multimask output with the best score while fewer than 3
        points (padding included) are given, else the single-mask token 0."""
        num_points = torch.ones_like(point_labels[:1]).sum()
        bonus = torch.cat(
            [torch.full_like(scores[:1, :1], 1000.0), torch.zeros_like(scores[:1, 1:])], dim=1
        )
        best = torch.argmax(scores + (num_points - 2.5) * bonus, dim=1, keepdim=True)
        scores = torch.gather(scores, 1, best)
        index = best[:, :, None, None].expand(-1, -1, masks.shape[2], masks.shape[3])
        return torch.gather(masks, 1, index), scores

    def forward(
        self,
        image_embeddings: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
        orig_im_size: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        sparse = self.embed_points(point_coords, point_labels)
        dense = self.embed_masks(mask_input, has_mask_input)
        low_res, scores = self.mask_decoder.predict_masks(
            image_embeddings, self.prompt_encoder.get_dense_pe(), sparse, dense
        )
        if self.return_single_mask:
            low_res, scores = self.select_best(low_res, scores, point_labels)
        masks = low_res if self.return_low_res else self.upscale(low_res, orig_im_size)
        return masks, scores, low_res
