"""Who is editing which image: short leases so that "next" hands annotators different images.

A page identifies itself with the ``X-Client`` header (a random id per tab) and names its
annotator with ``X-Annotator`` (shown to others, recorded on edits). A client holds at most one
lease; it lasts :data:`LEASE_SECONDS` and the page renews it while the image is open.

Routes (added by :func:`lease_routes`): ``POST /api/images/{id}/lease`` -> ``{"id",
"expires_in"}``, or 409 naming who holds the image; ``POST /api/next`` with ``{"after": id}``
-> ``{"id": the next image (after ``after``, wrapping) that is still to do and not leased by
another client, now leased to this one, or null}``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from samkit.label.checks import BadRequest

__all__ = ["LEASE_SECONDS", "Leases", "annotator", "lease_routes"]

LEASE_SECONDS = 90.0
MAX_NAME = 100


@dataclass
class _Lease:
    client: str
    name: str
    until: float


class Leases:
    """Leases of images by client id; ``clock`` is monotonic seconds (tests pass their own)."""

    def __init__(self, seconds: float = LEASE_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.seconds = seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._by_image: dict[int, _Lease] = {}

    def holder(self, image_id: int, client: str) -> str | None:
        """The name of another client holding ``image_id`` ("another annotator" if unnamed),
        or None when it is free or held by ``client``."""
        with self._lock:
            lease = self._live(image_id)
        if lease is None or lease.client == client:
            return None
        return lease.name or "another annotator"

    def acquire(self, image_id: int, client: str, name: str) -> str | None:
        """Lease ``image_id`` to ``client`` (dropping its other lease); returns the holder's
        name instead when another client holds it."""
        with self._lock:
            return self._acquire(image_id, client, name)

    def next_free(
        self, order: Sequence[int], client: str, name: str, wanted: Callable[[int], bool]
    ) -> int | None:
        """The first image of ``order`` that is ``wanted`` and not leased by another client,
        leased to ``client`` at once (two clients asking together get different images)."""
        with self._lock:
            for image_id in order:
                if wanted(image_id) and self._acquire(image_id, client, name) is None:
                    return image_id
        return None

    def _live(self, image_id: int) -> _Lease | None:  # under the lock
        lease = self._by_image.get(image_id)
        if lease is not None and lease.until <= self.clock():
            del self._by_image[image_id]
            return None
        return lease

    def _acquire(self, image_id: int, client: str, name: str) -> str | None:  # under the lock
        lease = self._live(image_id)
        if lease is not None and lease.client != client:
            return lease.name or "another annotator"
        for other in [k for k, v in self._by_image.items() if v.client == client]:
            del self._by_image[other]
        self._by_image[image_id] = _Lease(client, name, self.clock() + self.seconds)
        return None


def annotator(x_annotator: str | None) -> str:
    """The annotator's name of an ``X-Annotator`` header ("" when none)."""
    return (x_annotator or "").strip()[:MAX_NAME]


def _client(x_client: str | None) -> str:
    if not x_client:
        raise BadRequest("X-Client: expected a header naming this page (any random id)")
    return x_client[:MAX_NAME]


def lease_routes(app: Any, ctx: Any, entry: Callable[[int], Any]) -> None:
    """Add the lease and next-image routes; ``entry(id)`` gives an image (404 else)."""
    json_body = ctx.http.Body(None)
    # One Header() per parameter name: FastAPI keeps the header name on the object.
    client_header, name_header = ctx.http.Header(None), ctx.http.Header(None)
    leases: Leases = ctx.leases

    @app.post("/api/images/{image_id}/lease")
    def lease(
        image_id: int, x_client: Any = client_header, x_annotator: Any = name_header
    ) -> dict[str, Any]:
        e = entry(image_id)
        holder = leases.acquire(e.id, _client(x_client), annotator(x_annotator))
        if holder is not None:
            raise ctx.http.HTTPException(409, f"id: image {e.id} is being edited by {holder}")
        return {"id": e.id, "expires_in": leases.seconds}

    @app.post("/api/next")
    def next_image(
        body: Any = json_body, x_client: Any = client_header, x_annotator: Any = name_header
    ) -> dict[str, Any]:
        client, name = _client(x_client), annotator(x_annotator)
        after = body.get("after", -1) if isinstance(body, dict) else None
        if type(after) is not int:
            raise BadRequest(f"after: expected an image id (integer), got {after!r}")
        n = len(ctx.store.entries)
        order = [(after + k) % n for k in range(1, n + 1)] if n else []

        def todo(i: int) -> bool:
            e = ctx.store.entries[i]
            return ctx.reviews.record(e.rel, ctx.store.annotated(i))["status"] == "todo"

        return {"id": leases.next_free(order, client, name, todo)}
