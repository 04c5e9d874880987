"""The per-call cost of gRPC server metrics on the hot path (edge/call_metrics.py).

A real gRPC server on loopback serves the health service's Check (the cheapest real unary call);
one client thread calls it N times, in rounds alternating between the server without an
interceptor, with ihx's ``CallMetricsInterceptor`` and — when the packages are importable (they
are not ihx dependencies) — with OpenTelemetry's gRPC server interceptor (spans to a no-op
exporter; it makes no metrics). Prints the median µs per call of each and the difference; on a
loaded machine the network's noise is larger than the difference, so it also times the
interception itself in process, around a no-op behaviour.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import bench_common
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from exchange.edge.call_metrics import CallMetricsInterceptor
from exchange.ops.metrics import Metrics


def _otel_interceptor() -> Any | None:
    try:
        from opentelemetry import trace  # type: ignore[import-not-found]
        from opentelemetry.instrumentation.grpc import (  # type: ignore[import-not-found]
            server_interceptor,
        )
        from opentelemetry.sdk.trace import TracerProvider  # type: ignore[import-not-found]
    except ImportError:
        return None
    trace.set_tracer_provider(TracerProvider())  # spans made, kept nowhere
    return server_interceptor()


def _serve(interceptors: list[Any]) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=interceptors)
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


def _round(address: str, calls: int) -> float:
    """µs per call over ``calls`` sequential Checks."""
    with grpc.insecure_channel(address) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        request = health_pb2.HealthCheckRequest()
        check(request, timeout=10)  # connected before timing
        began = time.perf_counter()
        for _ in range(calls):
            check(request, timeout=10)
        return (time.perf_counter() - began) / calls * 1e6


class _Context:
    """The one thing the wrapper asks of a context: the code set (none: OK)."""

    def code(self) -> None:
        return None


class _Details:
    method = "/grpc.health.v1.Health/Check"
    invocation_metadata = ()


def _in_process(calls: int, interceptor: Any | None) -> float:
    """µs per call of interception plus a no-op behaviour, without the network's noise."""
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: request)
    details, context = _Details(), _Context()
    began = time.perf_counter()
    for _ in range(calls):
        h = (
            handler
            if interceptor is None
            else interceptor.intercept_service(lambda _d: handler, details)
        )
        h.unary_unary(b"", context)
    return (time.perf_counter() - began) / calls * 1e6


def main() -> None:
    args = bench_common.parser(__doc__ or "").parse_args()
    calls, rounds = (2000, 5) if args.quick else (5000, 9)
    variants: dict[str, Callable[[], list[Any]]] = {
        "none": list,
        "ihx": lambda: [CallMetricsInterceptor(Metrics().calls)],
    }
    otel = _otel_interceptor()
    if otel is not None:
        variants["opentelemetry"] = lambda: [otel]
    servers = {name: _serve(make()) for name, make in variants.items()}
    times: dict[str, list[float]] = {name: [] for name in servers}
    try:
        for _ in range(rounds):
            for name, (_server, address) in servers.items():
                times[name].append(_round(address, calls))
    finally:
        for server, _address in servers.values():
            server.stop(0)
    result: dict[str, Any] = {"calls_per_round": calls, "rounds": rounds}
    base = bench_common.median(times["none"])
    for name, values in times.items():
        us = bench_common.median(values)
        result[f"{name}_us_per_call"] = round(us, 1)
        if name != "none":
            result[f"{name}_added_us"] = round(us - base, 1)
        print(f"{name:14} {us:8.1f} µs/call (median of {rounds} rounds of {calls})")
    if otel is None:
        print("opentelemetry: not installed here (not an ihx dependency); not measured")
    n = 20_000 if args.quick else 100_000
    bare = bench_common.median([_in_process(n, None) for _ in range(rounds)])
    ours = bench_common.median(
        [_in_process(n, CallMetricsInterceptor(Metrics().calls)) for _ in range(rounds)]
    )
    result["in_process_added_us"] = round(ours - bare, 2)
    print(f"in process: interception adds {ours - bare:.2f} µs per call ({bare:.2f} → {ours:.2f})")
    bench_common.emit(result)


if __name__ == "__main__":
    main()
