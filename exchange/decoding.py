"""Malformed request bytes answer INVALID_ARGUMENT, not INTERNAL.

grpcio decodes a request with the handler's deserializer before any servicer code runs, and a
decoding failure becomes ``INTERNAL: Exception deserializing request!`` with a traceback in the
node's log — a client's bad bytes reported as a server bug. This interceptor takes over the
decoding of every unary request: the handler receives the raw bytes, decodes them itself and
answers ``INVALID_ARGUMENT`` with ``request-malformed: …`` when they are not a valid message.
Streaming requests keep grpcio's own decoding (a bad message there ends the stream).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc

from exchange.access import Handler

log = logging.getLogger(__name__)

MALFORMED = "request-malformed"


class DecodeGuard(grpc.ServerInterceptor):  # type: ignore[type-arg]
    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        parse: Callable[[bytes], Any] = handler.request_deserializer
        method: str = details.method

        def guarded(behavior: Callable[..., Any] | None) -> Callable[..., Any]:
            assert behavior is not None

            def run(raw: bytes, context: grpc.ServicerContext) -> Any:
                try:
                    request = parse(raw)
                except Exception:
                    log.info("malformed request to %s (%d bytes)", method, len(raw))
                    context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"{MALFORMED}: the request is not a valid message for {method}",
                    )
                return behavior(request, context)

            return run

        kwargs = {"request_deserializer": None, "response_serializer": handler.response_serializer}
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(guarded(handler.unary_stream), **kwargs)
        return grpc.unary_unary_rpc_method_handler(guarded(handler.unary_unary), **kwargs)
