"""A real HTTP(S) server on loopback whose paths behave as hosted content does.

The takedown tests (and the integration tests of the whole takedown flow) need a host whose
content can be present, removed, forbidden, redirected, slow, endless or HEAD-hostile, and
that can change between two checks. ``WebServer`` is a ``ThreadingHTTPServer`` on 127.0.0.1:
``set(path, behaviour)`` decides what a path answers (optionally only for one ``Host``), and
it records what it was asked (method, Host, path, headers, SNI) and how many requests per host
it served at once. Nothing is faked: the prober speaks real HTTP over real sockets.

``LoopbackRoute`` is the prober's network edge in tests: every (public, traced) address goes to
this server, and every address asked is recorded, so a test can show that a special-purpose
address was never even routed.

Unknown paths answer 404. Use the ``web_server`` fixture (registered in ``tests/conftest.py``).
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

ENDLESS_CAP_S = 20.0  # an endless body stops by itself after this long, read or not
GATE_CAP_S = 20.0  # a gated answer goes out after this long even if the gate never opens
_CHUNK = b"\0" * 65536


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What one path answers. Build with the helpers below rather than by hand."""

    status: int = 200
    location: str | None = None
    head_status: int | None = None  # HEAD answers this instead (405/501: HEAD not allowed)
    delay_s: float = 0.0  # sleep before answering
    gate: threading.Event | None = None  # wait for this before answering (capped)
    endless: bool = False  # GET streams a body until the client goes away


def present(status: int = 200) -> Behaviour:
    return Behaviour(status)


def removed(status: int = 404) -> Behaviour:
    return Behaviour(status)


def forbidden(status: int = 403) -> Behaviour:
    return Behaviour(status)


def redirect(location: str, status: int = 302) -> Behaviour:
    return Behaviour(status, location=location)


def slow(seconds: float, status: int = 200) -> Behaviour:
    return Behaviour(status, delay_s=seconds)


def gated(gate: threading.Event, status: int = 200) -> Behaviour:
    return Behaviour(status, gate=gate)


def endless(*, head_status: int | None = 405) -> Behaviour:
    """A never-ending body on GET; by default HEAD is not allowed, so a prober must GET."""
    return Behaviour(200, head_status=head_status, endless=True)


def head_not_allowed(status: int = 200, head_status: int = 405) -> Behaviour:
    return Behaviour(status, head_status=head_status)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    host: str
    path: str
    headers: dict[str, str]


@dataclass(slots=True)
class _Stream:
    """How an endless body ended: 'client-closed', 'timeout' or 'cap'; bytes handed to TCP."""

    sent: int = 0
    ended: str = ""


@dataclass(slots=True)
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    paths: dict[tuple[str | None, str], Behaviour] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=dict)
    max_in_flight: dict[str, int] = field(default_factory=dict)
    total_in_flight: int = 0
    max_total_in_flight: int = 0
    streams: list[_Stream] = field(default_factory=list)
    stream_ended: threading.Condition = field(default_factory=threading.Condition)
    sni: list[str | None] = field(default_factory=list)


class WebServer:
    """A threading HTTP server on 127.0.0.1 (HTTPS with ``tls=(cert_pem_path, key_pem_path)``)."""

    def __init__(self, tls: tuple[str, str] | None = None) -> None:
        self._state = _State()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self._state))
        self._server.daemon_threads = True
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            context.sni_callback = self._record_sni
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="web-server", daemon=True
        )
        self._thread.start()

    def set(self, path: str, behaviour: Behaviour, *, host: str | None = None) -> None:
        """What ``path`` answers from now on (for requests with ``Host: host`` only, if given)."""
        with self._state.lock:
            self._state.paths[(host.lower() if host else None, path)] = behaviour

    @property
    def requests(self) -> list[Request]:
        with self._state.lock:
            return list(self._state.requests)

    def max_in_flight(self, host: str | None = None) -> int:
        """Most requests served at once (for one ``Host`` header value, or in all)."""
        with self._state.lock:
            if host is None:
                return self._state.max_total_in_flight
            return self._state.max_in_flight.get(host, 0)

    def wait_in_flight(self, count: int, host: str | None = None, timeout: float = 10) -> bool:
        """Wait until ``count`` requests (for ``host``, or in all) are being served at once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._state.lock:
                now = (
                    self._state.total_in_flight
                    if host is None
                    else self._state.in_flight.get(host, 0)
                )
            if now >= count:
                return True
            time.sleep(0.01)
        return False

    @property
    def sni(self) -> list[str | None]:
        with self._state.lock:
            return list(self._state.sni)

    def wait_streams_ended(self, count: int, timeout: float = ENDLESS_CAP_S + 5) -> list[_Stream]:
        """The first ``count`` endless bodies, once each has ended (how, and bytes sent)."""
        with self._state.stream_ended:
            self._state.stream_ended.wait_for(
                lambda: sum(1 for s in self._state.streams if s.ended) >= count, timeout
            )
            return list(self._state.streams)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _record_sni(self, _sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        with self._state.lock:
            self._state.sni.append(name)


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 30  # a socket the client never reads must not hold the thread forever

        def do_HEAD(self) -> None:
            self._answer(head=True)

        def do_GET(self) -> None:
            self._answer(head=False)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the test output stays readable

        def _answer(self, *, head: bool) -> None:
            host = (self.headers.get("Host") or "").lower()
            behaviour = self._behaviour(host)
            self._enter(host, head)
            try:
                if behaviour.gate is not None:
                    behaviour.gate.wait(GATE_CAP_S)
                if behaviour.delay_s:
                    time.sleep(behaviour.delay_s)
                self._respond(behaviour, head)
            except OSError:
                pass  # the client went away: nothing to answer
            finally:
                self._leave(host)

        def _behaviour(self, host: str) -> Behaviour:
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            with state.lock:
                found = state.paths.get((name, self.path)) or state.paths.get((None, self.path))
            return found or Behaviour(404)

        def _enter(self, host: str, head: bool) -> None:
            with state.lock:
                state.requests.append(
                    Request("HEAD" if head else "GET", host, self.path, dict(self.headers))
                )
                state.in_flight[host] = state.in_flight.get(host, 0) + 1
                state.max_in_flight[host] = max(
                    state.max_in_flight.get(host, 0), state.in_flight[host]
                )
                state.total_in_flight += 1
                state.max_total_in_flight = max(state.max_total_in_flight, state.total_in_flight)

        def _leave(self, host: str) -> None:
            with state.lock:
                state.in_flight[host] -= 1
                state.total_in_flight -= 1

        def _respond(self, behaviour: Behaviour, head: bool) -> None:
            status = behaviour.head_status if head and behaviour.head_status else behaviour.status
            self.send_response(status)
            if behaviour.location is not None:
                self.send_header("Location", behaviour.location)
            if behaviour.endless and not head:
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                self._stream()
                return
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _stream(self) -> None:
            stream = _Stream()
            with state.lock:
                state.streams.append(stream)
            deadline = time.monotonic() + ENDLESS_CAP_S
            how = "cap"
            try:
                while time.monotonic() < deadline:
                    self.wfile.write(_CHUNK)
                    stream.sent += len(_CHUNK)
            except (BrokenPipeError, ConnectionResetError):
                how = "client-closed"
            except TimeoutError:
                how = "timeout"
            with state.stream_ended:
                stream.ended = how
                state.stream_ended.notify_all()
            self.close_connection = True

    return Handler


@dataclass(slots=True)
class LoopbackRoute:
    """The prober's network edge in tests: every address to ``127.0.0.1:port``, recorded."""

    port: int
    asked: list[tuple[str, int]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, address: str, port: int) -> tuple[str, int]:
        with self._lock:
            self.asked.append((address, port))
        return "127.0.0.1", self.port

    @property
    def addresses(self) -> set[str]:
        with self._lock:
            return {a for a, _ in self.asked}


@pytest.fixture
def web_server() -> Iterator[WebServer]:
    """A fresh ``WebServer`` on loopback for this test; shut down afterwards."""
    server = WebServer()
    yield server
    server.close()
