"""The access interceptor on a real gRPC server, with an external issuer whose IdP is down or slow.

grpc's sync server runs interceptors on its one serving thread, under the server's state lock:
anything slow there stalls every call of the node. So the keys are never fetched on the request
path — a call answers at once from the keys held, and the issuer's worker fetches behind it.
Checked: an issuer without keys yet is UNAVAILABLE with no detail of what failed (that goes to
the log), while the node's own tokens are served; and an IdP that drips its answer a byte at a
time, started by an outsider's token, does not delay a node-token call by any amount — it is
served within a short deadline while the fetch is still running, and the fetch itself ends at
its total deadline.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from auth.tokens import Scope, TokenIssuer, TokenPolicy, TokenVerifier, load_jwks_issuers
from auth.tokens.remote import RemoteIssuer, RemoteOptions
from exchange.edge.access import AccessInterceptor
from tests.auth.token_factories import (
    AUDIENCE,
    NODE_ISSUER,
    FakeClock,
    external_token,
    node_key,
    rsa_key,
    ts,
    write_json,
)

IDP = "https://idp.example"
METHOD = "/ihx.v1.RoutingLog/ListRoutingLog"


@dataclass
class Served:
    channel: grpc.Channel
    own: TokenIssuer
    clock: FakeClock
    remote: RemoteIssuer


def _serve(tmp_path: Path, jwks_uri: str, timeout: float) -> Iterator[Served]:
    clock = FakeClock()
    entry = {"iss": IDP, "algorithms": ["RS256"], "jwks_uri": jwks_uri}
    path = write_json(tmp_path / "issuers.json", {"issuers": [entry]})
    external = load_jwks_issuers(path, clock=clock, options=RemoteOptions(timeout=timeout))
    remote = external[IDP]
    assert isinstance(remote, RemoteIssuer)
    own = TokenIssuer(node_key(), NODE_ISSUER, AUDIENCE, clock)
    policy = TokenPolicy(audience=AUDIENCE, issuers={NODE_ISSUER: own.trusted, **external})
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        interceptors=[AccessInterceptor(TokenVerifier(policy, clock))],
    )

    def entries(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        yield b""

    handler = grpc.unary_stream_rpc_method_handler(entries)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("ihx.v1.RoutingLog", {"ListRoutingLog": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Served(channel, own, clock, remote)
    finally:
        channel.close()
        server.stop(0)
        remote.close(timeout=timeout + 1)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    # Port 9 (discard) on loopback: nothing answers, the connection is refused at once.
    yield from _serve(tmp_path, "http://127.0.0.1:9/jwks.json", timeout=2.0)


@pytest.fixture
def dripping_idp() -> Iterator[str]:
    """An IdP that sends its headers at once, then one byte every 0.2 s for 6 s: each read is
    within any per-read timeout, the whole far beyond a 2 s deadline."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            end = time.monotonic() + 6.0
            try:
                while time.monotonic() < end:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass  # the node hung up at its deadline

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


def _call(channel: grpc.Channel, token: str, timeout: float = 10.0) -> list[Any]:
    call = channel.unary_stream(METHOD)
    return list(call(b"", metadata=(("authorization", f"Bearer {token}"),), timeout=timeout))


def _outsider(clock: FakeClock) -> str:
    # Any RS256 token naming the issuer: no valid key is needed to make the node want its keys.
    return external_token(
        IDP, "k1", "RS256", rsa_key("idp-1"), iat=ts(clock.now), exp=ts(clock.now) + 300,
        scope="log:read",
    )  # fmt: skip


def _refused(channel: grpc.Channel, token: str) -> grpc.Call:
    with pytest.raises(grpc.RpcError) as caught:
        _call(channel, token)
    return caught.value  # type: ignore[return-value]


def test_an_issuer_without_keys_is_unavailable_and_others_are_served(served: Served) -> None:
    call = _refused(served.channel, _outsider(served.clock))
    assert call.code() is grpc.StatusCode.UNAVAILABLE
    assert served.remote.wait_settled(10.0)
    call = _refused(served.channel, _outsider(served.clock))  # after the failed fetch
    assert call.code() is grpc.StatusCode.UNAVAILABLE
    details = call.details() or ""
    assert details.startswith("token-issuer-unavailable: issuer https://idp.example:")
    assert "127.0.0.1:9" not in details  # what failed is logged, never told to the caller

    mine = served.own.issue("analyst", [Scope.LOG_READ], ttl=timedelta(minutes=5))
    assert _call(served.channel, mine) == [b""]


def test_a_dripping_idp_does_not_delay_the_nodes_calls(tmp_path: Path, dripping_idp: str) -> None:
    for served in _serve(tmp_path, dripping_idp, timeout=2.0):
        # The outsider's token starts the fetch and is answered at once, not after it.
        call = _refused(served.channel, _outsider(served.clock))
        assert call.code() is grpc.StatusCode.UNAVAILABLE
        assert not served.remote.wait_settled(0.3)  # the IdP is dripping: the fetch runs

        mine = served.own.issue("analyst", [Scope.LOG_READ], ttl=timedelta(minutes=5))
        assert _call(served.channel, mine, timeout=0.5) == [b""]
        assert not served.remote.wait_settled(0.0)  # served while the fetch was in progress
        # The fetch ends at its total deadline (2 s), long before the drip (6 s) would.
        assert served.remote.wait_settled(5.0)
        assert served.remote.peek() is None
