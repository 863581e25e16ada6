"""Prompts simulated from ground-truth masks during training, as SAM was trained: a jittered
box or random interior points first, then clicks in the error region of the previous
prediction (positive on missed object, negative on false foreground), optionally with the
previous low-res logits as the mask prompt. All coordinates are in the model's input frame
(the resized image, long side ``image_size``); targets are ``(N, L, L)`` soft masks on the
decoder's low-res grid (``L = image_size / 4``), one cell = 4 input pixels."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

__all__ = ["PROMPT_MODES", "Prompts", "add_error_clicks", "first_prompts"]

PROMPT_MODES = ("mixed", "box", "point")
_CELL = 4  # input pixels per low-res cell


@dataclass(frozen=True)
class Prompts:
    """Prompts for a group of objects of one image, decoded in one call.

    index (B,) rows of the image's objects; coords (B, K, 2) XY input pixels and labels (B, K)
    (1 positive, 0 negative, -1 padding) or None; boxes (B, 4) XYXY input pixels or None;
    mask_input (B, 1, L, L) logits or None; multimask: 3 candidates (min loss) or 1.
    """

    index: torch.Tensor
    coords: torch.Tensor | None
    labels: torch.Tensor | None
    boxes: torch.Tensor | None
    mask_input: torch.Tensor | None = None
    multimask: bool = False

    @property
    def points(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.coords is None or self.labels is None:
            return None
        return self.coords, self.labels


def _cell_center(flat: np.ndarray, side: int) -> np.ndarray:
    """Flat low-res cell indexes -> (n, 2) XY input pixels at the cells' centres."""
    y, x = np.divmod(flat, side)
    return np.stack([x, y], axis=-1).astype(np.float32) * _CELL + (_CELL - 1) / 2


def _interior_points(target: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k random cells inside one (L, L) target (the most covered cell if none is > 0.5)."""
    flat = np.flatnonzero(target.reshape(-1) > 0.5)
    if flat.size == 0:
        flat = np.array([int(np.argmax(target))])
    pick = rng.choice(flat, size=k, replace=flat.size < k)
    return _cell_center(pick, target.shape[-1])


def _jitter(box: np.ndarray, rng: np.random.Generator, frac: float, cap: float) -> np.ndarray:
    """SAM's box noise: each side moved by N(0, frac * side length), at most ``cap`` pixels."""
    w, h = box[2] - box[0] + 1, box[3] - box[1] + 1
    noise = np.clip(rng.normal(0, 1, 4) * frac * np.array([w, h, w, h]), -cap, cap)
    out = box + noise
    return np.array(
        [min(out[0], out[2]), min(out[1], out[3]), max(out[0], out[2]), max(out[1], out[3])]
    )


def first_prompts(
    targets: torch.Tensor,
    boxes: np.ndarray,
    rng: np.random.Generator,
    mode: str,
    max_points: int,
    box_jitter: float,
    image_size: int,
) -> list[Prompts]:
    """Round-0 prompts for N objects, grouped so each group decodes in one call: boxes (single
    mask), one point (multimask, the ambiguous case) and 2..max_points points (single mask).

    targets (N, L, L); boxes (N, 4) tight XYXY in input pixels; ``mode`` "mixed" (box or
    points, 50 / 50 per object), "box" or "point".
    """
    n = targets.shape[0]
    if mode == "box":
        use_box = np.ones(n, bool)
    elif mode == "point":
        use_box = np.zeros(n, bool)
    else:
        use_box = rng.random(n) < 0.5
    n_points = rng.integers(1, max_points + 1, size=n)
    cap = 20.0 * image_size / 1024
    device = targets.device
    tgt = targets.float().cpu().numpy()
    groups: list[Prompts] = []
    box_rows = np.flatnonzero(use_box)
    if box_rows.size:
        jittered = np.stack([_jitter(boxes[i], rng, box_jitter, cap) for i in box_rows])
        groups.append(
            Prompts(
                torch.as_tensor(box_rows, device=device),
                None,
                None,
                torch.as_tensor(jittered, dtype=torch.float32, device=device),
            )
        )
    for multi in (True, False):
        rows = np.flatnonzero(~use_box & ((n_points == 1) == multi))
        if not rows.size:
            continue
        k = int(n_points[rows].max())
        coords = np.zeros((rows.size, k, 2), np.float32)
        labels = -np.ones((rows.size, k), np.int64)
        for j, i in enumerate(rows):
            coords[j, : n_points[i]] = _interior_points(tgt[i], int(n_points[i]), rng)
            labels[j, : n_points[i]] = 1
        groups.append(
            Prompts(
                torch.as_tensor(rows, device=device),
                torch.as_tensor(coords, device=device),
                torch.as_tensor(labels, device=device),
                None,
                multimask=multi,
            )
        )
    return groups


def add_error_clicks(
    prompts: Prompts,
    logits: torch.Tensor,
    targets: torch.Tensor,
    rng: np.random.Generator,
    use_mask: bool,
) -> Prompts:
    """The next round: one click per object in its error region (uniformly drawn: positive
    where the object was missed, negative on false foreground), the previous prompt kept,
    single-mask output; with ``use_mask`` the previous logits (B, 1, L, L) become the mask
    prompt. logits (B, 1, L, L) of the chosen candidate; targets (B, L, L)."""
    pred = (logits[:, 0] > 0).cpu().numpy()
    gt = (targets > 0.5).cpu().numpy()
    side = gt.shape[-1]
    new_xy = np.zeros((len(pred), 1, 2), np.float32)
    new_label = np.zeros((len(pred), 1), np.int64)
    for j in range(len(pred)):
        wrong = np.flatnonzero((pred[j] != gt[j]).reshape(-1))
        if wrong.size == 0:  # already right: a positive click inside keeps it
            wrong = np.flatnonzero(gt[j].reshape(-1)) if gt[j].any() else np.array([0])
        cell = int(rng.choice(wrong))
        new_xy[j, 0] = _cell_center(np.array([cell]), side)[0]
        new_label[j, 0] = int(gt[j].reshape(-1)[cell])
    device = logits.device
    xy = torch.as_tensor(new_xy, device=device)
    lab = torch.as_tensor(new_label, device=device)
    if prompts.coords is None or prompts.labels is None:
        coords, labels = xy, lab
    else:
        coords = torch.cat([prompts.coords, xy], dim=1)
        labels = torch.cat([prompts.labels, lab], dim=1)
    mask = logits.detach() if use_mask else None
    return replace(prompts, coords=coords, labels=labels, mask_input=mask, multimask=False)
