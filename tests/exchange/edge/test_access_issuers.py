"""The access interceptor on a real gRPC server, with an external issuer whose IdP is down.

The IdP's keys cannot be fetched (nothing listens where its JWKS is published): its tokens are
answered UNAVAILABLE with the reason — not the caller's fault, nothing about the token — while
the node's own tokens go on being served on the same server.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from auth.tokens import Scope, TokenIssuer, TokenPolicy, TokenVerifier, load_jwks_issuers
from auth.tokens.remote import RemoteOptions
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


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[grpc.Channel, TokenIssuer, FakeClock]]:
    clock = FakeClock()
    # Port 9 (discard) on loopback: nothing answers, the connection is refused at once.
    entry = {"iss": IDP, "algorithms": ["RS256"], "jwks_uri": "http://127.0.0.1:9/jwks.json"}
    path = write_json(tmp_path / "issuers.json", {"issuers": [entry]})
    external = load_jwks_issuers(path, clock=clock, options=RemoteOptions(timeout=2.0))
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
        yield channel, own, clock
    finally:
        channel.close()
        server.stop(0)


def _call(channel: grpc.Channel, token: str) -> list[Any]:
    call = channel.unary_stream(METHOD)
    return list(call(b"", metadata=(("authorization", f"Bearer {token}"),), timeout=10))


def test_an_issuer_without_keys_is_unavailable_and_others_are_served(
    served: tuple[grpc.Channel, TokenIssuer, FakeClock],
) -> None:
    channel, own, clock = served
    token = external_token(
        IDP, "k1", "RS256", rsa_key("idp-1"), iat=ts(clock.now), exp=ts(clock.now) + 300,
        scope="log:read",
    )  # fmt: skip

    with pytest.raises(grpc.RpcError) as caught:
        _call(channel, token)
    call: grpc.Call = caught.value  # type: ignore[assignment]
    assert call.code() is grpc.StatusCode.UNAVAILABLE
    details = call.details() or ""
    assert details.startswith("token-issuer-unavailable: issuer https://idp.example: no keys yet")
    assert "127.0.0.1:9" in details

    mine = own.issue("analyst", [Scope.LOG_READ], ttl=timedelta(minutes=5))
    assert _call(channel, mine) == [b""]
