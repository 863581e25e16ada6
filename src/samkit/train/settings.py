"""Keyword settings of a training entry point (``train``, ``distill``) split between the loop's
:class:`~samkit.train.trainer.TrainConfig` and the task's own settings dataclass, with a
close-match hint for a mistyped keyword; numeric values are checked by the rules every long
run shares (:mod:`samkit.run_checks`)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

from samkit.errors import SamkitError
from samkit.run_checks import check_run_settings
from samkit.train.trainer import TrainConfig

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["cli_settings", "setting_defaults", "setting_names", "split_settings"]

T = TypeVar("T", bound="DataclassInstance")


def setting_names(task: type[DataclassInstance]) -> list[str]:
    """Every keyword an entry point with task settings ``task`` accepts, sorted."""
    return sorted({f.name for f in fields(TrainConfig)} | {f.name for f in fields(task)})


def setting_defaults(task: type[DataclassInstance]) -> dict[str, Any]:
    """Every keyword of an entry point with task settings ``task`` and its default."""
    out = {f.name: f.default for f in fields(TrainConfig)}
    out.update({f.name: f.default for f in fields(task)})
    return out


def split_settings(kwargs: Mapping[str, Any], task: type[T], what: str) -> tuple[TrainConfig, T]:
    """``kwargs`` -> (TrainConfig, ``task`` settings), each keyword to the dataclass that has it
    as a field. An unknown keyword raises ``unknown {what} setting ...`` with the closest name."""
    loop = {f.name for f in fields(TrainConfig)}
    own = {f.name for f in fields(task)}
    unknown = [k for k in kwargs if k not in loop | own]
    if unknown:
        close = difflib.get_close_matches(unknown[0], setting_names(task), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise SamkitError(f"unknown {what} setting {unknown[0]!r}.{hint}")
    check_run_settings(kwargs, what)
    config = TrainConfig(**{k: v for k, v in kwargs.items() if k in loop})
    return config, task(**{k: v for k, v in kwargs.items() if k in own})


def cli_settings(args: Mapping[str, Any]) -> dict[str, Any]:
    """A CLI mode's parsed ``key=value`` settings as keywords: unset (None) keys dropped and
    ``resume=true`` / ``resume=false`` read as booleans (any other string is a run folder)."""
    given = {k: v for k, v in args.items() if v is not None}
    if isinstance(given.get("resume"), str) and given["resume"].lower() in ("true", "false"):
        given["resume"] = given["resume"].lower() == "true"
    return given
