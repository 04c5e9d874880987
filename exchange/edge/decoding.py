"""Malformed request bytes answer INVALID_ARGUMENT, not INTERNAL — unary and streaming alike.

grpcio decodes every request message with the handler's deserializer before any servicer code
runs, and a decoding failure becomes ``INTERNAL: Exception deserializing request!`` with a
traceback in the node's log — a client's bad bytes reported as a server bug. This interceptor
takes over the decoding of every request: grpcio hands the raw bytes through
(``request_deserializer=None``) and the guard decodes them itself.

* A unary request that is not a valid message is answered ``INVALID_ARGUMENT`` with
  ``request-malformed: …`` before the servicer runs.
* A request stream reaches the servicer as an iterator that decodes message by message and
  raises ``MalformedRequest`` (``errors.py`` maps it to ``INVALID_ARGUMENT``) at the first
  message that does not parse. The messages before it were handed over already and are
  answered as usual; the bad one is never seen by the servicer, so nothing is stored for it,
  and it ends the stream with ``request-malformed: message N of the stream …``. A servicer that
  reads its requests on the handler's thread (server reflection) lets the error rise and the
  guard turns it into that status; a servicer that reads on a thread of its own
  (``streams.py``) carries the error to its answering loop, which ends the stream with it.
  A client that cancels or disconnects still just ends the stream: the iterator raises grpcio's
  own ``RpcError`` then, never ``MalformedRequest``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NoReturn

import grpc

from exchange.edge.access import Handler
from exchange.edge.status import status_for
from exchange.errors import ExchangeError, MalformedRequest, error_code, error_message
from exchange.wire.known_fields import require_known

log = logging.getLogger(__name__)

MALFORMED = MalformedRequest.code

Parse = Callable[[bytes], Any]
Behavior = Callable[..., Any]


def strict(parse: Parse, method: str) -> Parse:
    """``parse`` that also refuses unknown fields anywhere in the request (``UnknownFields``)."""

    def run(data: bytes) -> Any:
        request = parse(data)
        require_known(request, data, f"the request to {method}")
        return request

    return run


def decode_stream(raw: Iterable[bytes], parse: Parse, method: str) -> Iterator[Any]:
    """The messages of a request stream, decoded; ``MalformedRequest`` at the first bad one."""
    for n, data in enumerate(raw, 1):
        try:
            request = parse(data)
        except ExchangeError as error:
            log.info("refused message %d in a stream to %s: %s", n, method, error_code(error))
            raise MalformedRequest(
                f"message {n} of the stream: {error_message(error)}", code=error_code(error)
            ) from None
        except Exception:
            log.info("malformed message %d in a stream to %s (%d bytes)", n, method, len(data))
            raise MalformedRequest(
                f"message {n} of the stream is not a valid message for {method}"
            ) from None
        yield request


def _refuse(context: grpc.ServicerContext, error: ExchangeError) -> NoReturn:
    context.abort(status_for(error), f"{error_code(error)}: {error_message(error)}")


def _unary(behavior: Behavior | None, parse: Parse, method: str) -> Behavior:
    assert behavior is not None

    def run(raw: bytes, context: grpc.ServicerContext) -> Any:
        try:
            request = parse(raw)
        except ExchangeError as error:  # unknown fields: named, not "malformed"
            log.info("refused request to %s: %s", method, error_code(error))
            _refuse(context, error)
        except Exception:
            log.info("malformed request to %s (%d bytes)", method, len(raw))
            _refuse(context, MalformedRequest(f"the request is not a valid message for {method}"))
        return behavior(request, context)

    return run


def _stream_in(behavior: Behavior | None, parse: Parse, method: str) -> Behavior:
    assert behavior is not None

    def run(raw: Iterator[bytes], context: grpc.ServicerContext) -> Any:
        try:
            return behavior(decode_stream(raw, parse, method), context)
        except MalformedRequest as error:
            _refuse(context, error)

    return run


def _stream_both(behavior: Behavior | None, parse: Parse, method: str) -> Behavior:
    assert behavior is not None

    # The responses are a generator run lazily: the error can rise at any step of it.
    def run(raw: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from behavior(decode_stream(raw, parse, method), context)
        except MalformedRequest as error:
            _refuse(context, error)

    return run


class DecodeGuard(grpc.ServerInterceptor):  # type: ignore[type-arg]
    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        method: str = details.method
        parse: Parse = strict(handler.request_deserializer, method)
        kwargs = {"request_deserializer": None, "response_serializer": handler.response_serializer}
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(
                _stream_both(handler.stream_stream, parse, method), **kwargs
            )
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(
                _stream_in(handler.stream_unary, parse, method), **kwargs
            )
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(
                _unary(handler.unary_stream, parse, method), **kwargs
            )
        return grpc.unary_unary_rpc_method_handler(
            _unary(handler.unary_unary, parse, method), **kwargs
        )
