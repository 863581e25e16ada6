"""The per-item error path of every long run (``val``, ``train``, ``distill``, ``embed``): each
item's file reads happen inside :func:`each_item`, so an unreadable, truncated or empty file is
reported with its name and the run carries on with the next item; a programming error (any
other exception) still stops the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from samkit.errors import SamkitError

__all__ = ["ITEM_ERRORS", "each_item", "item_message"]

logger = logging.getLogger("samkit")

T = TypeVar("T")
R = TypeVar("R")

# What one bad file raises: samkit's own errors (SourceError, FormatError ...), I/O errors
# (PIL's "image file is truncated" and UnidentifiedImageError are OSErrors), bad values.
ITEM_ERRORS: tuple[type[BaseException], ...] = (SamkitError, OSError, ValueError, EOFError)


def item_message(name: str, exc: BaseException) -> str:
    """``exc``'s text with ``name`` in it (prefixed when the text does not name the file)."""
    text = str(exc) or type(exc).__name__
    return text if name in text else f"{name}: {text}"


def _log(name: str, message: str) -> None:
    logger.warning("skipped %s", message)


def each_item(
    items: Iterable[T],
    read: Callable[[T], R],
    *,
    name: Callable[[T], str],
    report: Callable[[str, str], None] | None = None,
    done: Callable[[], None] | None = None,
) -> Iterator[tuple[T, R]]:
    """``(item, read(item))`` for every item whose ``read`` succeeds.

    ``read`` does every file read of the item; when it raises one of :data:`ITEM_ERRORS`, the
    item is reported (``report(name(item), message)``, default: a warning on the ``samkit``
    logger), ``done()`` is called (a progress bar advances for it too) and the next item is read.
    """
    say = report or _log
    for item in items:
        try:
            value = read(item)
        except ITEM_ERRORS as exc:
            where = name(item)
            say(where, item_message(where, exc))
            if done is not None:
                done()
            continue
        yield item, value
