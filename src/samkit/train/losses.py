"""SAM's training loss: focal + dice on mask logits, MSE of the IoU head against the true IoU,
the minimum over multimask candidates back-propagated (Kirillov et al. 2023, section 3 and
appendix A; lightning-sam, EfficientViT-SAM, micro-sam use the same terms).

One addition keeps a new decoder from collapsing to empty masks: focal loss with alpha = 0.25,
averaged over pixels, is lowest for a decoder that cannot yet tell object from background when
it predicts background everywhere (the best constant logit is about -1.6 for a 5 % object), so
a randomly initialised decoder first learns "empty" and only slowly the object's place. A
candidate whose IoU with its target is below ``balance_below`` gets class-balanced focal
weights instead (positives weighted by the background's share of the grid, negatives by the
object's), under which the best constant prediction is the 0.5 threshold itself and the
gradient mostly says where the object is. Candidates above it -- nearly all of a trained
model's -- keep SAM's weights, so adapting a trained model follows SAM's recipe.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["LossWeights", "dice_loss", "focal_alpha", "focal_loss", "mask_iou", "sam_loss"]


@dataclass(frozen=True)
class LossWeights:
    """Weights of the terms; SAM's are focal 20 : dice 1, IoU MSE 1. ``balance_below``:
    candidates with a lower IoU get class-balanced focal weights (0: SAM's alpha always)."""

    focal: float = 20.0
    dice: float = 1.0
    iou: float = 1.0
    alpha: float = 0.25
    balance_below: float = 0.5


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float | torch.Tensor = 0.25,
    gamma: float = 2.0,
) -> torch.Tensor:
    """Sigmoid focal loss (RetinaNet), mean over pixels: logits / target (..., H, W), target in
    [0, 1] (soft targets allowed) -> (...). ``alpha``: weight of the positives (negatives get
    1 - alpha), a float (< 0: unweighted) or a tensor (...) per mask."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    if isinstance(alpha, torch.Tensor):
        a = alpha[..., None, None]
        loss = (a * target + (1 - a) * (1 - target)) * loss
    elif alpha >= 0:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.flatten(-2).mean(-1)


def focal_alpha(
    logits: torch.Tensor, target: torch.Tensor, true_iou: torch.Tensor, weights: LossWeights
) -> float | torch.Tensor:
    """Per-mask positive weight (...): the background's share of the grid where ``true_iou``
    is below ``weights.balance_below`` (class-balanced), else ``weights.alpha``."""
    if weights.balance_below <= 0:
        return weights.alpha
    share = target.flatten(-2).mean(-1).clamp(1e-4, 1 - 1e-4)
    poor = true_iou < weights.balance_below
    return torch.where(poor, 1 - share, torch.full_like(share, weights.alpha)).detach()


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft dice of sigmoid(logits) and target, per mask: (..., H, W) -> (...)."""
    prob = logits.sigmoid().flatten(-2)
    tgt = target.flatten(-2)
    inter = (prob * tgt).sum(-1)
    return 1 - (2 * inter + eps) / (prob.sum(-1) + tgt.sum(-1) + eps)


def mask_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of ``logits > 0`` with ``target > 0.5``, per mask (no gradient): (..., H, W) -> (...).
    An empty prediction of an empty target counts as 1."""
    with torch.no_grad():
        pred = logits > 0
        gt = target > 0.5
        inter = (pred & gt).flatten(-2).sum(-1).float()
        union = (pred | gt).flatten(-2).sum(-1).float()
        return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def sam_loss(
    logits: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor, weights: LossWeights
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-object loss for candidates: logits (B, M, H, W), iou_pred (B, M), target (B, H, W).

    Mask loss ``focal * w_f + dice * w_d`` of the candidate with the lowest mask loss (M = 3:
    SAM's multimask rule; M = 1: the one mask), plus ``w_iou * MSE(iou_pred, true IoU)`` over
    all candidates; focal weights per :func:`focal_alpha`. Returns the per-object loss (B,)
    and its terms (B,) for logging, with ``best`` the index of the back-propagated candidate.
    """
    tgt = target[:, None].expand_as(logits)
    true_iou = mask_iou(logits, tgt)
    focal = focal_loss(logits, tgt, alpha=focal_alpha(logits, tgt, true_iou, weights))
    dice = dice_loss(logits, tgt)
    mask = weights.focal * focal + weights.dice * dice
    best = mask.argmin(dim=1, keepdim=True)
    iou_mse = ((iou_pred.float() - true_iou) ** 2).mean(dim=1)
    total = mask.gather(1, best)[:, 0] + weights.iou * iou_mse
    terms = {
        "focal": focal.gather(1, best)[:, 0].detach(),
        "dice": dice.gather(1, best)[:, 0].detach(),
        "iou_mse": iou_mse.detach(),
        "mIoU": true_iou.gather(1, best)[:, 0],
        "best": best[:, 0],
    }
    return total, terms
