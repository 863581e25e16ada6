"""``samkit label``: a browser annotator where a click becomes a mask.

:func:`serve` starts a local web server over a folder of images: the page (plain JavaScript
shipped in ``samkit/label/static``, no CDN) sends clicks and boxes to the HTTP API in
:mod:`samkit.label.app`, the server decodes them from the image's cached embedding
(:mod:`samkit.label.segmenter`) and every committed object is written at once in COCO /
YOLO-seg / LabelMe (:mod:`samkit.label.store`). Needs ``pip install 'samkit[label]'``.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["LOCAL_HOSTS", "LabelServer", "build", "serve"]

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class LabelServer:
    """What :func:`build` made: the app with its store and segmenter, and the token (None on
    localhost)."""

    app: Any
    store: Any
    segmenter: Any
    token: str | None


def _classes(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return list(dict.fromkeys(str(c).strip() for c in items if str(c).strip()))


def build(
    images: Any,
    model: str | os.PathLike[str] = "mobile_sam.pt",
    classes: str | Sequence[str] | None = None,
    *,
    output_dir: str | os.PathLike[str] | None = None,
    host: str = "127.0.0.1",
    token: str | None = None,
    device: str | None = None,
    formats: str | Sequence[str] = "coco,yolo,labelme",
    prefetch: int = 2,
    cache_dir: str | os.PathLike[str] | None = None,
    recursive: bool = False,
    det_model: Any = None,
    import_coco: str | os.PathLike[str] | None = None,
) -> LabelServer:
    """Everything :func:`serve` runs, without starting the server (tests mount the app).

    ``images``: a folder, a glob or a list of files. ``classes``: ``"person,car"`` or a list
    (names found in existing label files are added). ``output_dir`` default
    ``<images>_labels`` next to the folder. ``token`` is required off localhost (an empty one is
    refused there); one is made when not given. Requests for other host names than ``host``
    (and this machine's names when bound to every interface) are refused. ``cache_dir``: embeddings on disk (default ``<samkit cache>/embeddings``).
    ``import_coco``: a COCO instances JSON whose objects (RLE or polygons; crowd flagged) start
    the images that have no label files yet (:mod:`samkit.label.coco_import`).
    ``det_model``: boxes for "auto-annotate this image" proposals (an Ultralytics checkpoint, a
    folder of YOLO box labels or a COCO JSON; see :func:`samkit.annotate.detectors.make_box_source`).
    """
    from samkit.annotate.images import list_images
    from samkit.annotate.writers import parse_formats
    from samkit.errors import ArgumentError
    from samkit.label.app import create_app
    from samkit.label.segmenter import Segmenter
    from samkit.label.store import AnnotationStore
    from samkit.weights import cache_dir as samkit_cache

    names = _classes(classes)
    if host not in LOCAL_HOSTS and token is not None and not token.strip():
        raise ArgumentError(
            f"token: an empty token would let anyone who reaches {host} read and rewrite the "
            "labels; give a token or leave token unset to get a random one"
        )
    if prefetch < 0:
        raise ArgumentError(f"prefetch must be >= 0 (images encoded ahead), got {prefetch}")
    fmts = parse_formats(formats)
    root, items = list_images(images, recursive)
    if output_dir is None:
        base = Path(os.fspath(images)) if isinstance(images, (str, os.PathLike)) else root
        base = base if base.is_dir() else root
        output_dir = base.absolute().parent / f"{base.absolute().name}_labels"
    if host not in LOCAL_HOSTS and token is None:
        token = secrets.token_urlsafe(18)
    store = AnnotationStore(items, output_dir, names, fmts, root=root)
    if import_coco is not None:
        imported, kept = store.import_coco(import_coco)
        store.notes.append(f"imported {import_coco}: objects for {imported} images"
                           + (f", {len(kept)} kept their own labels" if kept else ""))  # fmt: skip
    if not store.classes:
        raise ArgumentError("classes: give at least one class name, e.g. classes=person,car")
    cache = Path(cache_dir) if cache_dir is not None else samkit_cache() / "embeddings"
    segmenter = Segmenter.from_checkpoint(model, cache, device)
    detector = None
    if det_model is not None:
        from samkit.annotate.detectors import make_box_source

        detector = make_box_source(det_model, device=device or "")
    app = create_app(store, segmenter, token=token, prefetch=prefetch, model_name=str(model),
                     detector=detector, host=host)  # fmt: skip
    return LabelServer(app, store, segmenter, token)


def serve(
    images: Any,
    model: str | os.PathLike[str] = "mobile_sam.pt",
    classes: str | Sequence[str] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    echo: Callable[[str], None] = print,
    **options: Any,
) -> None:
    """Start the annotator and block until interrupted; prints the URL (with ``?token=`` when
    bound off localhost). ``port=0`` picks a free port. ``options`` go to :func:`build`."""
    try:
        import uvicorn
    except ImportError:
        raise ImportError("samkit label needs uvicorn: pip install 'samkit[label]'") from None
    server = build(images, model, classes, host=host, **options)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)  # connections made once the URL is printed wait for the server
    port = sock.getsockname()[1]
    shown = socket.gethostname() if host in ("0.0.0.0", "::") else host  # all interfaces
    shown = f"[{shown}]" if ":" in shown else shown
    url = f"http://{shown}:{port}/"
    if server.token is not None:
        url += f"?token={server.token}"
        echo(f"samkit label: token {server.token} (send 'Authorization: Bearer <token>')")
    store = server.store
    done = sum(store.annotated(e.id) for e in store.entries)
    echo(
        f"samkit label: {len(store.entries)} images ({done} annotated), labels in {store.output_dir}"
    )
    for note in store.notes:
        echo(f"samkit label: {note}")
    for problem in store.problems:
        echo(f"samkit label: cannot read {problem}")
    for image_id, why in store.blocked.items():
        echo(f"samkit label: {store.entries[image_id].rel} will not be saved: {why}")
    echo(f"samkit label: open {url}  (Ctrl+C to stop)")
    config = uvicorn.Config(server.app, log_level="warning", timeout_graceful_shutdown=2)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        server.segmenter.close()
        sock.close()
