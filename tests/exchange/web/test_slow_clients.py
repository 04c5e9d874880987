"""Slow clients cannot hold the view: a request's head that does not arrive in time closes the
connection, and connections beyond ``max_connections`` are answered 503 at once (red-team F9:
3000 half-sent requests were kept open for as long as the clients liked)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.exchange.web.conftest import Scene
from tests.exchange.web.support import WebServer


@pytest.fixture
def server(scene: Scene, request: pytest.FixtureRequest) -> Iterator[WebServer]:
    web = WebServer(scene.web.settings, scene.clock, **request.param)
    web.start()
    try:
        yield web
    finally:
        web.stop()


def connect(server: WebServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=30)


def answer(conn: socket.socket) -> bytes:
    received = b""
    while chunk := conn.recv(65536):
        received += chunk
    return received


def get(server: WebServer, path: str = "/healthz") -> bytes:
    with connect(server) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return answer(conn)


@pytest.mark.parametrize("server", [{"header_timeout_s": 1.0}], indirect=True)
def test_a_request_head_that_never_ends_is_closed(server: WebServer) -> None:
    with connect(server) as conn:
        conn.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        assert answer(conn) == b""  # closed by the server, with no answer, within the timeout
    with connect(server) as idle:  # connected, sent nothing at all
        assert answer(idle) == b""
    assert get(server).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("server", [{"max_connections": 2}], indirect=True)
def test_connections_beyond_the_limit_are_answered_busy(server: WebServer) -> None:
    held = [connect(server) for _ in range(2)]
    try:
        for conn in held:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # half a head each
        assert get(server).startswith(b"HTTP/1.1 503")
    finally:
        for conn in held:
            conn.close()
