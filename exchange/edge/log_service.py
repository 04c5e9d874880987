"""The gRPC servicer coordinators call to read the routing log and its signed checkpoints.

Reads go through exchange/store/routing_log.py (which range-checks every index a caller sends)
on a connection of their own, never through the writer; protobuf conversion is the codec's.
"""

from __future__ import annotations

import grpc
from sqlalchemy import Engine

from common.clock import Clock
from exchange.edge.streams import abort
from exchange.errors import InvalidReport, NotFound
from exchange.store import routing_log as store
from exchange.wire.codec import checkpoint_to_proto, entry_to_proto, from_timestamp
from ihx.v1 import routing_log_pb2 as lpb
from ihx.v1 import routing_log_pb2_grpc as lgrpc

MAX_FILTER_CHARS = 64


def _text_filter(name: str, value: str) -> str | None:
    """A string filter as given, or None when empty; printable and short, or refused — no byte
    a database would choke on (PostgreSQL refuses NUL) ever reaches a query."""
    if not value:
        return None
    if len(value) > MAX_FILTER_CHARS or not value.isprintable():
        raise InvalidReport(
            f"{name}: at most {MAX_FILTER_CHARS} printable characters", code="filter-invalid"
        )
    return value


def log_filter(request: lpb.ListRoutingLogRequest) -> store.LogFilter:
    """The store's filter for a request. On the wire, after_index is "start after entry N-1" so
    that 0 means the beginning."""
    after = store.index_in_range("after_index", request.after_index)
    return store.LogFilter(
        since=from_timestamp(request.since) if request.HasField("since") else None,
        until=from_timestamp(request.until) if request.HasField("until") else None,
        country=_text_filter("country", request.country),
        member=_text_filter("member", request.member),
        kind=_text_filter("kind", request.kind),
        report_id=_text_filter("report_id", request.report_id),
        after_index=after - 1 if after else -1,
        page_size=request.page_size,
    )


class RoutingLogServicer(lgrpc.RoutingLogServicer):
    def __init__(self, engine: Engine, member: str, clock: Clock) -> None:
        self._engine = engine
        self._member = member
        self._clock = clock

    def ListRoutingLog(
        self, request: lpb.ListRoutingLogRequest, context: grpc.ServicerContext
    ) -> lpb.ListRoutingLogResponse:
        try:
            f = log_filter(request)
            with self._engine.connect() as conn:
                entries, next_after = store.list_entries(conn, f)
        except Exception as error:
            abort(context, error)
        return lpb.ListRoutingLogResponse(
            entries=[entry_to_proto(e) for e in entries],
            next_after_index=(next_after + 1) if next_after is not None else 0,
        )

    def GetCheckpoint(
        self, request: lpb.GetCheckpointRequest, context: grpc.ServicerContext
    ) -> lpb.Checkpoint:
        try:
            size = store.index_in_range("size", request.size)
            with self._engine.connect() as conn:
                cp = store.find_checkpoint(conn, self._member, size)
            if cp is None:
                raise NotFound("no such checkpoint")
        except Exception as error:
            abort(context, error)
        return checkpoint_to_proto(cp)
