"""``python -m samkit.train.launch SPEC.json``: the per-process body of a spawned torchrun job
(see :func:`samkit.train.distributed.spawn`). SPEC holds ``{"entry": "module:function",
"kwargs": {...}}``; the entry point is called with the keyword arguments in every process."""

from __future__ import annotations

import json
import sys
from importlib import import_module


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m samkit.train.launch SPEC.json", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as f:
        spec = json.load(f)
    module, _, name = str(spec["entry"]).partition(":")
    getattr(import_module(module), name)(**spec["kwargs"])
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
