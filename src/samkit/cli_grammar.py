"""samkit's command-line grammar: ``samkit MODE key=value ...``.

Both spellings map to the same keys: ``key=value``, ``--key value``, ``--key=value`` and a bare
``--flag`` for booleans (``-`` in a key is read as ``_``). Values are parsed by the key's type
(JSON / Python literals for lists and numbers, never ``eval``). A mistyped key or mode gets a
close-match suggestion. The modes themselves are listed in :mod:`samkit.cli_table`.
"""

from __future__ import annotations

import ast
import difflib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from samkit.errors import ArgumentError, SamkitError

__all__ = ["Key", "Mode", "UsageError", "parse_args", "parse_value", "suggest"]


class UsageError(SamkitError):
    """The command line itself is wrong (unknown mode or key, bad value)."""


@dataclass(frozen=True)
class Key:
    """One ``key=value`` setting: ``type`` is bool, int, float, str, or "literal" (a JSON /
    Python literal such as ``[[900,370]]``); ``default`` None means optional and unset."""

    type: Any
    default: Any = None
    help: str = ""
    required: bool = False


@dataclass(frozen=True)
class Mode:
    """A CLI mode: ``handler(args) -> exit code``; ``positional`` keys take bare words;
    ``renamed`` maps old key spellings to the current names (accepted with a note)."""

    handler: str | Callable[[dict[str, Any]], int]
    help: str
    keys: dict[str, Key] = field(default_factory=dict)
    positional: tuple[str, ...] = ()
    renamed: dict[str, str] = field(default_factory=dict)

    def run(self, args: dict[str, Any]) -> int:
        handler = self.handler
        if isinstance(handler, str):
            module, _, name = handler.partition(":")
            handler = getattr(import_module(module), name)
        return int(handler(args) or 0)


# ------------------------------------------------------------------------------------ values
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_value(name: str, key: Key, text: str) -> Any:
    """Convert the command-line text of ``name`` to its type; UsageError when it does not fit."""
    if key.default is None and not key.required and text.lower() in ("none", "null"):
        return None
    want = key.type
    try:
        if want is bool:
            low = text.lower()
            if low in _TRUE | _FALSE:
                return low in _TRUE
            raise ArgumentError(f"{text!r} is not true or false")
        if want is int:
            return int(text)
        if want is float:
            value = float(text)
            if value != value:  # NaN
                raise ArgumentError("NaN is not a number here")
            return value
        if want == "literal":
            return _literal(text)
        return text
    except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
        kind = {bool: "true or false", int: "an integer", float: "a number"}.get(
            want, "a list or number like [[400,370]]"
        )
        raise UsageError(f"bad value for {name}: {text!r} (expected {kind})") from None


def _literal(text: str) -> Any:
    if len(text) > 1_000_000:
        raise ArgumentError("longer than 1,000,000 characters")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        value = ast.literal_eval(text)  # literals only: no names, calls or attributes
        if not isinstance(value, (list, tuple, int, float, bool)):
            raise ArgumentError(f"{text!r} is not a list or number") from None
        return value


# ------------------------------------------------------------------------------------ parsing
def suggest(word: str, options: Sequence[str], renamed: dict[str, str] | None = None) -> str:
    """' Did you mean ...?' for the closest option; an old spelling suggests its new name."""
    renamed = renamed or {}
    close = difflib.get_close_matches(word, [*options, *renamed], n=1, cutoff=0.5)
    return f" Did you mean {renamed.get(close[0], close[0])!r}?" if close else ""


def parse_args(mode_name: str, mode: Mode, argv: Sequence[str]) -> dict[str, Any]:
    """Tokens after the mode -> ``{key: value}`` with defaults filled in."""
    keys = mode.keys
    given: dict[str, str] = {}
    positional: list[str] = []
    tokens = list(argv)
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if tok.startswith("--") or ("=" in tok and not tok.startswith("-")):
            name, eq, value = tok.lstrip("-").partition("=")
            name = name.replace("-", "_")
            if name in mode.renamed:
                new = mode.renamed[name]
                print(f"samkit: note: {name}= is now {new}= (the API's name)", file=sys.stderr)
                name = new
            if name not in keys:
                raise UsageError(
                    f"unknown key {name!r} for '{mode_name}'."
                    f"{suggest(name, list(keys), mode.renamed)} "
                    f"See: samkit {mode_name} --help"
                )
            if not eq:
                nxt = tokens[i] if i < len(tokens) else None
                if keys[name].type is bool and (nxt is None or nxt.lower() not in _TRUE | _FALSE):
                    value = "true"
                elif nxt is None:
                    raise UsageError(f"--{name} needs a value")
                else:
                    value, i = nxt, i + 1
            given[name] = value
        else:
            positional.append(tok)
    if len(positional) > len(mode.positional):
        extra = positional[len(mode.positional)]
        raise UsageError(
            f"unexpected argument {extra!r} for '{mode_name}' (use key=value, e.g. source={extra})"
        )
    for name, text in zip(mode.positional, positional, strict=False):
        given.setdefault(name, text)
    out = {name: parse_value(name, keys[name], text) for name, text in given.items()}
    for name, key in keys.items():
        if name not in out:
            if key.required:
                raise UsageError(f"'{mode_name}' needs {name}=... (see samkit {mode_name} --help)")
            out[name] = key.default
    return out
