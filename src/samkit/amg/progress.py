"""Segment everything's progress bar: grid points decoded out of the image's total."""

from __future__ import annotations

from typing import Any

from samkit.engine import EverythingEngine

__all__ = ["CountingEngine", "points_bar"]


def points_bar(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="pt", desc="everything", disable=not enabled, leave=False)


class CountingEngine:
    """The generator's engine, advancing ``bar`` by each batch of grid points once decoded."""

    def __init__(self, engine: EverythingEngine, bar: Any) -> None:
        self._engine = engine
        self._bar = bar

    def decode_points(self, coords: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        out = self._engine.decode_points(coords, *args, **kwargs)
        self._bar.update(len(coords))
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)
