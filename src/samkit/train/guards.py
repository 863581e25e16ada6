"""Checks that stop a training before it writes something wrong: a loss that is not finite
(the weights are about to become NaN), weights that are not finite (never saved as
``best.pt``), and the settings of a resumed run against the ones it was started with."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import torch

from samkit.errors import SamkitError

__all__ = ["NonFiniteError", "check_loss", "check_weights", "resume_settings"]

# Settings a resumed run may change: where and how it runs, not what it learns.
CHANGEABLE = frozenset(
    {"resume", "epochs", "device", "progress", "exist_ok", "project", "name", "save_period",
     "plots", "cache", "agreement"}
)  # fmt: skip


class NonFiniteError(SamkitError):
    """The loss or the weights became NaN or infinite; nothing of that state is saved."""


def check_loss(value: float, epoch: int, step: int, lr: float) -> None:
    """Raise :class:`NonFiniteError` when the (summed) micro-batch loss ``value`` is NaN/inf."""
    if math.isfinite(value):
        return
    raise NonFiniteError(
        f"the training loss is {value} at epoch {epoch + 1}, step {step + 1} (lr={lr:.3g}): "
        "the weights would become NaN, so the run stops here and the last saved weights stay "
        "as they were. Usual causes: a learning rate too high, or damaged targets (a "
        "teacher-embedding cache or labels with NaN values)"
    )


def check_weights(weights: Mapping[str, torch.Tensor], what: str) -> None:
    """Raise :class:`NonFiniteError` naming the first floating tensor of ``weights`` that holds
    NaN or infinite values (``what``: the file about to be written, for the message)."""
    for name, tensor in weights.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise NonFiniteError(
                f"{name} holds NaN or infinite values: {what} is not written. The loss "
                "diverged; lower lr (or check the training targets) and start again"
            )


def _json(value: Any) -> str:
    from samkit.train.runs import _plain

    return json.dumps(_plain(value), sort_keys=True)


def resume_settings(
    kwargs: Mapping[str, Any], defaults: Mapping[str, Any], what: str
) -> dict[str, Any]:
    """The keywords of a ``resume`` call: the run's own settings (``args.yaml``) for every key
    left at its default, ``resume`` pinned to the run folder. A key given with a value other
    than the run's (except :data:`CHANGEABLE` ones) raises SamkitError naming every such key,
    before anything is built.
    """
    from samkit.train.runs import find_resume, read_args

    resume = kwargs.get("resume")
    if not resume:
        return dict(kwargs)
    project = kwargs.get("project", defaults["project"])
    run = find_resume(resume, project, kwargs.get("name", defaults["name"]))
    saved = read_args(run)
    out, differ = dict(kwargs), []
    for key, old in saved.items():
        if key in CHANGEABLE or key not in defaults:
            continue
        new = kwargs.get(key, defaults[key])
        if _json(new) == _json(old):
            continue
        if key not in kwargs or _json(new) == _json(defaults[key]):
            out[key] = old  # not asked for: the run's own value
            continue
        differ.append(f"{key}={new!r} (the run has {old!r})")
    if differ:
        raise SamkitError(
            f"resume: {run} was {what} with other settings: {'; '.join(differ)}. Resume with "
            "the run's own settings, or start a new run (without resume) to change them"
        )
    out["resume"] = str(run)
    return out
