"""Which requests the annotator answers: only those addressed to it and sent by its own page.

A web page on another site can reach a server on ``127.0.0.1`` through DNS rebinding (its own
name made to resolve to the loopback address) or by sending requests across origins. Both carry
a name other than the annotator's own: in ``Host`` (rebinding) or in ``Origin`` (cross-site).
So a request is refused when

- its ``Host`` is a name the annotator does not serve under (an IP address literal is fine:
  rebinding always comes with the attacker's domain name), or
- it has an ``Origin`` header (browsers add it to cross-site requests and to every non-GET
  fetch) that is not the origin the request was sent to.

Off localhost the token (see :func:`samkit.label.build`) is required on top of this.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

__all__ = ["allowed_names", "host_of", "install_host_guard", "refusal"]

WILDCARDS = ("0.0.0.0", "::", "")


def allowed_names(host: str) -> set[str]:
    """Host names (lower case) a request may use for a server bound to ``host``: ``localhost``,
    the bound name itself and, when bound to every interface, this machine's names."""
    names = {"localhost", host.lower().strip("[]")}
    if host in WILDCARDS or not _is_loopback(host):
        for name in (socket.gethostname(), socket.getfqdn()):
            names.add(name.lower())
            names.add(name.lower().split(".")[0])
    names.discard("")
    return names


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_of(netloc: str) -> str:
    """The host name of ``name:port`` / ``[v6]:port`` (lower case, brackets removed)."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[1:].split("]", 1)[0]
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def refusal(headers: Any, names: Iterable[str], served: str) -> tuple[int, str] | None:
    """``(status, detail)`` when a request with these headers must be refused, else None."""
    netloc = headers.get("host", "")
    name = host_of(netloc)
    if not (_is_ip(name) or name in names):
        return 400, (
            f"host: requests for {netloc!r} are refused: this annotator serves {served} "
            "(open the address it printed at start)"
        )
    origin = headers.get("origin")
    if origin is not None:
        parts = urlsplit(origin)
        if origin == "null" or parts.netloc.lower() != netloc.strip().lower():
            return 403, (
                f"origin: requests sent by pages of {origin!r} are refused "
                "(only the annotator's own page may call its API)"
            )
    return None


def install_host_guard(app: Any, host: str) -> None:
    """Refuse (400 / 403 with a ``detail``) requests that :func:`refusal` rejects."""
    from fastapi.responses import JSONResponse

    names = allowed_names(host)
    served = host if host not in WILDCARDS else f"{socket.gethostname()} (all interfaces)"

    @app.middleware("http")
    async def check_host(request: Any, call_next: Any) -> Any:
        refused = refusal(request.headers, names, served)
        if refused is not None:
            return JSONResponse({"detail": refused[1]}, status_code=refused[0])
        return await call_next(request)
