"""Distillation losses: stage 1 regresses the teacher's image embeddings (MSE, Huber or L1);
stage 2 puts prompts in the loop (EdgeSAM) and matches the teacher's masks (BCE + dice).

Frames: prompts are in the model-input frame (pixels of the resized, padded S x S input);
mask logits are the decoder's low-resolution (S/4 x S/4) output in that frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from samkit.errors import SamkitError
from samkit.modeling import Sam

__all__ = ["EMBEDDING_LOSSES", "embedding_loss", "mask_loss", "prompt_loss", "sample_prompts"]

EMBEDDING_LOSSES = ("mse", "huber", "l1")


def embedding_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Mean loss between student and teacher embeddings (B, C, g, g); ``kind`` in
    :data:`EMBEDDING_LOSSES` (Huber with delta 1, as NanoSAM)."""
    if kind == "mse":
        return F.mse_loss(pred, target)
    if kind == "huber":
        return F.huber_loss(pred, target, delta=1.0)
    if kind == "l1":
        return F.l1_loss(pred, target)
    raise SamkitError(f"loss must be one of {', '.join(EMBEDDING_LOSSES)}, got {kind!r}")


def mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE + soft dice of mask logits (..., h, w) against binary targets of the same shape,
    each averaged over masks."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = logits.sigmoid().flatten(-2)
    flat = target.flatten(-2)
    dice = 1 - (2 * (prob * flat).sum(-1) + 1) / (prob.sum(-1) + flat.sum(-1) + 1)
    return bce + dice.mean()


def sample_prompts(input_size: tuple[int, int], n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` random points (n, 2) as (x, y) inside the image part (h, w) of the input frame."""
    h, w = input_size
    u = torch.rand(n, 2, generator=generator)
    return u * torch.tensor([w - 1, h - 1], dtype=torch.float32) + 0.5


def _box_of(masks: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Tight XYXY boxes (n, 4) of binary low-res masks (n, h, w), scaled to the input frame,
    and which masks are non-empty (n,)."""
    ys = masks.any(-1)
    xs = masks.any(-2)
    present = ys.any(-1)
    idx_y = torch.arange(masks.shape[-2], dtype=torch.float32, device=masks.device)
    idx_x = torch.arange(masks.shape[-1], dtype=torch.float32, device=masks.device)
    big = 1e9
    y0 = torch.where(ys, idx_y, big).amin(-1)
    y1 = torch.where(ys, idx_y, -big).amax(-1) + 1
    x0 = torch.where(xs, idx_x, big).amin(-1)
    x1 = torch.where(xs, idx_x, -big).amax(-1) + 1
    boxes = torch.stack([x0, y0, x1, y1], -1) * scale
    return torch.where(present[:, None], boxes, torch.zeros_like(boxes)), present


@torch.no_grad()
def _teacher_targets(
    teacher: Sam, embedding: torch.Tensor, points: torch.Tensor, boxes: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Teacher masks for point prompts (n, 3, h, w) and for box prompts (n, 1, h, w) as binary
    floats, the boxes (n, 4) and which are usable (n,). Without ``boxes``, the boxes are those
    of the teacher's best mask for each point."""
    labels = torch.ones(points.shape[0], 1, device=points.device)
    point_logits, iou = teacher.decode(embedding, points=(points[:, None], labels))
    if boxes is None:
        best = point_logits[torch.arange(points.shape[0], device=iou.device), iou.argmax(-1)] > 0
        boxes, present = _box_of(best, teacher.image_size / point_logits.shape[-1])
    else:
        present = torch.ones(boxes.shape[0], dtype=torch.bool, device=boxes.device)
    box_logits, _ = teacher.decode(embedding, boxes=boxes, multimask_output=False)
    return (point_logits > 0).float(), (box_logits > 0).float(), boxes, present


def prompt_loss(
    student: Sam,
    teacher: Sam,
    student_embeddings: torch.Tensor,
    teacher_embeddings: torch.Tensor,
    input_sizes: torch.Tensor,
    *,
    prompts_per_image: int,
    generator: torch.Generator,
    gt: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Prompt-in-the-loop loss for a batch: per image, random points and the boxes of the
    teacher's masks for them; the student (its encoder's embeddings through its own prompt
    encoder and decoder) must give the teacher's masks for the same prompts (every multimask
    output for points, the single output for boxes). Embeddings (B, C, g, g); input_sizes
    (B, 2) (h, w). ``gt``: ground-truth prompts (``gt_points`` (B, K, 2), ``gt_boxes``
    (B, K, 4) in the input frame, ``gt_count`` (B,)); an image with any uses them instead of
    random points. Returns the mean BCE + dice over points and boxes."""
    losses = []
    for b in range(student_embeddings.shape[0]):
        h, w = (int(v) for v in input_sizes[b])
        emb = student_embeddings[b : b + 1]
        count = int(gt["gt_count"][b]) if gt is not None else 0
        given: torch.Tensor | None = None
        if count:
            points = gt["gt_points"][b, :count].to(emb.device)  # type: ignore[index]
            given = gt["gt_boxes"][b, :count].to(emb.device)  # type: ignore[index]
        else:
            points = sample_prompts((h, w), prompts_per_image, generator).to(emb.device)
        t_points, t_boxes, boxes, present = _teacher_targets(
            teacher, teacher_embeddings[b : b + 1], points, given
        )
        labels = torch.ones(points.shape[0], 1, device=emb.device)
        s_points, _ = student.decode(emb, points=(points[:, None], labels))
        losses.append(mask_loss(s_points, t_points))
        if bool(present.any()):
            s_boxes, _ = student.decode(emb, boxes=boxes[present], multimask_output=False)
            losses.append(mask_loss(s_boxes, t_boxes[present]))
    return torch.stack(losses).mean()
