"""gRPC server metrics per service, method and status code — first in the interceptor chain.

Why our own: a maintained library that does this for Python's gRPC server does not exist —
``py-grpc-prometheus`` is unmaintained and writes to the process-global registry;
OpenTelemetry's gRPC instrumentation makes spans, not metrics. This is the small part of it a
node needs, over prometheus-client, with the names of the grpc-ecosystem's ``go-grpc-prometheus``
(``grpc_server_started_total``, ``grpc_server_handled_total``, ``grpc_server_handling_seconds``,
families in ops/metrics.py) so the usual dashboards read them. The cost on a call is measured in
``bench/call_metrics_overhead.py``.

First in the chain, it sees every call the chain ends, also those admission or access refused.
A call's code is the one the servicer (or an interceptor) set, ``UNKNOWN`` when it raised, and
``CANCELLED`` when the client went away from a stream; a stream's latency is its lifetime.
Methods the server does not serve are not counted: a hostile client could otherwise make a label
per made-up method name.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from exchange.edge.access import Handler
from exchange.ops.metrics import CallMetrics

_OK = grpc.StatusCode.OK.name
_UNKNOWN = grpc.StatusCode.UNKNOWN.name
_CANCELLED = grpc.StatusCode.CANCELLED.name


class CallMetricsInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(self, metrics: CallMetrics) -> None:
        self._children = _Children(metrics)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(details)
        if handler is None:
            return None  # not served: gRPC answers UNIMPLEMENTED; no label for it
        service, _, method = str(details.method).lstrip("/").rpartition("/")
        return _wrapped(handler, _Call(self._children, (_kind(handler), service, method)))


def _kind(handler: Handler) -> str:
    if handler.request_streaming and handler.response_streaming:
        return "bidi_stream"
    if handler.request_streaming:
        return "client_stream"
    if handler.response_streaming:
        return "server_stream"
    return "unary"


class _Children:
    """The labelled children, found once per method (and code): ``labels()`` costs more than
    the count itself, and the set is small (served methods × codes)."""

    def __init__(self, metrics: CallMetrics) -> None:
        self._m = metrics
        self._started: dict[tuple[str, ...], Any] = {}
        self._ended: dict[tuple[str, ...], tuple[Any, Any]] = {}

    def started(self, labels: tuple[str, ...]) -> Any:
        child = self._started.get(labels)
        if child is None:
            child = self._started.setdefault(labels, self._m.started.labels(*labels))
        return child

    def ended(self, labels: tuple[str, ...]) -> tuple[Any, Any]:
        pair = self._ended.get(labels)
        if pair is None:
            made = (self._m.handled.labels(*labels), self._m.seconds.labels(*labels))
            pair = self._ended.setdefault(labels, made)
        return pair


class _Call:
    """Counting one call: started at once, handled with the code and time at the end."""

    __slots__ = ("_children", "_labels")

    def __init__(self, children: _Children, labels: tuple[str, str, str]) -> None:
        self._children = children
        self._labels = labels

    def start(self) -> float:
        self._children.started(self._labels).inc()
        return time.perf_counter()

    def end(self, began: float, context: grpc.ServicerContext, fallback: str) -> None:
        code = context.code()  # type: ignore[attr-defined]  # grpcio has it; the stubs lag
        name = code.name if isinstance(code, grpc.StatusCode) else fallback
        handled, seconds = self._children.ended((*self._labels, name))
        handled.inc()
        seconds.observe(time.perf_counter() - began)


def _wrapped(handler: Handler, call: _Call) -> Handler:
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(
            _streamed(handler.stream_stream, call), **kwargs
        )
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(_unary(handler.stream_unary, call), **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(_streamed(handler.unary_stream, call), **kwargs)
    return grpc.unary_unary_rpc_method_handler(_unary(handler.unary_unary, call), **kwargs)


def _unary(behavior: Callable[..., Any] | None, call: _Call) -> Callable[..., Any]:
    assert behavior is not None

    def run(request: Any, context: grpc.ServicerContext) -> Any:
        began = call.start()
        try:
            response = behavior(request, context)
        except BaseException:
            call.end(began, context, _UNKNOWN)
            raise
        call.end(began, context, _OK)
        return response

    return run


def _streamed(behavior: Callable[..., Any] | None, call: _Call) -> Callable[..., Any]:
    assert behavior is not None

    def run(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        began = call.start()
        fallback = _UNKNOWN
        try:
            yield from behavior(request, context)
            fallback = _OK
        except GeneratorExit:
            fallback = _CANCELLED  # gRPC closed the stream: the client went away
            raise
        finally:
            call.end(began, context, fallback)

    return run
