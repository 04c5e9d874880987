"""RoutingLogServicer over a real database: the wire's paging and filters map to the store's.

Range checks on indexes and sizes are tests/exchange/store/test_log_query.py's; here: the
"after_index N means from entry N" convention, filters, and checkpoints by size or latest.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine

from exchange.domain import LogKind
from exchange.edge.log_service import RoutingLogServicer, log_filter
from exchange.routing_log import Checkpoint
from exchange.store import routing_log
from exchange.store.writer import Writer
from exchange.wire.codec import checkpoint_from_proto, entry_from_proto, timestamp
from ihx.v1 import routing_log_pb2 as lpb
from tests.exchange.edge.servicer_context import Aborted, AbortingContext
from tests.exchange.factories import T0, FakeClock


@pytest.fixture
def servicer(engine: Engine, writer: Writer, clock: FakeClock) -> RoutingLogServicer:
    def append(tx: Any) -> None:
        for i in range(5):
            kind = LogKind.INTAKE if i % 2 == 0 else LogKind.SENT
            tx.log(tx.chain.append(T0 + timedelta(seconds=i), kind, report_id=f"r-{i}"))

    writer.execute(append)
    return RoutingLogServicer(engine, "nl-eokm", clock)


def call(servicer: RoutingLogServicer, method: str, request: Any) -> Any:
    return getattr(servicer, method)(request, AbortingContext())


def test_after_index_zero_is_the_beginning_and_n_starts_at_entry_n(
    servicer: RoutingLogServicer,
) -> None:
    first = call(servicer, "ListRoutingLog", lpb.ListRoutingLogRequest(page_size=2))
    assert [e.index for e in first.entries] == [0, 1]
    assert first.next_after_index == 2
    rest = call(servicer, "ListRoutingLog", lpb.ListRoutingLogRequest(after_index=2))
    assert [e.index for e in rest.entries] == [2, 3, 4]
    assert rest.next_after_index == 0  # the end


def test_filters_reach_the_store(servicer: RoutingLogServicer) -> None:
    got = call(servicer, "ListRoutingLog", lpb.ListRoutingLogRequest(kind="sent"))
    assert [(e.index, e.kind) for e in got.entries] == [(1, "sent"), (3, "sent")]
    request = lpb.ListRoutingLogRequest(
        since=timestamp(T0 + timedelta(seconds=1)), until=timestamp(T0 + timedelta(seconds=3))
    )
    assert [e.index for e in call(servicer, "ListRoutingLog", request).entries] == [1, 2]


def test_entries_round_trip_through_the_codec(servicer: RoutingLogServicer, engine: Engine) -> None:
    got = call(servicer, "ListRoutingLog", lpb.ListRoutingLogRequest())
    with engine.connect() as conn:
        stored = list(routing_log.load_entries(conn))
    assert [entry_from_proto(e) for e in got.entries] == stored


def test_log_filter_maps_an_empty_request_to_everything() -> None:
    f = log_filter(lpb.ListRoutingLogRequest())
    assert (f.after_index, f.since, f.until, f.kind, f.country) == (-1, None, None, None, None)


def test_checkpoints_by_size_or_latest(servicer: RoutingLogServicer, engine: Engine) -> None:
    small = Checkpoint("nl-eokm", 2, b"a" * 32, T0, "k", b"s")
    large = Checkpoint("nl-eokm", 4, b"b" * 32, T0, "k", b"t")
    with engine.begin() as conn:
        routing_log.add_checkpoint(conn, small)
        routing_log.add_checkpoint(conn, large)
    latest = call(servicer, "GetCheckpoint", lpb.GetCheckpointRequest())
    assert checkpoint_from_proto(latest) == large
    by_size = call(servicer, "GetCheckpoint", lpb.GetCheckpointRequest(size=2))
    assert checkpoint_from_proto(by_size) == small
    with pytest.raises(Aborted) as caught:
        call(servicer, "GetCheckpoint", lpb.GetCheckpointRequest(size=3))
    assert caught.value.code is grpc.StatusCode.NOT_FOUND


def test_no_checkpoint_yet_is_not_found(servicer: RoutingLogServicer) -> None:
    with pytest.raises(Aborted) as caught:
        call(servicer, "GetCheckpoint", lpb.GetCheckpointRequest())
    assert caught.value.code is grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("field", "value"),
    [("kind", "sent\x00"), ("member", "nl\x00eokm"), ("country", "N" * 65), ("report_id", "\n")],
)
def test_a_filter_a_database_would_choke_on_is_invalid_argument(
    servicer: RoutingLogServicer, field: str, value: str
) -> None:
    # PostgreSQL refuses NUL in text parameters: it must never reach a query (it was INTERNAL).
    with pytest.raises(Aborted) as caught:
        call(servicer, "ListRoutingLog", lpb.ListRoutingLogRequest(**{field: value}))
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details.startswith(f"filter-invalid: {field}:")
