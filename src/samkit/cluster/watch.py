"""A watch on the Ray cluster's head while a job runs.

When the head dies, Ray's driver retries its GCS connection for a minute, logging a line per
pending task every few seconds, then ends the whole process from C++ with no Python error. The
watch probes the head's GCS port from a thread; once it has been unreachable for ``timeout``
seconds, the driver's wait for the next result (:meth:`HeadWatch.rows`) raises
:class:`HeadLost`; :func:`~samkit.cluster.runtime.ray_session` turns that into a
:class:`~samkit.errors.SamkitError` naming the address. (A signal to the main thread is no
way out: a driver connected to a cluster exits on it without running Python's handlers.)
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["HeadLost", "HeadWatch", "split_address"]


class HeadLost(Exception):
    """The cluster's head stayed unreachable for the watch's timeout."""


def split_address(address: str) -> tuple[str, int] | None:
    """``host:port`` (or ``ray://host:port``, ``[::1]:port``) -> (host, port); None for forms
    Ray resolves itself (``"auto"``)."""
    text = address.strip().removeprefix("ray://")
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not host:
        return None
    return host.strip("[]"), int(port_text)


class HeadWatch:
    """Probe ``host:port`` every ``interval`` seconds; after ``timeout`` seconds without an
    answer, set :attr:`lost`; :meth:`rows` then raises :class:`HeadLost`.

    Use as a context manager around the part of the job that waits on the cluster.
    """

    def __init__(self, host: str, port: int, timeout: float, interval: float = 1.0) -> None:
        self.host, self.port = host, port
        self.timeout, self.interval = timeout, interval
        self.lost = False
        self._stop = threading.Event()
        self._lock = threading.Lock()  # no interrupt once the watch has ended
        self._thread = threading.Thread(target=self._run, name="samkit-head-watch", daemon=True)

    def _reachable(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=self.interval * 2):
                return True
        except OSError:
            return False

    def _run(self) -> None:
        last_seen = time.monotonic()
        while not self._stop.wait(self.interval):
            if self._reachable():
                last_seen = time.monotonic()
            elif time.monotonic() - last_seen >= self.timeout:
                with self._lock:
                    if not self._stop.is_set():
                        self.lost = True
                return

    def __enter__(self) -> HeadWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._stop.set()

    def rows(self, iterable: Iterable[T], poll: float = 0.5) -> Iterator[T]:
        """The items of ``iterable`` (a Ray Data iterator), drawn in a daemon thread so that
        waiting for the next one ends when the head is lost (the thread is left behind, blocked
        in Ray).

        Raises:
            HeadLost: once :attr:`lost` is set.
        """
        box: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
        thread = threading.Thread(target=_drain, args=(iterable, box), daemon=True)
        thread.start()
        while True:
            try:
                kind, value = box.get(timeout=poll)
            except queue.Empty:
                if self.lost:
                    raise HeadLost(f"{self.host}:{self.port}") from None
                continue
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value


def _drain(iterable: Iterable[Any], box: queue.Queue[tuple[str, Any]]) -> None:
    try:
        for item in iterable:
            box.put(("item", item))
    except BaseException as exc:  # handed to the consumer, raised there
        box.put(("error", exc))
    else:
        box.put(("end", None))
