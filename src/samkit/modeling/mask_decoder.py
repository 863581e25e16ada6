"""Mask decoder: tokens + image embedding -> mask logits and predicted IoU."""

from __future__ import annotations

import torch
from torch import nn

from samkit import device as devices
from samkit.modeling import decoder_fast
from samkit.modeling.common import MLP, LayerNorm2d
from samkit.modeling.decoder_fast import DecoderCache
from samkit.modeling.transformer import TwoWayTransformer


class MaskDecoder(nn.Module):
    """Predicts ``num_multimask_outputs + 1`` masks per prompt: token 0 is the single-mask
    output, tokens 1.. the multimask outputs.

    ``fast`` (this instance's switch, default True) selects
    :mod:`samkit.modeling.decoder_fast` (same function, fewer operations); the plain path is the
    reference computation, always used when tracing or exporting.
    """

    def __init__(
        self,
        transformer_dim: int,
        transformer: TwoWayTransformer,
        num_multimask_outputs: int = 3,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
        fast: bool = True,
    ) -> None:
        super().__init__()
        self.fast = fast
        self.transformer_dim = transformer_dim
        self.transformer = transformer
        self.num_multimask_outputs = num_multimask_outputs
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3)
            for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth
        )

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
        cache: DecoderCache | None = None,
        limits: decoder_fast.OutputLimits | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """image_embeddings (1 or B, C, h, w); sparse (B, N, C); dense (B, C, h, w).

        ``cache``: the first block's image-side work for this (batch-1) image, valid only when
        there is no mask prompt (``dense`` is the no-mask embedding); it replaces
        ``image_embeddings`` and ``dense_prompt_embeddings``.
        Returns low-res mask logits (B, M, 4h, 4w) and IoU predictions (B, M), with M = 3
        for multimask output and 1 otherwise. ``limits`` (fast path only): see
        :class:`~samkit.modeling.decoder_fast.OutputLimits`.
        """
        sel = slice(1, None) if multimask_output else slice(0, 1)
        return self.predict_masks(
            image_embeddings,
            image_pe,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            cache,
            select=sel,
            limits=limits,
        )

    def _tokens(self, sparse_prompt_embeddings: torch.Tensor) -> torch.Tensor:
        """(B, 1 + num_mask_tokens + N, C): IoU token, mask tokens, prompt tokens."""
        bs = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        output_tokens = output_tokens.unsqueeze(0).expand(bs, -1, -1)
        return torch.cat([output_tokens, sparse_prompt_embeddings], dim=1)

    def predict_masks(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        cache: DecoderCache | None = None,
        select: slice | None = None,
        limits: decoder_fast.OutputLimits | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask logits (B, M, 4h, 4w) and IoU (B, M) of the mask tokens ``select`` picks (all
        ``num_mask_tokens`` by default); the fast path upscales only those (and honours
        ``limits``; the reference path ignores them)."""
        bs = sparse_prompt_embeddings.shape[0]
        tokens = self._tokens(sparse_prompt_embeddings)
        if self.fast and decoder_fast.fast_path_allowed(tokens):
            return self._predict_masks_fast(
                image_embeddings, image_pe, tokens, dense_prompt_embeddings, cache, select, limits
            )

        if image_embeddings.shape[0] != bs:
            image_embeddings = image_embeddings.expand(bs, -1, -1, -1)
        src = image_embeddings + dense_prompt_embeddings
        pos_src = image_pe.expand(bs, -1, -1, -1)
        b, c, h, w = src.shape

        hs, src = self.transformer(src, pos_src, tokens)
        iou_token_out = hs[:, 0, :]
        mask_tokens_out = hs[:, 1 : 1 + self.num_mask_tokens, :]

        upscaled = self.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)],
            dim=1,
        )
        b, c, h, w = upscaled.shape
        masks = (hyper_in @ upscaled.view(b, c, h * w)).view(b, -1, h, w)
        iou_pred = self.iou_prediction_head(iou_token_out)
        if select is None:
            return masks, iou_pred
        return masks[:, select], iou_pred[:, select]

    def _predict_masks_fast(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        tokens: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        cache: DecoderCache | None,
        select: slice | None = None,
        limits: decoder_fast.OutputLimits | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`predict_masks` through :mod:`decoder_fast`; ``select`` picks mask tokens
        (only those are upscaled)."""
        bs = tokens.shape[0]
        h, w = image_pe.shape[-2:]
        src = image_embeddings
        if cache is None:
            if src.shape[0] != bs:
                src = src.expand(bs, -1, -1, -1)
            src = src + dense_prompt_embeddings
        hs, keys = decoder_fast.transformer_forward(self.transformer, src, image_pe, tokens, cache)
        mlps = list(enumerate(self.output_hypernetworks_mlps))[select or slice(None)]
        with devices.token_work(hs):
            hyper_in = torch.stack([mlp(hs[:, 1 + i, :]) for i, mlp in mlps], dim=1)
            iou_pred = self.iou_prediction_head(hs[:, 0, :])
        if select is not None:
            iou_pred = iou_pred[:, select]
        grid = (int(h), int(w))
        if limits is None:
            masks = decoder_fast.upscale_masks(self.output_upscaling, keys, hyper_in, grid)
        else:
            masks = decoder_fast.upscale_limited(
                self.output_upscaling, keys, hyper_in, iou_pred, grid, limits
            )
        return masks, iou_pred
