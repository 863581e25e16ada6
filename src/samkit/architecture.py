"""Recognise a model's architecture from a state dict's tensor names and shapes alone, never
from a file name; each registered family (:mod:`samkit.families`) recognises its own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from samkit.families import recognize

__all__ = ["infer_config"]


def infer_config(state_dict: Mapping[str, Any]) -> Any:
    """The config (a :class:`~samkit.registry.SamConfig` for SAM-1) of the network whose
    tensors these are, from the first registered family that recognises them.

    Raises:
        CheckpointError: no registered family recognises the tensors.
    """
    return recognize(state_dict)[1]
