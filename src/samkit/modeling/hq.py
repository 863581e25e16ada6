"""SAM-HQ (SysCV/sam-hq, "Segment Anything in High Quality"): SAM with a fourth kind of output
token and a high-resolution feature made from an early encoder feature and the embedding.

What differs from SAM:

- the image encoder also hands over an early feature map (B, h, w, C_early): the output of
  the first global-attention block of a ViT, or of TinyViT's second stage (Light HQ-SAM);
- the decoder adds an HQ token (``hf_token``) with its hypernetwork MLP (``hf_mlp``), and
  builds a (B, C/8, 4h, 4w) "HQ feature" = ``embedding_encoder(embedding) +
  compress_vit_feat(early)``; the HQ mask is the HQ token's MLP output against
  ``embedding_maskfeature(upscaled SAM embedding) + HQ feature``;
- the output is ONE mask per prompt: SAM's single-output mask (``multimask_output=False``) or
  SAM's best multimask candidate by predicted IoU (``multimask_output=True``), plus the HQ
  mask's logits; with ``hq_token_only=True`` the HQ mask alone. The IoU is SAM's.

The SAM weights are SAM's own (frozen in HQ-SAM's training), so the SAM path of an HQ
checkpoint is a SAM model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from samkit.errors import ArgumentError
from samkit.modeling.common import MLP, LayerNorm2d
from samkit.modeling.mask_decoder import MaskDecoder
from samkit.modeling.sam import Sam
from samkit.modeling.tiny_vit import TinyViT
from samkit.modeling.transformer import TwoWayTransformer
from samkit.modeling.vit import ImageEncoderViT

__all__ = ["MaskDecoderHQ", "SamHQ", "encode_with_early"]


def encode_with_early(encoder: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The embedding (B, 256, h, w) and SAM-HQ's early feature (B, h, w, C_early) of one
    encoder pass over x (B, 3, S, S): a ViT's tokens after its first global-attention block,
    TinyViT's tokens after its second stage."""
    if isinstance(encoder, ImageEncoderViT):
        tokens = encoder.patch_embed(x) + encoder.pos_embed
        early = None
        for block in encoder.blocks:
            tokens = block(tokens)
            if early is None and block.window_size == 0:
                early = tokens
        if early is None:
            raise ArgumentError("SAM-HQ needs a ViT with at least one global-attention block")
        return encoder.neck(tokens.permute(0, 3, 1, 2)), early
    if not isinstance(encoder, TinyViT):
        raise ArgumentError(
            f"SAM-HQ needs a ViT or TinyViT image encoder, got {type(encoder).__name__}"
        )
    seq = encoder.patch_embed(x)
    early_seq = None
    for i, layer in enumerate(encoder.layers):
        seq = layer(seq)
        if i == 1:
            early_seq = seq
    if early_seq is None:
        raise ArgumentError("Light HQ-SAM needs a TinyViT with at least two stages")
    b, _, c = seq.shape
    side = encoder.final_side
    embedding = encoder.neck(seq.view(b, side, side, c).permute(0, 3, 1, 2)).contiguous()
    return embedding, early_seq.view(b, side, side, -1)


def _up2(c_in: int, c_out: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(c_in, c_out, kernel_size=2, stride=2)


class MaskDecoderHQ(MaskDecoder):
    """SAM's mask decoder plus the HQ token and the fusion layers (official key names)."""

    def __init__(
        self,
        transformer_dim: int,
        transformer: TwoWayTransformer,
        vit_dim: int,
        num_multimask_outputs: int = 3,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
    ) -> None:
        # The plain (reference) path: the HQ mask needs the upscaled embedding itself.
        super().__init__(
            transformer_dim,
            transformer,
            num_multimask_outputs,
            iou_head_depth,
            iou_head_hidden_dim,
            fast=False,
        )
        d = transformer_dim
        self.hf_token = nn.Embedding(1, d)
        self.hf_mlp = MLP(d, d, d // 8, 3)
        self.compress_vit_feat = nn.Sequential(
            _up2(vit_dim, d), LayerNorm2d(d), nn.GELU(), _up2(d, d // 8)
        )
        self.embedding_encoder = nn.Sequential(
            _up2(d, d // 4), LayerNorm2d(d // 4), nn.GELU(), _up2(d // 4, d // 8)
        )
        self.embedding_maskfeature = nn.Sequential(
            nn.Conv2d(d // 8, d // 4, 3, 1, 1),
            LayerNorm2d(d // 4),
            nn.GELU(),
            nn.Conv2d(d // 4, d // 8, 3, 1, 1),
        )

    def hq_features(self, image_embeddings: torch.Tensor, early: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) embedding and (B, h, w, C_early) early feature -> (B, C/8, 4h, 4w)."""
        return self.embedding_encoder(image_embeddings) + self.compress_vit_feat(
            early.permute(0, 3, 1, 2)
        )

    def forward_hq(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        hq_features: torch.Tensor,
        multimask_output: bool,
        hq_token_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One mask per prompt: logits (B, 1, 4h, 4w) and SAM's IoU (B, 1); see the module
        docstring for which logits. Inputs as :meth:`MaskDecoder.forward` plus
        ``hq_features`` from :meth:`hq_features` (1 or B, C/8, 4h, 4w)."""
        bs = sparse_prompt_embeddings.shape[0]
        head = torch.cat([self.iou_token.weight, self.mask_tokens.weight, self.hf_token.weight])
        tokens = torch.cat([head.unsqueeze(0).expand(bs, -1, -1), sparse_prompt_embeddings], 1)
        src = image_embeddings.expand(bs, -1, -1, -1) + dense_prompt_embeddings
        pos = image_pe.expand(bs, -1, -1, -1)
        b, c, h, w = src.shape
        hs, keys = self.transformer(src, pos, tokens)
        n = self.num_mask_tokens
        upscaled = self.output_upscaling(keys.transpose(1, 2).reshape(b, c, h, w))
        upscaled_hq = self.embedding_maskfeature(upscaled) + hq_features
        hyper = torch.stack(
            [mlp(hs[:, 1 + i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], 1
        )
        _, cu, hu, wu = upscaled.shape
        masks_sam = (hyper @ upscaled.reshape(b, cu, hu * wu)).view(b, n, hu, wu)
        hq_hyper = self.hf_mlp(hs[:, 1 + n])[:, None]
        masks_hq = (hq_hyper @ upscaled_hq.reshape(b, cu, hu * wu)).view(b, 1, hu, wu)
        iou = self.iou_prediction_head(hs[:, 0])
        if multimask_output:
            iou, best = iou[:, 1:n].max(dim=1, keepdim=True)
            chosen = masks_sam[:, 1:n].gather(1, best[:, :, None, None].expand(-1, -1, hu, wu))
        else:
            iou, chosen = iou[:, :1], masks_sam[:, :1]
        return (masks_hq if hq_token_only else chosen + masks_hq), iou


class SamHQ(Sam):
    """SAM-HQ: :class:`Sam` with :class:`MaskDecoderHQ` and an encoder that also yields the
    early feature. Prompts and frames as :class:`Sam`; one mask per prompt."""

    mask_decoder: MaskDecoderHQ

    def encode_image_hq(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 3, S, S) -> embedding (B, 256, S/16, S/16) and HQ feature (B, 32, S/4, S/4)."""
        embedding, early = encode_with_early(self.image_encoder, x)
        return embedding, self.mask_decoder.hq_features(embedding, early)

    def decode_hq(
        self,
        image_embeddings: torch.Tensor,
        hq_features: torch.Tensor,
        points: tuple[torch.Tensor, torch.Tensor] | None = None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = False,
        hq_token_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts in the input frame -> logits (B, 1, 256, 256) and IoU (B, 1) for one image
        (``image_embeddings`` (1, 256, 64, 64), ``hq_features`` (1, 32, 256, 256))."""
        sparse, dense = self.prompt_encoder(points, boxes, mask_input)
        return self.mask_decoder.forward_hq(
            image_embeddings,
            self.prompt_encoder.get_dense_pe(),
            sparse,
            dense,
            hq_features,
            multimask_output,
            hq_token_only,
        )

    def forward(
        self,
        batched_input: list[dict[str, Any]],
        multimask_output: bool,
        hq_token_only: bool = False,
    ) -> list[dict[str, torch.Tensor]]:
        """SAM-HQ's ``Sam.__call__`` (inputs and outputs as :meth:`Sam.forward`, one mask per
        prompt)."""
        with torch.set_grad_enabled(self.training and torch.is_grad_enabled()):
            images = torch.stack([self.preprocess(x["image"]) for x in batched_input])
            embeddings, hq = self.encode_image_hq(images)
            outputs = []
            for i, record in enumerate(batched_input):
                points = None
                if record.get("point_coords") is not None:
                    points = (record["point_coords"], record["point_labels"])
                low_res, iou = self.decode_hq(
                    embeddings[i : i + 1],
                    hq[i : i + 1],
                    points,
                    record.get("boxes"),
                    record.get("mask_inputs"),
                    multimask_output,
                    hq_token_only,
                )
                masks = self.postprocess_masks(
                    low_res, tuple(record["image"].shape[-2:]), tuple(record["original_size"])
                )
                outputs.append(
                    {"masks": masks > 0, "iou_predictions": iou, "low_res_logits": low_res}
                )
        return outputs
