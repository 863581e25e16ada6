"""Per-image status and review of the annotator, kept beside the label files.

``<output_dir>/status.json`` maps each image's path (``rel``) to ``{"status", "comment",
"review", "objects", "edited_by", "status_by"}`` and is rewritten atomically on every change
(names come from the page's ``X-Annotator`` header). Statuses: ``todo``,
``in_progress``, ``done``, ``skipped``, ``no_objects``, ``needs_fix``. An image without a stored
status is ``in_progress`` once it has been saved, ``todo`` before. A review verdict is
``accept`` or ``reject`` with a comment, for the whole image or for one object (by its index in
the image's object list); rejecting either sets ``needs_fix``, accepting the image sets
``done``.

Routes (added by :func:`review_routes`): ``PUT /api/images/{id}/status`` with ``{"status",
"comment"}``; ``POST /api/images/{id}/review`` with ``{"verdict", "comment", "object"}``; both
answer the image's record; ``GET /api/progress`` -> ``{"total", "counts": {status: n}}``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from samkit.io_utils import atomic_write_text
from samkit.label.checks import BadRequest
from samkit.label.leases import annotator

__all__ = ["STATUSES", "STATUS_FILE", "ReviewStore", "review_routes"]

logger = logging.getLogger("samkit")

STATUS_FILE = "status.json"
STATUSES = ("todo", "in_progress", "done", "skipped", "no_objects", "needs_fix")
VERDICTS = ("accept", "reject")
MAX_COMMENT = 2000


class ReviewStore:
    """Statuses and reviews of the images under ``output_dir``, by image path ``rel``."""

    def __init__(self, output_dir: Path) -> None:
        self.path = Path(output_dir) / STATUS_FILE
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                if not isinstance(data, dict):
                    raise ValueError("expected an object of image paths")
                self._records = {str(k): dict(v) for k, v in data.items() if isinstance(v, dict)}
            except (OSError, ValueError) as exc:  # kept aside, not overwritten
                stamp = time.strftime("%Y%m%d-%H%M%S")
                backup = self.path.with_name(f"{self.path.name}.unreadable-{stamp}")
                self.path.replace(backup)
                logger.warning("cannot read %s (%s): moved to %s", self.path, exc, backup)

    def record(self, rel: str, annotated: bool) -> dict[str, Any]:
        """The record of an image with its effective ``status``."""
        with self._lock:
            rec = dict(self._records.get(rel, {}))
        if rec.get("status") not in STATUSES:  # none, or a hand-edited file's unknown one
            rec.pop("status", None)
        rec.setdefault("status", "in_progress" if annotated else "todo")
        rec.setdefault("comment", "")
        rec.setdefault("review", None)
        rec.setdefault("objects", {})
        return rec

    def set_status(
        self, rel: str, status: str, comment: str | None, annotated: bool, by: str = ""
    ) -> dict:
        """Store ``status`` (one of :data:`STATUSES`) and, when given, the image's comment."""
        with self._lock:
            rec = self._records.setdefault(rel, {})
            rec["status"] = status
            if by:
                rec["status_by"] = by
            if comment is not None:
                rec["comment"] = comment
            self._save()
        return self.record(rel, annotated)

    def review(
        self, rel: str, verdict: str, comment: str, obj: int | None, annotated: bool, by: str = ""
    ) -> dict:
        """Store a reviewer's verdict on the image (``obj`` None) or on object ``obj``."""
        with self._lock:
            rec = self._records.setdefault(rel, {})
            entry = {"verdict": verdict, "comment": comment} | ({"by": by} if by else {})
            if obj is None:
                rec["review"] = entry
                rec["status"] = "done" if verdict == "accept" else "needs_fix"
            else:
                rec.setdefault("objects", {})[str(obj)] = entry
                if verdict == "reject":
                    rec["status"] = "needs_fix"
            self._save()
        return self.record(rel, annotated)

    def saved(self, rel: str, count: int, by: str = "") -> None:
        """An image was saved with ``count`` objects by ``by``: ``no_objects`` / ``skipped`` no
        longer hold once it has objects; verdicts on objects past the count are dropped."""
        with self._lock:
            rec = self._records.get(rel)
            if rec is None and not by:
                return
            rec = self._records.setdefault(rel, {})
            changed = bool(by) and rec.get("edited_by") != by
            if by:
                rec["edited_by"] = by
            if count and rec.get("status") in ("no_objects", "skipped", "todo"):
                rec.pop("status")
                changed = True
            stale = [k for k in rec.get("objects", {}) if int(k) >= count]
            for k in stale:
                rec["objects"].pop(k)
                changed = True
            if changed:
                self._save()

    def counts(self, items: list[tuple[str, bool]]) -> dict[str, int]:
        """How many of ``(rel, annotated)`` images have each status."""
        out = dict.fromkeys(STATUSES, 0)
        for rel, annotated in items:
            out[self.record(rel, annotated)["status"]] += 1
        return out

    def _save(self) -> None:  # under the lock
        atomic_write_text(self.path, json.dumps(self._records, indent=1, sort_keys=True) + "\n")


def _comment(body: dict[str, Any]) -> str | None:
    value = body.get("comment")
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_COMMENT:
        raise BadRequest(f"comment: expected a string of at most {MAX_COMMENT} characters")
    return value


def _keys(body: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest(f"body: expected a JSON object with {', '.join(allowed)}")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown field (expected {', '.join(allowed)})")
    return body


def review_routes(app: Any, ctx: Any, entry: Callable[[int], Any]) -> None:
    """Add the status, review and progress routes; ``entry(id)`` gives an image (404 else)."""
    json_body = ctx.http.Body(None)
    header = ctx.http.Header(None)
    reviews: ReviewStore = ctx.reviews

    @app.put("/api/images/{image_id}/status")
    def put_status(image_id: int, body: Any = json_body, x_annotator: Any = header) -> dict:
        e = entry(image_id)
        body = _keys(body, ("status", "comment"))
        status = body.get("status")
        if status not in STATUSES:
            raise BadRequest(f"status: expected one of {', '.join(STATUSES)}, got {status!r}")
        annotated = ctx.store.annotated(e.id)
        return reviews.set_status(e.rel, status, _comment(body), annotated, annotator(x_annotator))

    @app.post("/api/images/{image_id}/review")
    def post_review(image_id: int, body: Any = json_body, x_annotator: Any = header) -> dict:
        e = entry(image_id)
        body = _keys(body, ("verdict", "comment", "object"))
        verdict = body.get("verdict")
        if verdict not in VERDICTS:
            raise BadRequest(f"verdict: expected accept or reject, got {verdict!r}")
        obj = body.get("object")
        count = len(ctx.store.get(e.id))
        if obj is not None and (type(obj) is not int or not 0 <= obj < count):
            raise BadRequest(
                f"object: expected an object index 0..{count - 1} or null, got {obj!r}"
            )
        comment = _comment(body) or ""
        annotated, by = ctx.store.annotated(e.id), annotator(x_annotator)
        return reviews.review(e.rel, verdict, comment, obj, annotated, by)

    @app.get("/api/progress")
    def progress() -> dict[str, Any]:
        items = [(e.rel, ctx.store.annotated(e.id)) for e in list(ctx.store.entries)]
        return {"total": len(items), "counts": reviews.counts(items)}
