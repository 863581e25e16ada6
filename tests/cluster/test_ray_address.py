"""``engine=ray`` with an address nobody listens on fails within seconds, naming the address
(Ray itself retries such an address for minutes)."""

from __future__ import annotations

import socket
import time

import pytest


def test_ray_address_nobody_listens_on_fails_fast_naming_it() -> None:
    from samkit.cluster.runtime import RayOptions, probe_address, ray_session
    from samkit.errors import SamkitError

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    with pytest.raises(SamkitError, match=f"127.0.0.1:{port}"):
        probe_address(f"127.0.0.1:{port}", timeout=2.0)
    assert time.perf_counter() - start < 10
    pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    with (
        pytest.raises(SamkitError, match=r"address='127\.0\.0\.1:1'"),
        ray_session(RayOptions(address="127.0.0.1:1")),
    ):
        pass
