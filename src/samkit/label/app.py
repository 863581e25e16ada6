"""The annotator's HTTP API and page (FastAPI).

Routes (coordinates in original-image pixels, masks as COCO RLE ``{"size": [h, w], "counts":
str}``):

- ``GET /`` the page; ``GET /static/...`` its script and style (shipped in the package);
- ``GET /api/config`` -> ``{"classes": [...], "model": str}``;
- ``GET /api/images`` -> ``[{"id", "name", "width", "height", "annotated"}, ...]``;
- ``GET /api/images/{id}/file`` -> the image (starts encoding it and the next ones);
- ``POST /api/images/{id}/predict`` -> ``{"id", "masks": [{"rle", "score"}, ...]}``;
- ``GET`` / ``PUT /api/images/{id}/annotations`` -> ``[{"label", "rle"}, ...]``;
- ``GET /api/export?format=coco|yolo|labelme`` -> instances JSON, or a zip of label files.

Bad bodies get 422 with ``{"detail": "<field>: <what was expected>"}``. With a ``token`` every
request needs ``Authorization: Bearer <token>`` (the page itself also takes ``?token=``).
Endpoints are plain functions: the server runs them on a thread pool, so annotators on
different images proceed in parallel except for the model itself (one lock).
"""

from __future__ import annotations

import io
import secrets
import time
from importlib import resources
from typing import TYPE_CHECKING, Any

from samkit.embeddings import EmbeddingStore
from samkit.errors import PromptError
from samkit.label.checks import BadRequest, parse_annotations, parse_predict

if TYPE_CHECKING:
    from fastapi import FastAPI

    from samkit.label.segmenter import Segmenter
    from samkit.label.store import AnnotationStore, ImageEntry

__all__ = ["create_app"]

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


def create_app(
    store: AnnotationStore,
    segmenter: Segmenter,
    *,
    token: str | None = None,
    prefetch: int = 2,
    model_name: str = "",
) -> FastAPI:
    """The annotator app over a store and a segmenter; ``prefetch`` next images are encoded in
    the background when an image is opened (0: encode on the first click only)."""
    fastapi = _import_fastapi()
    from fastapi.responses import JSONResponse, Response
    from fastapi.staticfiles import StaticFiles

    app = fastapi.FastAPI(title="samkit label", docs_url=None, redoc_url=None)
    json_body = fastapi.Body(None)  # any JSON: checked by samkit.label.checks
    static = resources.files("samkit.label") / "static"

    @app.middleware("http")
    async def require_token(request: Any, call_next: Any) -> Any:
        if token is not None:
            header = request.headers.get("authorization", "")
            given = (
                header[7:]
                if header.startswith("Bearer ")
                else request.query_params.get("token", "")
            )
            if not secrets.compare_digest(given.encode(), token.encode()):
                return JSONResponse(
                    {
                        "detail": "authorization: send 'Authorization: Bearer <token>' (printed at start)"
                    },
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await call_next(request)

    @app.exception_handler(BadRequest)
    @app.exception_handler(PromptError)
    async def bad_request(request: Any, exc: Exception) -> Any:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    def entry(image_id: int) -> ImageEntry:
        if not 0 <= image_id < len(store.entries):
            raise fastapi.HTTPException(
                404, f"id: no image {image_id} (ids are 0..{len(store.entries) - 1})"
            )
        return store.entries[image_id]

    keys: dict[int, str] = {}

    def key(e: ImageEntry) -> str:
        """The embedding store's key of an image: its file's content hash (once per run)."""
        if e.id not in keys:
            keys[e.id] = EmbeddingStore.key(e.path)
        return keys[e.id]

    def loader(e: ImageEntry) -> Any:
        from samkit.sources import read_image

        return lambda: read_image(e.path)

    @app.get("/", include_in_schema=False)
    def index() -> Any:
        return Response((static / "index.html").read_bytes(), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/api/config")
    def config() -> dict[str, Any]:
        return {"classes": list(store.classes), "model": model_name}

    @app.get("/api/images")
    def images() -> list[dict[str, Any]]:
        return [
            {
                "id": e.id,
                "name": e.rel,
                "width": e.width,
                "height": e.height,
                "annotated": store.annotated(e.id),
            }
            for e in store.entries
        ]

    @app.get("/api/images/{image_id}/file")
    def image_file(image_id: int) -> Any:
        e = entry(image_id)
        if prefetch > 0:
            ahead = store.entries[e.id : e.id + 1 + prefetch]
            segmenter.prefetch([(key(x), loader(x)) for x in ahead])
        media = _BROWSER_IMAGES.get(e.path.suffix.lower())
        if media is not None:
            return Response(e.path.read_bytes(), media_type=media)
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(loader(e)()).save(buf, format="PNG")
        return Response(buf.getvalue(), media_type="image/png")

    @app.post("/api/images/{image_id}/predict")
    def predict(image_id: int, body: Any = json_body) -> dict[str, Any]:
        from samkit.masks import coco_rle

        e = entry(image_id)
        req = parse_predict(body, e.width, e.height)
        start = time.perf_counter()
        pred = segmenter.predict(
            key(e), loader(e), req.points, req.labels, req.box, req.multimask,
            req.mask_input, req.mask_index,
        )  # fmt: skip
        masks = [
            {"rle": coco_rle(m), "score": float(s)}
            for m, s in zip(pred.masks, pred.scores, strict=True)
        ]
        ms = round(1000 * (time.perf_counter() - start), 1)
        return {"id": pred.id, "masks": masks, "server_ms": ms}

    @app.get("/api/images/{image_id}/annotations")
    def get_annotations(image_id: int) -> list[dict[str, Any]]:
        return store.get(entry(image_id).id)

    @app.put("/api/images/{image_id}/annotations")
    def put_annotations(image_id: int, body: Any = json_body) -> list[dict[str, Any]]:
        e = entry(image_id)
        objects = parse_annotations(body, e.width, e.height, store.classes)
        return store.put(e.id, objects)

    @app.get("/api/export")
    def export(format: str = "coco") -> Any:
        if format not in ("coco", "yolo", "labelme"):
            raise fastapi.HTTPException(
                422, f"format: expected coco, yolo or labelme, got {format!r}"
            )
        data, media = store.export(format)
        headers = {}
        if media == "application/zip":
            headers["Content-Disposition"] = f'attachment; filename="{format}_labels.zip"'
        return Response(data, media_type=media, headers=headers)

    return app
