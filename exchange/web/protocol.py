"""uvicorn's h11 protocol with a deadline for a request's head (slowloris).

uvicorn times out idle keep-alive connections but waits forever for a request line and headers
that arrive a byte at a time, so a few thousand such connections hold the view. Here a
connection that has not finished sending a request's head within ``header_timeout_s`` of
connecting (or of the first byte of its next request) is closed. The bodies the view accepts
are small forms, bounded by ``limit_concurrency`` and the form size limits. Still: front the
view with a reverse proxy that has its own header and body timeouts (docs/web.md).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = 10.0


class HeadDeadlineProtocol(H11Protocol):
    """``H11Protocol`` closing a connection whose request head is late."""

    header_timeout_s: ClassVar[float] = HEADER_TIMEOUT_S
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:  # reading a request's head
            self._arm()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.header_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def protocol_class(header_timeout_s: float) -> type[asyncio.Protocol]:
    """``HeadDeadlineProtocol`` with this deadline (uvicorn takes a class, not an instance)."""
    return type(
        "HeadDeadlineProtocol", (HeadDeadlineProtocol,), {"header_timeout_s": header_timeout_s}
    )
