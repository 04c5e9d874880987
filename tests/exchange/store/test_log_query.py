"""Routing-log reads at the edge: every integer a caller sends is range-checked, never overflowed.

``after_index`` (ListRoutingLog) and ``size`` (GetCheckpoint) are ``uint64`` on the wire and a
signed 64-bit column in the database. Values the column cannot hold must answer OUT_OF_RANGE
(``exchange.errors.OutOfRange``, code ``out-of-range``) with a message naming the field and its
range — before this, 2**63 and above reached the driver as an ``OverflowError`` and answered
INTERNAL. Values inside the range are answered normally (an empty page, NOT_FOUND), at both ends
of the range. Times outside the representable range answer INVALID_ARGUMENT (``time-range``),
not UNKNOWN. The servicer runs over a real migrated database with a context that records the
abort, as gRPC's would.
"""

from __future__ import annotations

from typing import Any, NoReturn

import grpc
import pytest
from sqlalchemy import Engine

from exchange.edge.log_service import RoutingLogServicer
from exchange.errors import OutOfRange
from exchange.store.routing_log import MAX_INDEX, LogFilter, index_in_range, list_entries
from exchange.store.writer import Writer
from ihx.v1 import routing_log_pb2 as lpb
from tests.exchange.factories import T0, FakeClock

U64_MAX = 2**64 - 1


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, details)
        self.code = code
        self.details = details


class AbortingContext:
    """The part of ``grpc.ServicerContext`` the servicer uses: ``abort`` raises, as gRPC's does."""

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise Aborted(code, details)


@pytest.fixture
def servicer(engine: Engine, writer: Writer, clock: FakeClock) -> RoutingLogServicer:
    # Three entries, so an in-range index has something before and after it.
    def append(tx: Any) -> None:
        for i in range(3):
            tx.log(tx.chain.append(T0, "intake", report_id=f"r-{i}", member="nl-eokm"))

    writer.execute(append)
    return RoutingLogServicer(engine, "nl-eokm", clock)


def call(servicer: RoutingLogServicer, method: str, request: Any) -> Any:
    context: Any = AbortingContext()
    return getattr(servicer, method)(request, context)


def refusal(servicer: RoutingLogServicer, method: str, request: Any) -> Aborted:
    with pytest.raises(Aborted) as refused:
        call(servicer, method, request)
    return refused.value


@pytest.mark.parametrize("value", [-2, MAX_INDEX + 1, U64_MAX])
def test_index_outside_the_column_range_is_out_of_range(value: int) -> None:
    with pytest.raises(OutOfRange, match=rf"^after_index: {value} is outside -1\.\.{MAX_INDEX}$"):
        index_in_range("after_index", value, low=-1)


@pytest.mark.parametrize("value", [-1, 0, 1, MAX_INDEX])
def test_index_inside_the_column_range_is_returned(value: int) -> None:
    assert index_in_range("after_index", value, low=-1) == value


def test_list_entries_refuses_an_index_the_database_cannot_hold(engine: Engine) -> None:
    with engine.connect() as conn, pytest.raises(OutOfRange):
        list_entries(conn, LogFilter(after_index=MAX_INDEX + 1))


@pytest.mark.parametrize("after_index", [2**63, 2**63 + 1, U64_MAX])
def test_list_after_index_beyond_int64_is_out_of_range(
    servicer: RoutingLogServicer, after_index: int
) -> None:
    refused = refusal(
        servicer, "ListRoutingLog", lpb.ListRoutingLogRequest(after_index=after_index)
    )
    assert refused.code is grpc.StatusCode.OUT_OF_RANGE
    assert refused.details == f"out-of-range: after_index: {after_index} is outside 0..{MAX_INDEX}"


@pytest.mark.parametrize(
    ("after_index", "indexes"),
    [(0, [0, 1, 2]), (1, [1, 2]), (2, [2]), (2**31, []), (2**32 - 1, []), (MAX_INDEX, [])],
)
def test_list_after_index_inside_the_range_pages(
    servicer: RoutingLogServicer, after_index: int, indexes: list[int]
) -> None:
    page = call(servicer, "ListRoutingLog", lpb.ListRoutingLogRequest(after_index=after_index))
    assert [e.index for e in page.entries] == indexes
    assert page.next_after_index == 0


@pytest.mark.parametrize("page_size", [0, 1, 2**31, 2**32 - 1])
def test_list_any_page_size_is_clamped(servicer: RoutingLogServicer, page_size: int) -> None:
    page = call(servicer, "ListRoutingLog", lpb.ListRoutingLogRequest(page_size=page_size))
    assert len(page.entries) == (1 if page_size == 1 else 3)


@pytest.mark.parametrize("field", ["since", "until"])
@pytest.mark.parametrize(("seconds", "nanos"), [(2**63 - 1, 0), (-(2**63), 0), (0, -1)])
def test_list_unrepresentable_time_is_invalid_argument(
    servicer: RoutingLogServicer, field: str, seconds: int, nanos: int
) -> None:
    request = lpb.ListRoutingLogRequest()
    getattr(request, field).seconds = seconds
    getattr(request, field).nanos = nanos
    refused = refusal(servicer, "ListRoutingLog", request)
    assert refused.code is grpc.StatusCode.INVALID_ARGUMENT
    assert refused.details.startswith("time-range: ")


@pytest.mark.parametrize("size", [2**63, 2**63 + 1, U64_MAX])
def test_checkpoint_size_beyond_int64_is_out_of_range(
    servicer: RoutingLogServicer, size: int
) -> None:
    refused = refusal(servicer, "GetCheckpoint", lpb.GetCheckpointRequest(size=size))
    assert refused.code is grpc.StatusCode.OUT_OF_RANGE
    assert refused.details == f"out-of-range: size: {size} is outside 0..{MAX_INDEX}"


@pytest.mark.parametrize("size", [1, 2**31, 2**32 - 1, MAX_INDEX])
def test_checkpoint_size_inside_the_range_is_not_found(
    servicer: RoutingLogServicer, size: int
) -> None:
    refused = refusal(servicer, "GetCheckpoint", lpb.GetCheckpointRequest(size=size))
    assert refused.code is grpc.StatusCode.NOT_FOUND
