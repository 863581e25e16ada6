"""``samkit MODE key=value ...``: parse, call the public API, return an exit code.

Both grammars map to the same keys: ``key=value``, ``--key value``, ``--key=value`` and a bare
``--flag`` for booleans (``-`` in a key is read as ``_``). Values are parsed by the key's type
(JSON / Python literals for lists and numbers, never ``eval``): :mod:`samkit.cli_grammar`.

Adding a mode is one entry in :data:`MODES` (:mod:`samkit.cli_table`): a handler (a callable, or
``"module:function"`` imported only when the mode runs) taking the parsed ``dict`` of keys and
returning an exit code, plus its key table. Exit codes: 0 success, 1 a failure while running,
2 a usage error.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from samkit.cli_grammar import Key, Mode, UsageError, parse_args, suggest
from samkit.cli_grammar import parse_value as parse_value
from samkit.cli_table import ENGINE_KEYS as ENGINE_KEYS
from samkit.cli_table import EVERYTHING_KEYS as EVERYTHING_KEYS
from samkit.cli_table import MODES
from samkit.cli_table import PREDICT_KEYS as PREDICT_KEYS
from samkit.errors import SamkitError

__all__ = ["MODES", "Key", "Mode", "UsageError", "main", "parse_args"]


# ------------------------------------------------------------------------------------ help
def _main_help() -> str:
    width = max(len(m) for m in MODES)
    lines = [
        "usage: samkit MODE [key=value | --key value ...]",
        "",
        "Promptable image segmentation with the Segment Anything family.",
        "",
        "modes:",
        *(f"  {name.ljust(width)}  {mode.help}" for name, mode in MODES.items()),
        "",
        "samkit MODE --help lists the keys of a mode.",
        'example: samkit predict model=mobile_sam.pt source="$(samkit sample)" "bboxes=[480,290,560,370]"',
        "(quote values with brackets: zsh and other shells read [...] as a file pattern)",
    ]
    return "\n".join(lines)


def _mode_help(name: str, mode: Mode) -> str:
    pos = " ".join(p.upper() for p in mode.positional)
    lines = [f"usage: samkit {name} {pos + ' ' if pos else ''}[key=value ...]", "", mode.help]
    if mode.keys:
        lines += ["", "keys:"]
        width = max(len(k) for k in mode.keys)
        for key_name, key in mode.keys.items():
            tname = key.type if isinstance(key.type, str) else key.type.__name__
            default = "required" if key.required else f"default {key.default!r}"
            lines.append(f"  {key_name.ljust(width)}  {key.help} ({tname}, {default})")
        if any(k.type == "literal" for k in mode.keys.values()):
            lines += ["", 'Quote values with brackets, e.g. "points=[[400,370]]": zsh and other '
                      "shells read [...] as a file pattern."]  # fmt: skip
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ main
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``samkit`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    _setup_logging()
    if not args or args[0] in ("-h", "--help", "help"):
        print(_main_help())
        return 0 if args else 2
    if args[0] in ("-V", "--version", "version"):
        from samkit import __version__

        print(f"samkit {__version__}")
        return 0
    try:
        args = _drop_task_word(args)
        name = args[0]
        mode = MODES.get(name)
        if mode is None:
            raise UsageError(
                f"unknown mode {name!r}.{suggest(name, list(MODES))} Modes: {', '.join(MODES)}"
            )
        if any(a in ("-h", "--help") for a in args[1:]):
            print(_mode_help(name, mode))
            return 0
        parsed = parse_args(name, mode, args[1:])
        with warnings.catch_warnings():  # samkit's warnings as one line each, not Python's form
            warnings.showwarning = _warning_line
            return mode.run(parsed)
    except UsageError as exc:
        _error(exc)
        return 2
    except (SamkitError, OSError, ValueError, ImportError) as exc:
        _error(exc)  # ImportError: an optional dependency, its message says what to install
        return 1
    except KeyboardInterrupt:
        print("samkit: interrupted", file=sys.stderr)
        return 130


# Ultralytics' grammar is ``yolo TASK MODE ...``; SAM's one task is segmentation.
_TASKS = ("detect", "classify", "pose", "obb", "semantic")


def _drop_task_word(args: list[str]) -> list[str]:
    """``samkit segment predict ...`` -> ``predict ...`` (``samkit segment source=...`` too:
    the mode defaults to predict, as Ultralytics'); other task words are a UsageError."""
    if args[0] in _TASKS:
        raise UsageError(f"samkit only segments: use 'samkit segment ...', not {args[0]!r}")
    if args[0] != "segment":
        return args
    rest = args[1:]
    return rest if rest and rest[0] in MODES else ["predict", *rest]


def _warning_line(message: Warning | str, *args: Any, **kwargs: Any) -> None:
    print(f"samkit: warning: {' '.join(str(message).split())}", file=sys.stderr)


def _error(exc: BaseException) -> None:
    message = " ".join(str(exc).split()) or type(exc).__name__
    print(f"samkit: error: {message}", file=sys.stderr)


def _setup_logging() -> None:
    log = logging.getLogger("samkit")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("samkit: %(levelname)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
