"""A job whose Ray cluster dies under it fails within ``head_timeout`` with an error naming the
address (Ray alone retries for a minute, then ends the process with no Python error)."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from samkit.cluster.watch import HeadLost, HeadWatch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_watch_passes_rows_while_the_head_answers_and_stops_when_it_does_not() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with HeadWatch("127.0.0.1", port, timeout=1.0, interval=0.1) as watch:
            assert list(watch.rows(iter(range(5)))) == [0, 1, 2, 3, 4]
            assert not watch.lost

    def blocked() -> object:  # a Ray iterator waiting forever on a dead cluster
        threading.Event().wait()
        yield 0

    port = _free_port()  # nothing listens there any more
    start = time.monotonic()
    with (
        HeadWatch("127.0.0.1", port, timeout=1.0, interval=0.1) as watch,
        pytest.raises(HeadLost, match=f"127.0.0.1:{port}"),
    ):
        next(iter(watch.rows(blocked())))
    assert watch.lost and time.monotonic() - start < 10


def test_watch_hands_on_the_iterators_error() -> None:
    def broken() -> object:
        yield 1
        raise ValueError("bad block")

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with HeadWatch("127.0.0.1", server.getsockname()[1], timeout=5.0) as watch:
            got = []
            with pytest.raises(ValueError, match="bad block"):
                for item in watch.rows(broken()):
                    got.append(item)
            assert got == [1]


_DRIVER = """
import sys
from samkit.embed import embed
from samkit.errors import SamkitError
try:
    embed(sys.argv[1], sys.argv[2], sys.argv[3], engine="ray", progress=False,
          ray={"address": sys.argv[4], "cpus_per_actor": 0.5, "head_timeout": 3})
except SamkitError as exc:
    print("SAMKIT ERROR:", exc, flush=True)
"""


@pytest.mark.slow
def test_driver_whose_cluster_dies_fails_naming_the_address(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    import cv2

    from front_helpers import TINY_CONFIG, save_random_checkpoint

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(200):  # far more than are stored before the cluster is killed
        cv2.imwrite(str(images / f"im{i}.png"), rng.integers(0, 255, (96, 128, 3), np.uint8))
    ckpt = save_random_checkpoint(tmp_path / "sam.pth", TINY_CONFIG, seed=1)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
    env.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))
    port = _free_port()
    temp_dir = f"/tmp/rk{secrets.token_hex(4)}"  # names this cluster's processes only
    ray_bin = str(Path(sys.executable).with_name("ray"))
    subprocess.run([ray_bin, "start", "--head", f"--port={port}", "--num-cpus=2",
                    "--include-dashboard=false", "--node-ip-address=127.0.0.1",
                    "--disable-usage-stats", f"--temp-dir={temp_dir}"],
                   env=env, check=True, capture_output=True, timeout=300)  # fmt: skip
    address = f"127.0.0.1:{port}"
    store = tmp_path / "store"
    args = [str(images), str(ckpt), str(store), address]
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER, *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.time() + 240
        while time.time() < deadline and sum(1 for _ in store.rglob("*.npz")) < 2:
            assert proc.poll() is None, "the driver ended before the cluster was killed"
            time.sleep(0.1)
        killed_at = _kill_cluster(temp_dir, keep=proc.pid)
        message = ""
        assert proc.stdout is not None
        for line in proc.stdout:  # until the driver prints its error or ends
            if line.startswith("SAMKIT ERROR:"):
                message = line
                break
        seconds = time.monotonic() - killed_at
    finally:
        proc.kill()
        proc.wait(timeout=60)
        _kill_cluster(temp_dir, keep=proc.pid)
    print(f"samkit's error {seconds:.1f}s after the cluster was killed: {message}")
    assert f"address='{address}'" in message and "head_timeout" in message, message
    assert seconds < 30, f"the error came {seconds:.0f}s after the cluster died"


def _kill_cluster(temp_dir: str, keep: int) -> float:
    """SIGKILL every process of the cluster started with ``temp_dir`` (GCS, raylet, workers);
    returns the monotonic time of the kill."""
    out = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        pid = int(line.split()[0]) if line.split()[0].isdigit() else 0
        if temp_dir in line and pid not in (0, keep, os.getpid()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return time.monotonic()


def test_head_timeout_is_checked_and_reaches_the_options() -> None:
    from samkit.cluster import RayOptions, ray_options_from_args
    from samkit.errors import SamkitError

    for bad in (0, -1.0, float("nan"), "20"):
        with pytest.raises(SamkitError, match="head_timeout"):
            RayOptions(head_timeout=bad)
    assert ray_options_from_args({"head_timeout": 7.5}).head_timeout == 7.5
