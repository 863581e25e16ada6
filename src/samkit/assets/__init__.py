"""Files that ship with samkit: ``sample.jpg``, a 640x427 outdoor scene drawn for samkit
(sky, hills, a house, a tree, a red ball; ``tests/sample_scene.py`` draws it), to try every
command before using your own images.

``samkit.ASSETS / "sample.jpg"`` in Python (as Ultralytics' ``ASSETS``); on the command line
``samkit sample`` prints its path: ``samkit predict source="$(samkit sample)" ...``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ASSETS", "SAMPLE"]

ASSETS = Path(__file__).resolve().parent
SAMPLE = ASSETS / "sample.jpg"
