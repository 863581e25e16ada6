"""Connecting to Ray and the knobs every cluster job shares.

Ray is an optional dependency (``pip install 'samkit[ray]'``) imported here only, when a job
runs. Without an address a local Ray instance is started for the job and shut down after it;
with one (``"auto"``, ``"127.0.0.1:6379"``, ``"ray://head:10001"``) the job joins that cluster
and leaves it running.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import socket
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from samkit.cluster.watch import HeadLost, HeadWatch, split_address
from samkit.errors import SamkitError

__all__ = [
    "ModelSpec",
    "RayOptions",
    "import_ray",
    "model_spec",
    "probe_address",
    "ray_session",
    "stage_args",
    "watched_rows",
]

logger = logging.getLogger("samkit")
T = TypeVar("T")
_watch: list[HeadWatch] = []  # the running job's watch on its cluster's head (one job at a time)


def import_ray() -> Any:
    """``ray`` with Ray Data, or a :class:`SamkitError` that says how to install it."""
    try:
        import ray
        import ray.data  # needs pandas and pyarrow (the "data" extra)
    except ImportError as exc:
        raise SamkitError(
            "engine='ray' needs Ray with Ray Data: pip install 'samkit[ray]' "
            f"(import failed: {exc})"
        ) from None
    return ray


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SamkitError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def _non_negative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise SamkitError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class RayOptions:
    """How a job is laid out on the cluster.

    address: ``None`` starts a local Ray instance for the job; else the cluster to join.
    encoder_actors: actors holding the image encoder (each reserves ``gpus_per_actor`` GPUs).
    decoder_actors: CPU actors that decode prompts, post-process and write the outputs, so the
        encoder actors (the GPUs) only encode.
    detector_actors: actors running the box source (auto-annotation).
    encode_batch: images per encoder call; decode_batch: images per decoder-actor call.
    gpus_per_actor: GPUs reserved by each encoder actor (0 on CPU-only clusters).
    cpus_per_actor: CPUs reserved by each actor (fractions allowed).
    head_timeout: seconds the cluster's head (its GCS port) may stay unreachable during a job
        before the job fails with an error naming the address (Ray alone waits a minute,
        then ends the process without a Python error).
    ship_code: with an ``address``, upload this samkit package to the cluster for the job
        (Ray's ``py_modules``), so workers run the driver's version; the nodes still need
        samkit's dependencies (torch, numpy, opencv...) installed.
    """

    address: str | None = None
    encoder_actors: int = 1
    decoder_actors: int = 1
    detector_actors: int = 1
    encode_batch: int = 1
    decode_batch: int = 1
    gpus_per_actor: float = 0.0
    cpus_per_actor: float = 1.0
    ship_code: bool = True
    head_timeout: float = 20.0
    init_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("encoder_actors", "decoder_actors", "detector_actors"):
            _positive_int(name, getattr(self, name))
        for name in ("encode_batch", "decode_batch"):
            _positive_int(name, getattr(self, name))
        _non_negative("gpus_per_actor", self.gpus_per_actor)
        if _non_negative("cpus_per_actor", self.cpus_per_actor) == 0:
            raise SamkitError(f"cpus_per_actor must be > 0, got {self.cpus_per_actor!r}")
        if _non_negative("head_timeout", self.head_timeout) == 0:
            raise SamkitError(f"head_timeout must be > 0 seconds, got {self.head_timeout!r}")
        if self.address is not None and not isinstance(self.address, str):
            raise SamkitError("address must be a string such as '127.0.0.1:6379' or 'auto'")

    @classmethod
    def from_kwargs(cls, options: dict[str, Any]) -> RayOptions:
        """Build from keyword arguments, naming any unknown one."""
        known = {f for f in cls.__dataclass_fields__ if f != "init_kwargs"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise SamkitError(
                f"unknown Ray option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**options)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "init_kwargs"}


@dataclass(frozen=True)
class ModelSpec:
    """What an actor needs to build its own engine: a checkpoint path or model name plus the
    precision settings given to :class:`~samkit.model.SAM` (plain values, so it pickles)."""

    model: str
    device: str | None = None
    dtype: str | None = None
    half: bool = False

    def build(self) -> Any:
        """The :class:`~samkit.entrance.Loaded` engine on this worker (through the one
        entrance, :func:`samkit.entrance.load`)."""
        from samkit.entrance import Precision, load

        settings = Precision(half=self.half, dtype=self.dtype)
        return load(self.model, device=self.device or "", precision=settings)


def probe_address(address: str, timeout: float = 5.0) -> None:
    """Fail fast when nothing listens at a ``host:port`` (or ``ray://host:port``) cluster
    address: Ray itself retries such an address for minutes. ``"auto"`` (and other forms Ray
    resolves itself) are left to Ray.

    Raises:
        SamkitError: naming the address, within about ``timeout`` seconds.
    """
    target = split_address(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=timeout):
            pass
    except OSError as exc:
        raise SamkitError(
            f"cannot reach the Ray cluster at address={address!r}: {exc} (is a Ray head "
            "running there? start one with 'ray start --head', or leave address unset for a "
            "local Ray)"
        ) from None


@contextlib.contextmanager
def ray_session(options: RayOptions) -> Iterator[Any]:
    """Ray, connected for the duration of a job. A local instance started here is shut down
    at the end; a cluster joined by address is left running (only this driver disconnects).

    Raises:
        SamkitError: naming the address, when the cluster's head is unreachable before the job
            or stays so for ``options.head_timeout`` seconds during it.
    """
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        _connect(ray, options)
        started = True
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # samkit's own bar counts finished images
    ctx.verbose_stats_logs = False
    target = _head(ray, options.address)
    watch = HeadWatch(*target, timeout=options.head_timeout) if target else None
    lost = ""  # the head's host:port once the watch has given up on it
    try:
        with watch or contextlib.nullcontext():
            _watch[:] = [watch] if watch else []
            yield ray
    except HeadLost as exc:
        lost = str(exc)
    finally:
        _watch.clear()
        if started and not lost:
            ray.shutdown()
    if lost:
        _forget_cluster(ray)
        where = f"address={options.address!r}" if options.address else "the local Ray instance"
        raise SamkitError(
            f"lost the Ray cluster at {where}: its head ({lost}) has not answered for "
            f"{options.head_timeout:g}s (head_timeout); the images finished so far are kept, "
            "run the command again to resume"
        ) from None


def watched_rows(iterable: Iterable[T]) -> Iterator[T]:
    """``iterable`` (``ds.iter_rows()``) inside :func:`ray_session`: the wait for each row ends
    with a :class:`SamkitError` naming the address when the cluster's head is lost."""
    if not _watch:
        yield from iterable
        return
    yield from _watch[0].rows(iterable)


def _forget_cluster(ray: Any, wait: float = 5.0) -> None:
    """After the head is lost, leave Ray without waiting on it: ``ray.shutdown`` runs in a
    daemon thread for at most ``wait`` seconds (it would wait a minute for the dead head; left
    out entirely, the interpreter crashed on exit), and Ray's exit hook and its exception hook
    (which reports the error to the head) are dropped."""
    atexit.unregister(ray.shutdown)
    closing = threading.Thread(target=ray.shutdown, name="samkit-ray-shutdown", daemon=True)
    closing.start()
    closing.join(timeout=wait)
    if getattr(sys.excepthook, "__module__", "").startswith("ray"):
        sys.excepthook = sys.__excepthook__


def _connect(ray: Any, options: RayOptions) -> None:
    """``ray.init`` for ``options``, or a :class:`SamkitError` naming an unreachable address."""
    if options.address:
        probe_address(options.address)
    # Ray's driver ends the process (no Python error) once its head has been gone this long;
    # leave the head watch time to fail the job first.
    os.environ.setdefault(
        "RAY_gcs_rpc_server_reconnect_timeout_s", str(max(60, int(options.head_timeout) + 30))
    )
    kwargs: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False}
    if options.address:
        kwargs["address"] = options.address
        if options.ship_code:
            import samkit

            kwargs["runtime_env"] = {"py_modules": [samkit]}
    kwargs.update(options.init_kwargs)
    try:
        ray.init(**kwargs)
    except ConnectionError as exc:
        raise SamkitError(f"cannot reach the Ray cluster at {options.address!r}: {exc}") from None


def _head(ray: Any, address: str | None) -> tuple[str, int] | None:
    """Where the job's cluster answers: a Ray Client server for ``ray://``, else its GCS."""
    if address and address.strip().startswith("ray://"):
        return split_address(address)
    try:
        gcs = ray.get_runtime_context().gcs_address
    except Exception:  # an unusual connection mode: no watch rather than no job
        return None
    return split_address(str(gcs)) if gcs else None


def model_spec(sam_model: Any, device: str | None, **precision: Any) -> ModelSpec:
    """A picklable recipe for the SAM model each actor builds for itself: from a checkpoint
    path or model name, or from a :class:`~samkit.SAM` front built from one (its precision
    settings carry over)."""
    checkpoint = getattr(sam_model, "checkpoint", None)
    settings = getattr(sam_model, "precision", None)
    if checkpoint is not None and settings is not None:
        kept = {"dtype": settings.dtype, "half": settings.half}
        return model_spec(checkpoint, device, **{**kept, **precision})
    if not isinstance(sam_model, (str, os.PathLike)):
        raise SamkitError(
            "sam_model must be a checkpoint path or a model name with engine='ray' (each actor "
            f"loads its own copy), got {type(sam_model).__name__}"
        )
    from samkit.backends.grabcut import is_grabcut

    if is_grabcut(sam_model):
        raise SamkitError(
            "engine='ray' needs a SAM model (e.g. mobile_sam.pt, a checkpoint or an ONNX "
            "export): its stages ship image embeddings between actors, and the grabcut engine "
            "has none (run it with engine='local')"
        )
    model = str(sam_model)
    if Path(model).exists():
        model = str(Path(model).resolve())
    return ModelSpec(model, device or None, **precision)


def stage_args(ray: Any, cls: type, size: int, batch_size: int, *, gpus: float = 0.0, cpus: float,
           **kwargs: Any) -> dict[str, Any]:  # fmt: skip
    """Keyword arguments of ``map_batches`` for one actor stage."""
    return {
        "fn": cls,
        "fn_constructor_kwargs": kwargs,
        "compute": ray.data.ActorPoolStrategy(size=size),
        "batch_size": batch_size,
        "batch_format": "numpy",
        "num_cpus": cpus,
        "num_gpus": gpus or None,
    }
