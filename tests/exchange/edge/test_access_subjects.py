"""Per-subject admission on a real gRPC server: a subject is counted with its issuer.

Every issuer names its own subjects, and a network reader's node mints any ``sub`` it likes. A
reader that names its tokens after another node's partner (``nl-police``) and holds
``calls_per_subject`` log streams at that node must not lock the partner out of PullCases; the
same issuer's same subject past its share is still refused.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from datetime import timedelta
from typing import Any

import grpc
import pytest

from auth.tokens import Scope, TokenIssuer, TokenPolicy, TokenVerifier
from exchange.edge.access import AccessInterceptor
from exchange.edge.admission import Admission, Budgets
from tests.auth.factories import signing_key
from tests.auth.token_factories import FakeClock
from tests.exchange.test_token_trust import NODE, NOW, _manifest, _network_issuer, _policy


@pytest.fixture
def channel() -> Iterator[grpc.Channel]:
    clock = FakeClock(NOW)
    policy: TokenPolicy = _policy(_manifest())
    admission = Admission(Budgets(calls_per_subject=2))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        interceptors=[AccessInterceptor(TokenVerifier(policy, clock), admission=admission)],
    )
    release = threading.Event()

    def entries(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        yield b""
        release.wait(20)  # a slow reader holds its stream

    def pull(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        yield b"case"

    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "ihx.v1.RoutingLog",
                {"ListRoutingLog": grpc.unary_stream_rpc_method_handler(entries)},
            ),
            grpc.method_handlers_generic_handler(
                "ihx.v1.Partner", {"PullCases": grpc.unary_stream_rpc_method_handler(pull)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    chan = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield chan
    finally:
        release.set()
        chan.close()
        server.stop(0)


def _call(channel: grpc.Channel, method: str, token: str) -> Any:
    return channel.unary_stream(method)(
        b"", metadata=(("authorization", f"Bearer {token}"),), timeout=10
    )


def test_a_network_reader_cannot_starve_a_partner_of_the_same_sub(channel: grpc.Channel) -> None:
    clock = FakeClock(NOW)
    hostile = _network_issuer(clock).issue("nl-police", [Scope.LOG_READ])
    held = [_call(channel, "/ihx.v1.RoutingLog/ListRoutingLog", hostile) for _ in range(2)]
    assert [next(call) for call in held] == [b"", b""]  # both streams open, holding slots

    # The reader's third call is over its share ...
    with pytest.raises(grpc.RpcError) as caught:
        list(_call(channel, "/ihx.v1.RoutingLog/ListRoutingLog", hostile))
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]

    # ... and the node's own partner nl-police, another issuer's subject, is served.
    own = TokenIssuer(signing_key(NODE), NODE, NODE, clock)
    partner = own.issue("nl-police", [Scope.CASES_PULL], ttl=timedelta(minutes=5))
    assert list(_call(channel, "/ihx.v1.Partner/PullCases", partner)) == [b"case"]
