"""One check of the numeric settings that the long runs share (``val``, ``train``, ``distill``,
``embed``): each key has one rule (type, range, finiteness), so ``batch=0`` or ``box_jitter=inf``
is refused the same way by every mode, before any model is loaded, with the key named.

A key not in :data:`RULES` is left to its owner; ``None`` means "unset" and is always accepted
(the owner's default applies).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from samkit.errors import ArgumentError

__all__ = ["RULES", "Rule", "check_run_settings"]


@dataclass(frozen=True)
class Rule:
    """``kind`` "int" or "float"; the value must lie in ``[low, high]`` (``low_open`` /
    ``high_open`` make that end exclusive); floats must be finite."""

    kind: str
    low: float = 0.0
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    meaning: str = ""

    def expected(self) -> str:
        """E.g. ``">= 1 (an integer)"``, ``"in [0, 1) (a finite number)"``."""
        kind = "an integer" if self.kind == "int" else "a finite number"
        if math.isinf(self.high):
            return f"{'>' if self.low_open else '>='} {self.low:g} ({kind})"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"in {left}{self.low:g}, {self.high:g}{right} ({kind})"


def _int(low: int = 0, meaning: str = "") -> Rule:
    return Rule("int", low, meaning=meaning)


def _float(low: float = 0.0, high: float = math.inf, **kw: Any) -> Rule:
    return Rule("float", low, high, **kw)


RULES: dict[str, Rule] = {
    # counts
    "batch": _int(1),
    "epochs": _int(1),
    "accumulate": _int(0, "0 picks the micro-batches from the memory budget"),
    "max_images": _int(1),
    "max_clicks": _int(1),
    "objects": _int(1),
    "max_points": _int(1),
    "shard_size": _int(1),
    "encode_batch": _int(1),
    "clicks": _int(0),
    "val_images": _int(0),
    "min_area": _int(0),
    "gallery": _int(0),
    "save_period": _int(0),
    "warmup": _int(0),
    "encoder_blocks": _int(0),
    "lora_rank": _int(0),
    "seed": _int(0, "numpy and torch seeds are non-negative"),
    # amounts
    "lr": _float(0.0, low_open=True),
    "memory": _float(),
    "balance_below": _float(0.0, 1.0),
    "weight_decay": _float(),
    "clip": _float(),
    "lr_final": _float(),
    "gamma": _float(0.0, low_open=True),
    "box_jitter": _float(),
    "mask_prompt": _float(0.0, 1.0),
    "val_fraction": _float(0.0, 1.0, high_open=True),
    "prompt_weight": _float(),
    "focal": _float(),
    "dice": _float(),
    "iou": _float(),
    "focal_alpha": _float(0.0, 1.0),
}


def _fits(rule: Rule, value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if rule.kind == "int":
        if not isinstance(value, int) and not (isinstance(value, float) and value.is_integer()):
            return False
    elif not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    above = value > rule.low if rule.low_open else value >= rule.low
    below = value < rule.high if rule.high_open else value <= rule.high
    return above and below


def check_run_settings(values: Mapping[str, Any], what: str = "") -> None:
    """Raise :class:`~samkit.errors.ArgumentError` naming the first key of ``values`` whose
    value breaks its rule in :data:`RULES` (``what``: the mode, for the message)."""
    for key, value in values.items():
        rule = RULES.get(key)
        if rule is None or value is None or _fits(rule, value):
            continue
        mode = f"{what}: " if what else ""
        why = f" ({rule.meaning})" if rule.meaning else ""
        raise ArgumentError(f"{mode}{key} must be {rule.expected()}, got {value!r}{why}")
