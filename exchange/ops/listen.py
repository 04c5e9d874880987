"""Binding a listen address, or a ``ListenError`` that names it and says why.

gRPC's ``add_*_port`` answers a port in use with a bare ``RuntimeError`` ("Failed to bind"), and
uvicorn and Prometheus' HTTP server with an ``OSError`` or an exit of their own. An operator must
read which address and why: ``cannot listen on 127.0.0.1:7701: address already in use``. So each
server's address is tried first with a plain socket (``check_bindable``, the errno's words) at
every address its host resolves to, as the server binds them all, and a server's own failure
to bind is turned into the same error (``refused``). An empty host and an IPv6 address without
brackets are refused as written, before anything is resolved. The socket is closed
at once: the server binds the address itself a moment later (a race lost to another process is
still caught by the server's own failure).
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from typing import Any, TypeAlias

from exchange.errors import ListenError

__all__ = ["check_bindable", "refused"]

# ``socket.getaddrinfo``'s shape: tests give the answers a name would have (one or more).
Resolve: TypeAlias = Callable[..., list[tuple[Any, ...]]]

_WORDS = {
    errno.EADDRINUSE: "address already in use",
    errno.EADDRNOTAVAIL: "address not available on this machine",
    errno.EACCES: "permission denied (a port below 1024 needs privileges)",
}


def _split(listen: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port); anything else a ``ListenError``."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ListenError(f"cannot listen on {listen}: not host:port")
    if host.startswith("[") or host.endswith("]"):
        if not (host.startswith("[") and host.endswith("]") and ":" in host[1:-1]):
            raise ListenError(f"cannot listen on {listen}: brackets hold an IPv6 address only")
        host = host[1:-1]
    elif ":" in host:
        raise ListenError(
            f"cannot listen on {listen}: an IPv6 address is written in brackets, [{host}]:{port}"
        )
    if not host:
        raise ListenError(
            f"cannot listen on {listen}: no host (0.0.0.0:{port} or [::]:{port} for every "
            f"address, 127.0.0.1:{port} for this machine only)"
        )
    return host, int(port)


def refused(listen: str, error: BaseException | None = None) -> ListenError:
    """The error for an address a server could not bind (``error``: the cause, if known)."""
    if isinstance(error, OSError) and error.errno is not None:
        why = _WORDS.get(error.errno) or (error.strerror or str(error)).lower()
    else:
        why = "the address cannot be bound"
    return ListenError(f"cannot listen on {listen}: {why}")


def check_bindable(listen: str, *, resolve: Resolve = socket.getaddrinfo) -> None:
    """Raise ``ListenError`` unless a TCP server could bind ``listen`` (``host:port``) now:
    every address the host resolves to (gRPC binds them all, as ``localhost``'s ::1 and
    127.0.0.1)."""
    host, port = _split(listen)
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ListenError(f"cannot listen on {listen}: {error.strerror}") from None
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            # As the servers do: an address left in TIME_WAIT by a stopped node is free to bind.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as error:
                raise refused(listen, error) from None
