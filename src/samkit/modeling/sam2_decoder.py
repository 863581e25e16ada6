"""SAM 2's mask decoder: SAM's, plus high-resolution skip features, an object-score token and
head, a sigmoid IoU head and the dynamic choice of the single mask by stability.

Output tokens are, in order: the object-score token (when ``pred_obj_scores``), the IoU token and
the ``num_multimask_outputs + 1`` mask tokens, followed by the prompt tokens. Attribute names
equal Meta's checkpoint keys under ``sam_mask_decoder.``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from samkit.modeling import decoder_fast
from samkit.modeling.common import MLP
from samkit.modeling.decoder_fast import DecoderCache
from samkit.modeling.mask_decoder import MaskDecoder
from samkit.modeling.transformer import TwoWayTransformer


@dataclass(frozen=True)
class Sam2DecoderOutput:
    """One decoder call. masks: low-res logits (B, M, 4h, 4w); iou (B, M); object_scores
    (B, 1) logits (an object is present where > 0); tokens: the mask tokens (B, 4, C) after
    the transformer (the video path turns them into object pointers)."""

    masks: torch.Tensor
    iou: torch.Tensor
    object_scores: torch.Tensor
    tokens: torch.Tensor


class Sam2MaskDecoder(MaskDecoder):
    """A superset of :class:`~samkit.modeling.mask_decoder.MaskDecoder` (same keys, plus
    ``conv_s0`` / ``conv_s1``, ``obj_score_token`` and ``pred_obj_score_head``).

    ``dynamic_multimask_via_stability``: when one mask is asked for (in eval mode), the
    single-mask token's output is kept only if its stability score (IoU of the masks at logit
    thresholds +delta and -delta) is at least ``thresh``; otherwise the multimask output with
    the highest predicted IoU replaces it. Meta's ``build_sam2`` switches it on (delta 0.05,
    thresh 0.98).
    """

    def __init__(
        self,
        transformer_dim: int,
        transformer: TwoWayTransformer,
        num_multimask_outputs: int = 3,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
        use_high_res_features: bool = True,
        iou_prediction_use_sigmoid: bool = True,
        pred_obj_scores: bool = True,
        pred_obj_scores_mlp: bool = True,
        dynamic_multimask_via_stability: bool = True,
        dynamic_multimask_stability_delta: float = 0.05,
        dynamic_multimask_stability_thresh: float = 0.98,
        fast: bool = True,
    ) -> None:
        super().__init__(
            transformer_dim,
            transformer,
            num_multimask_outputs,
            iou_head_depth,
            iou_head_hidden_dim,
            fast=fast,
        )
        self.iou_prediction_head.sigmoid_output = iou_prediction_use_sigmoid
        self.use_high_res_features = use_high_res_features
        if use_high_res_features:
            self.conv_s0 = nn.Conv2d(transformer_dim, transformer_dim // 8, kernel_size=1)
            self.conv_s1 = nn.Conv2d(transformer_dim, transformer_dim // 4, kernel_size=1)
        self.pred_obj_scores = pred_obj_scores
        if pred_obj_scores:
            self.obj_score_token = nn.Embedding(1, transformer_dim)
            self.pred_obj_score_head: nn.Module = (
                MLP(transformer_dim, transformer_dim, 1, 3)
                if pred_obj_scores_mlp
                else nn.Linear(transformer_dim, 1)
            )
        self.dynamic_multimask_via_stability = dynamic_multimask_via_stability
        self.dynamic_multimask_stability_delta = dynamic_multimask_stability_delta
        self.dynamic_multimask_stability_thresh = dynamic_multimask_stability_thresh

    def _tokens(self, sparse_prompt_embeddings: torch.Tensor) -> torch.Tensor:
        """(B, s + 1 + num_mask_tokens + N, C): [object-score,] IoU, mask and prompt tokens."""
        parts = [self.iou_token.weight, self.mask_tokens.weight]
        if self.pred_obj_scores:
            parts.insert(0, self.obj_score_token.weight)
        bs = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat(parts, dim=0).unsqueeze(0).expand(bs, -1, -1)
        return torch.cat([output_tokens, sparse_prompt_embeddings], dim=1)

    def project_high_res(self, level0: torch.Tensor, level1: torch.Tensor) -> list[torch.Tensor]:
        """The neck's two high-res levels (B, C, 4h, 4w), (B, C, 2h, 2w) -> the skip features
        (B, C/8, 4h, 4w), (B, C/4, 2h, 2w); computed once per image."""
        return [self.conv_s0(level0), self.conv_s1(level1)]

    def _upscale(
        self, src: torch.Tensor, high_res_features: list[torch.Tensor] | None
    ) -> torch.Tensor:
        """src (B, C, h, w) -> (B, C/8, 4h, 4w), adding the skip features when used."""
        if not self.use_high_res_features:
            return self.output_upscaling(src)
        if high_res_features is None:
            raise ValueError("this decoder needs the two high-res feature levels")
        dc1, ln1, act1, dc2, act2 = self.output_upscaling
        feat_s0, feat_s1 = high_res_features
        x = act1(ln1(dc1(src) + feat_s1))
        return act2(dc2(x) + feat_s0)

    def predict_all(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        high_res_features: list[torch.Tensor] | None = None,
        cache: DecoderCache | None = None,
    ) -> Sam2DecoderOutput:
        """All ``num_mask_tokens`` outputs. image_embeddings (1 or B, C, h, w) with
        high_res_features of the same batch; sparse (B, N, C); dense (B, C, h, w) (ignored with
        ``cache``, which holds the no-mask case)."""
        bs = sparse_prompt_embeddings.shape[0]
        tokens = self._tokens(sparse_prompt_embeddings)
        if self.fast and decoder_fast.fast_path_allowed(tokens):
            src = image_embeddings
            if cache is None:
                src = src.expand(bs, -1, -1, -1) if src.shape[0] != bs else src
                src = src + dense_prompt_embeddings
            hs, keys = decoder_fast.transformer_forward(
                self.transformer, src, image_pe, tokens, cache
            )
        else:
            src = image_embeddings
            src = src.expand(bs, -1, -1, -1) if src.shape[0] != bs else src
            src = src + dense_prompt_embeddings
            hs, keys = self.transformer(src, image_pe.expand(bs, -1, -1, -1), tokens)
        h, w = image_pe.shape[-2:]
        keys = keys.expand(bs, -1, -1) if keys.shape[0] != bs else keys
        src_grid = keys.transpose(1, 2).reshape(bs, -1, h, w)
        upscaled = self._upscale(src_grid, high_res_features)
        s = 1 if self.pred_obj_scores else 0
        mask_tokens = hs[:, s + 1 : s + 1 + self.num_mask_tokens, :]
        hyper_in = torch.stack(
            [mlp(mask_tokens[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)],
            dim=1,
        )
        b, c, uh, uw = upscaled.shape
        masks = (hyper_in @ upscaled.reshape(b, c, uh * uw)).view(b, -1, uh, uw)
        iou = self.iou_prediction_head(hs[:, s, :])
        if self.pred_obj_scores:
            obj = self.pred_obj_score_head(hs[:, 0, :])
        else:  # "object present" (sigmoid(10) ~ 1), as Meta's decoder without the head
            obj = 10.0 * iou.new_ones(iou.shape[0], 1)
        return Sam2DecoderOutput(masks, iou, obj, mask_tokens)

    def stability_scores(self, mask_logits: torch.Tensor) -> torch.Tensor:
        """(B, M, h, w) logits -> (B, M): area above +delta over area above -delta (1 if empty)."""
        flat = mask_logits.flatten(-2)
        delta = self.dynamic_multimask_stability_delta
        inter = (flat > delta).sum(dim=-1).float()
        union = (flat > -delta).sum(dim=-1).float()
        return torch.where(union > 0, inter / union, 1.0)

    def select(
        self, out: Sam2DecoderOutput, multimask_output: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The returned masks and IoU: tokens 1..3 with ``multimask_output``, else token 0 (or,
        with the dynamic rule in eval mode, the best multimask output where token 0 is
        unstable)."""
        masks, iou = out.masks, out.iou
        if multimask_output:
            return masks[:, 1:], iou[:, 1:]
        if not (self.dynamic_multimask_via_stability and not self.training):
            return masks[:, :1], iou[:, :1]
        best = iou[:, 1:].argmax(dim=-1)
        rows = torch.arange(iou.shape[0], device=iou.device)
        best_masks = masks[:, 1:][rows, best].unsqueeze(1)
        best_iou = iou[:, 1:][rows, best].unsqueeze(1)
        stable = self.stability_scores(masks[:, :1]) >= self.dynamic_multimask_stability_thresh
        return (
            torch.where(stable[..., None, None], masks[:, :1], best_masks),
            torch.where(stable, iou[:, :1], best_iou),
        )

    def forward(  # type: ignore[override]
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
        high_res_features: list[torch.Tensor] | None = None,
        cache: DecoderCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> low-res logits (B, M, 4h, 4w), IoU (B, M) and object-score logits (B, 1), M = 3
        with ``multimask_output`` else 1."""
        out = self.predict_all(
            image_embeddings,
            image_pe,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            high_res_features,
            cache,
        )
        masks, iou = self.select(out, multimask_output)
        return masks, iou, out.object_scores
