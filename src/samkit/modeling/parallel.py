"""Independent pieces of one CPU forward pass run side by side on Python threads.

For memory-bound stages made of many medium-sized operations (TinyViT's convolutional stage),
splitting the map into bands and giving each core whole bands, one intra-op thread each, beats
running every operation on all cores: a band's activations stay in that core's cache, and no
operation waits for sleeping OpenMP threads to wake. PyTorch releases the GIL inside its
kernels, and its intra-op thread count, inference mode, grad mode and autocast are per thread,
so each worker re-enters the caller's modes.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

_lock = threading.Lock()
_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, workers, executor)


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None or _pool[0] != os.getpid() or _pool[1] != workers:
            # A pool inherited through fork has no threads; one of another size is replaced.
            _pool = (os.getpid(), workers, ThreadPoolExecutor(workers, "samkit-band"))
        return _pool[2]


def workers_for(x: torch.Tensor) -> int:
    """Threads to split ``x``'s work over: the caller's intra-op threads on CPU, else 1."""
    if x.device.type != "cpu" or threading.current_thread().name.startswith("samkit-band"):
        return 1
    return max(1, torch.get_num_threads())


def run(tasks: Sequence[Callable[[], None]], workers: int) -> None:
    """Run ``tasks`` (independent, results written by the tasks themselves) on ``workers``
    threads with one intra-op thread each; with one worker, in order on the caller's thread."""
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            task()
        return
    inference = torch.is_inference_mode_enabled()
    grad = torch.is_grad_enabled()
    autocast = torch.is_autocast_enabled("cpu")
    autocast_dtype = torch.get_autocast_dtype("cpu")

    def worker(share: Sequence[Callable[[], None]]) -> None:
        torch.set_num_threads(1)
        with contextlib.ExitStack() as modes:
            modes.enter_context(torch.inference_mode(inference))
            modes.enter_context(torch.set_grad_enabled(grad))
            if autocast:
                modes.enter_context(torch.autocast("cpu", dtype=autocast_dtype))
            for task in share:
                task()

    pool = _executor(workers - 1)
    futures = [pool.submit(worker, tasks[k::workers]) for k in range(1, workers)]
    threads = torch.get_num_threads()
    try:
        worker(tasks[0::workers])  # the caller takes a share too
    finally:
        torch.set_num_threads(threads)
        for future in futures:
            future.result()
