"""Binding a listen address, or a ``ListenError`` that names it and says why.

gRPC's ``add_*_port`` answers a port in use with a bare ``RuntimeError`` ("Failed to bind"), and
uvicorn and Prometheus' HTTP server with an ``OSError`` or an exit of their own. An operator must
read which address and why: ``cannot listen on 127.0.0.1:7701: address already in use``. So each
server's address is tried first with a plain socket (``check_bindable``, the errno's words), and
a server's own failure to bind is turned into the same error (``refused``). The socket is closed
at once: the server binds the address itself a moment later (a race lost to another process is
still caught by the server's own failure).
"""

from __future__ import annotations

import errno
import socket

from exchange.errors import ListenError

__all__ = ["check_bindable", "refused"]

_WORDS = {
    errno.EADDRINUSE: "address already in use",
    errno.EADDRNOTAVAIL: "address not available on this machine",
    errno.EACCES: "permission denied (a port below 1024 needs privileges)",
}


def _split(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ListenError(f"cannot listen on {listen}: not host:port")
    return host.strip("[]"), int(port)


def refused(listen: str, error: BaseException | None = None) -> ListenError:
    """The error for an address a server could not bind (``error``: the cause, if known)."""
    if isinstance(error, OSError) and error.errno is not None:
        why = _WORDS.get(error.errno) or (error.strerror or str(error)).lower()
    else:
        why = "the address cannot be bound"
    return ListenError(f"cannot listen on {listen}: {why}")


def check_bindable(listen: str) -> None:
    """Raise ``ListenError`` unless a TCP server could bind ``listen`` (``host:port``) now."""
    host, port = _split(listen)
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as error:
        raise ListenError(f"cannot listen on {listen}: {error.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # As the servers do: an address left in TIME_WAIT by a stopped node is free to bind.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise refused(listen, error) from None
