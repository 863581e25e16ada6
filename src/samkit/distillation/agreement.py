"""Teacher agreement (the MobileSAM paper's measure): mIoU between the student's and the
teacher's masks for the same prompts on held-out images, with no labels.

Per image, seeded random points (original-image pixels) are given to both models; each keeps
its own best candidate by predicted IoU, as a user of ``multimask_output=True`` would. The box
prompt is the tight box of the teacher's point mask, given to both models with one output.
Prompts whose teacher mask is empty are skipped (counted).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from samkit.masks import mask_to_box
from samkit.modeling import Sam
from samkit.predictor import SamPredictor

__all__ = ["Agreement", "teacher_agreement"]


@dataclass(frozen=True)
class Agreement:
    """Mean IoU of student vs teacher masks: ``point`` (one positive point), ``box`` (the box
    of the teacher's point mask); ``prompts`` compared per kind, ``skipped`` prompts whose
    teacher mask was empty, ``images`` evaluated."""

    point: float
    box: float
    prompts: int
    skipped: int
    images: int

    def as_dict(self) -> dict[str, float]:
        return {
            "agreement/point_mIoU": self.point,
            "agreement/box_mIoU": self.box,
            "agreement/prompts": float(self.prompts),
        }


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _best(predictor: SamPredictor, **prompt: np.ndarray | bool) -> np.ndarray:
    masks, scores, _ = predictor.predict(**prompt)  # type: ignore[arg-type]
    return masks[int(np.argmax(scores))]


def teacher_agreement(
    student: Sam,
    teacher: Sam,
    images: Iterable[np.ndarray],
    *,
    points_per_image: int = 8,
    seed: int = 0,
) -> Agreement:
    """Student vs teacher mask mIoU on (H, W, 3) uint8 RGB ``images`` (see the module doc).

    Both models are used in eval mode; the student's training mode is restored afterwards.
    """
    was_training = student.training
    s_pred, t_pred = SamPredictor(student), SamPredictor(teacher)
    rng = np.random.default_rng(seed)
    point_ious: list[float] = []
    box_ious: list[float] = []
    skipped = n_images = 0
    try:
        for image in images:
            n_images += 1
            s_pred.set_image(image)
            t_pred.set_image(image)
            h, w = image.shape[:2]
            for xy in rng.uniform((0, 0), (w, h), size=(points_per_image, 2)):
                point = {"point_coords": xy[None], "point_labels": np.ones(1)}
                t_mask = _best(t_pred, **point)
                if not t_mask.any():
                    skipped += 1
                    continue
                point_ious.append(_iou(_best(s_pred, **point), t_mask))
                box = {"box": mask_to_box(t_mask[None])[0], "multimask_output": False}
                box_ious.append(_iou(_best(s_pred, **box), _best(t_pred, **box)))
    finally:
        student.train(was_training)
    return Agreement(
        point=float(np.mean(point_ious)) if point_ious else 0.0,
        box=float(np.mean(box_ious)) if box_ious else 0.0,
        prompts=len(point_ious),
        skipped=skipped,
        images=n_images,
    )
