"""The annotator's HTTP API and page (FastAPI).

Routes (coordinates in original-image pixels, masks as COCO RLE ``{"size": [h, w], "counts":
str}``):

- ``GET /`` the page; ``GET /static/...`` its script and style (shipped in the package);
- ``GET /api/config`` -> ``{"classes": [...], "model": str}``;
- ``GET /api/images`` -> ``[{"id", "name", "width", "height", "annotated", "blocked", "status",
  "review"}, ...]`` (``blocked``: why the image may not be saved, else null; ``status`` and
  ``review``: :mod:`samkit.label.review`, whose routes set them);
- ``GET /api/images/{id}/file`` -> the image (starts encoding it and the next ones);
- ``POST /api/images/{id}/predict`` -> ``{"id", "masks": [{"rle", "score"}, ...], "server_ms"}``
  (``mask_index`` picks which candidate of ``mask_input`` seeds the decoder; default the best);
- ``GET`` / ``PUT /api/images/{id}/annotations`` -> ``[{"label", "rle"}, ...]`` with an
  ``ETag``; a PUT with ``If-Match`` fails with 412 if the image was saved by someone else since;
- ``GET /api/export?format=coco|yolo|labelme`` -> instances JSON, or a zip of label files;
- ``POST /api/images/{id}/proposals`` with ``{"kind": "everything" | "detector", ...}`` ->
  ``{"proposals": [{"rle", "score", "label"}, ...]}`` to accept or reject on the page.

Bad bodies get 422 with ``{"detail": "<field>: <what was expected>"}``. With a ``token`` every
request needs ``Authorization: Bearer <token>`` (the page itself also takes ``?token=``).
Requests addressed to another host name or sent by another site's page are refused
(:mod:`samkit.label.guard`).
Endpoints are plain functions: the server runs them on a thread pool, so annotators on
different images proceed in parallel except for the model itself (one lock).
"""

from __future__ import annotations

import contextlib
import io
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np

from samkit.embeddings import EmbeddingStore
from samkit.errors import PromptError, SamkitError, SourceError
from samkit.label.checks import BadRequest, crowd_flags, parse_annotations, parse_predict
from samkit.label.guard import install_host_guard
from samkit.label.leases import Leases, annotator, lease_routes
from samkit.label.proposals import Proposer, parse_proposals
from samkit.label.review import ReviewStore, review_routes
from samkit.label.store import Blocked, Conflict

if TYPE_CHECKING:
    from fastapi import FastAPI

    from samkit.label.segmenter import Segmenter
    from samkit.label.store import AnnotationStore, ImageEntry

__all__ = ["create_app"]

logger = logging.getLogger("samkit")

_BROWSER_IMAGES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
                   ".webp": "image/webp", ".gif": "image/gif", ".bmp": "image/bmp"}  # fmt: skip


def _import_fastapi() -> Any:
    try:
        import fastapi
    except ImportError:
        raise ImportError(
            "samkit label needs FastAPI and uvicorn: pip install 'samkit[label]'"
        ) from None
    return fastapi


@dataclass
class _Context:
    """What the routes share: the store, the segmenter, the proposer and the settings."""

    store: AnnotationStore
    segmenter: Segmenter
    proposer: Proposer
    prefetch: int
    model_name: str
    http: Any  # the fastapi module
    reviews: ReviewStore
    leases: Leases
    keys: dict[int, str] = field(default_factory=dict)

    def entry(self, image_id: int) -> ImageEntry:
        """The image ``image_id``, re-read if its file was replaced (its embedding then too)."""
        entries = self.store.entries
        if not 0 <= image_id < len(entries):
            raise self.http.HTTPException(
                404, f"id: no image {image_id} (ids are 0..{len(entries) - 1})"
            )
        entry, changed = self.store.refresh(image_id)
        if changed:
            self.keys.pop(image_id, None)
        return entry

    def key(self, e: ImageEntry) -> str:
        """The embedding store's key of an image: its file's content hash (once per run)."""
        if e.id not in self.keys:
            self.keys[e.id] = EmbeddingStore.key(e.path)
        return self.keys[e.id]

    @staticmethod
    def loader(e: ImageEntry) -> Callable[[], np.ndarray]:
        from samkit.sources import read_image

        return lambda: read_image(e.path)


def create_app(
    store: AnnotationStore,
    segmenter: Segmenter,
    *,
    token: str | None = None,
    prefetch: int = 2,
    model_name: str = "",
    detector: Any = None,
    host: str = "127.0.0.1",
) -> FastAPI:
    """The annotator app over a store and a segmenter; ``prefetch`` next images are encoded in
    the background when an image is opened (0: encode on the first click only); ``detector``
    a box source (:func:`samkit.annotate.detectors.make_box_source`) for proposals; ``host``
    the address it is served on (requests for other names are refused:
    :mod:`samkit.label.guard`)."""
    fastapi = _import_fastapi()
    from fastapi.responses import JSONResponse

    app = fastapi.FastAPI(title="samkit label", docs_url=None, redoc_url=None)
    ctx = _Context(store, segmenter, Proposer(segmenter, detector), prefetch, model_name, fastapi,
                   ReviewStore(store.output_dir), Leases())  # fmt: skip
    if token is not None:
        _require_token(app, token)
    install_host_guard(app, host)  # added last: checked first

    @app.exception_handler(BadRequest)
    @app.exception_handler(PromptError)
    async def bad_request(request: Any, exc: Exception) -> Any:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(SourceError)
    async def unreadable(request: Any, exc: Exception) -> Any:  # changed on disk since start
        return JSONResponse({"detail": f"id: {exc}"}, status_code=409)

    @app.exception_handler(SamkitError)
    async def failed(request: Any, exc: Exception) -> Any:  # e.g. a broken instances.json
        return JSONResponse({"detail": str(exc)}, status_code=500)

    @app.exception_handler(Exception)
    async def crashed(request: Any, exc: Exception) -> Any:
        logger.exception("samkit label: %s %s failed", request.method, request.url.path)
        detail = f"internal error: {type(exc).__name__}: {exc}"
        return JSONResponse({"detail": detail}, status_code=500)

    _page_routes(app, ctx)
    _image_routes(app, ctx)
    _segment_routes(app, ctx)
    _label_routes(app, ctx)
    review_routes(app, ctx, ctx.entry)
    lease_routes(app, ctx, ctx.entry)
    return app


def _require_token(app: Any, token: str) -> None:
    """Every request needs ``Authorization: Bearer <token>`` (or ``?token=`` for the page)."""
    from fastapi.responses import JSONResponse

    @app.middleware("http")
    async def require_token(request: Any, call_next: Any) -> Any:
        header = request.headers.get("authorization", "")
        if header.startswith("Bearer "):
            given = header[7:]
        else:
            given = request.query_params.get("token", "")
        if not secrets.compare_digest(given.encode(), token.encode()):
            return JSONResponse(
                {
                    "detail": "authorization: send 'Authorization: Bearer <token>' (printed at start)"
                },
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await call_next(request)


def _page_routes(app: Any, ctx: _Context) -> None:
    from fastapi.responses import Response
    from fastapi.staticfiles import StaticFiles

    static = resources.files("samkit.label") / "static"

    @app.get("/", include_in_schema=False)
    def index() -> Any:
        return Response((static / "index.html").read_bytes(), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/api/config")
    def config() -> dict[str, Any]:
        has_detector = ctx.proposer.detector is not None
        return {"classes": list(ctx.store.classes), "model": ctx.model_name,
                "detector": has_detector}  # fmt: skip


def _image_routes(app: Any, ctx: _Context) -> None:
    from fastapi.responses import Response

    header = ctx.http.Header(None)

    @app.get("/api/images")
    def images(x_client: Any = header) -> list[dict[str, Any]]:
        out = []
        for e in list(ctx.store.entries):
            with contextlib.suppress(SourceError):  # deleted: requests for it say so
                e = ctx.entry(e.id)  # sizes of images replaced on disk
            annotated = ctx.store.annotated(e.id)
            rec = ctx.reviews.record(e.rel, annotated)
            out.append({"id": e.id, "name": e.rel, "width": e.width, "height": e.height,
                        "annotated": annotated, "blocked": ctx.store.blocked.get(e.id),
                        "status": rec["status"], "review": rec,
                        "leased_by": ctx.leases.holder(e.id, x_client or "")})  # fmt: skip
        return out

    @app.get("/api/images/{image_id}/file")
    def image_file(image_id: int) -> Any:
        e = ctx.entry(image_id)
        if ctx.prefetch > 0:
            ahead = ctx.store.entries[e.id : e.id + 1 + ctx.prefetch]
            ctx.segmenter.prefetch([(ctx.key(x), ctx.loader(x)) for x in ahead])
        media = _BROWSER_IMAGES.get(e.path.suffix.lower())
        if media is not None:
            try:  # no-store: a file replaced on disk must reach the page
                return Response(e.path.read_bytes(), media_type=media,
                                headers={"Cache-Control": "no-store"})  # fmt: skip
            except OSError as exc:
                raise SourceError(f"cannot read {e.rel}: {exc}") from None
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(ctx.loader(e)()).save(buf, format="PNG")
        return Response(buf.getvalue(), media_type="image/png")


def _segment_routes(app: Any, ctx: _Context) -> None:
    json_body = ctx.http.Body(None)  # any JSON: checked by samkit.label.checks

    @app.post("/api/images/{image_id}/predict")
    def predict(image_id: int, body: Any = json_body) -> dict[str, Any]:
        from samkit.masks import coco_rle

        e = ctx.entry(image_id)
        req = parse_predict(body, e.width, e.height)
        start = time.perf_counter()
        pred = ctx.segmenter.predict(
            ctx.key(e), ctx.loader(e), req.points, req.labels, req.box, req.multimask,
            req.mask_input, req.mask_index,
        )  # fmt: skip
        masks = [
            {"rle": coco_rle(m), "score": float(s)}
            for m, s in zip(pred.masks, pred.scores, strict=True)
        ]
        ms = round(1000 * (time.perf_counter() - start), 1)
        return {"id": pred.id, "masks": masks, "server_ms": ms}

    @app.post("/api/images/{image_id}/proposals")
    def proposals(image_id: int, body: Any = json_body) -> dict[str, Any]:
        e = ctx.entry(image_id)
        req = parse_proposals(body, ctx.proposer.detector is not None)
        if req["kind"] == "detector":
            found = ctx.proposer.detections(ctx.key(e), ctx.loader(e), e.rel, ctx.store.classes)
        else:
            found = ctx.proposer.everything(
                ctx.loader(e)(), req["points_per_side"], req["pred_iou_thresh"],
                req["stability_score_thresh"],
            )  # fmt: skip
        return {"proposals": found}


def _label_routes(app: Any, ctx: _Context) -> None:
    from fastapi.responses import JSONResponse, Response

    json_body = ctx.http.Body(None)

    # One Header() per parameter name: FastAPI keeps the header name on the object.
    if_match, header = ctx.http.Header(None), ctx.http.Header(None)

    @app.get("/api/images/{image_id}/annotations")
    def get_annotations(image_id: int) -> Any:
        objects, version = ctx.store.get_versioned(ctx.entry(image_id).id)
        return JSONResponse(objects, headers={"ETag": version})

    @app.put("/api/images/{image_id}/annotations")
    def put_annotations(
        image_id: int, body: Any = json_body, if_match: Any = if_match, x_annotator: Any = header
    ) -> Any:
        """``If-Match: <ETag of a GET>`` makes the write conditional (412 when someone else
        saved the image meanwhile); without it the last writer wins."""
        e = ctx.entry(image_id)
        objects = parse_annotations(body, e.width, e.height, ctx.store.classes)
        try:
            stored = ctx.store.put(e.id, objects, expected=if_match, crowd=crowd_flags(body))
        except Conflict as exc:
            raise ctx.http.HTTPException(
                412, f"If-Match: the image was saved by someone else (now {exc.args[0]})"
            ) from None
        except Blocked as exc:
            raise ctx.http.HTTPException(409, f"id: not saved: {exc.args[0]}") from None
        ctx.reviews.saved(e.rel, len(stored), annotator(x_annotator))
        return JSONResponse(stored, headers={"ETag": ctx.store.get_versioned(e.id)[1]})

    @app.get("/api/export")
    def export(format: str = "coco") -> Any:
        if format not in ("coco", "yolo", "labelme"):
            raise ctx.http.HTTPException(
                422, f"format: expected coco, yolo or labelme, got {format!r}"
            )
        data, media = ctx.store.export(format)
        headers = {}
        if media == "application/zip":
            headers["Content-Disposition"] = f'attachment; filename="{format}_labels.zip"'
        return Response(data, media_type=media, headers=headers)
