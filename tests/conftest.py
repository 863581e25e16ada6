"""Shared test setup: markers and the fixtures several test files use.

Markers (registered in pyproject.toml): ``slow`` full-size or long runs, left out of the default
set (``pytest -m "not slow"``); ``ci`` marks the few slow tests CI runs as well (``.ci/run``
runs ``-m "slow and ci"`` after the default set: full-size parity stays checked on every
change); ``parity`` compares with the reference packages; ``gpu`` needs CUDA.

The helper modules (``reference``, ``amg_weights``, ``front_helpers`` ...) live beside the tests
and are imported by their plain names; this folder is put on ``sys.path`` here so that holds
under any pytest import mode.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random checkpoint of the 256-input tiny ViT SAM (``front_helpers.TINY_CONFIG``)
    in the official format: encodes in milliseconds, for plumbing tests."""
    from front_helpers import TINY_CONFIG, save_random_checkpoint

    return save_random_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny_sam.pt", TINY_CONFIG)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A ``ci`` test is a slow test by definition: mark it ``slow`` too, so the default set
    leaves it out and ``-m "slow and ci"`` picks it up."""
    for item in items:
        if item.get_closest_marker("ci") is not None and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow)
