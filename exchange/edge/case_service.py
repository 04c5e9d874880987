"""The Cases service: a hotline's own case work — queues, a case, assess, act, withdraw, watch.

Thin like every servicer: each request is validated field by field here (ids in the forms ihx
makes, enums known, items named once and by report and index only, limits) and decoded by the
lifecycle codec (exchange/wire/case_codec.py); the work is ``CaseWork`` and ``CaseViews``
(exchange/lifecycle/); ``streams.abort`` maps every error once (edge/status.py): bad input is
INVALID_ARGUMENT naming the field, an unknown case or report NOT_FOUND, a case held by another
member PERMISSION_DENIED, a rule refusal FAILED_PRECONDITION naming the rule. Assess and Act
answer the case as it stands after the step; Withdraw the report's status.

WatchCases sends every change after the client's cursor (the node's case feed, own and
received events, in commit order), at most ``CHANGES_PER_MESSAGE`` and about
``BYTES_PER_MESSAGE`` per message, then waits on the ``ChangeFeed`` for more. The wait is
bounded (``POLL_S``), so a cancelled call or a stopping node ends the stream within a poll, and
the whole stream ends (OK) after ``max_watch_s``: the client resumes from the last cursor it
got, and no client holds a worker for ever. Admission gives watches a budget of their own
(``watch_streams``, edge/admission.py), apart from the analysts' other calls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence

import grpc

from exchange.domain import MAX_ITEMS, is_case_id, is_report_id
from exchange.edge.streams import abort
from exchange.errors import InvalidEvent
from exchange.lifecycle.feed import ChangeFeed
from exchange.lifecycle.model import (
    MAX_ITEMS_PER_EVENT,
    MAX_NOTE,
    Action,
    TimedEvent,
    Withdrawal,
)
from exchange.lifecycle.views import CaseViews
from exchange.lifecycle.work import CaseWork
from exchange.wire.case_codec import (
    action_from_proto,
    assessment_from_proto,
    case_detail_to_proto,
    event_to_proto,
    queue_from_proto,
    report_status_to_proto,
    summaries_to_proto,
    text,
    withdrawal_reason_from_proto,
)
from ihx.v1 import cases_pb2 as cpb
from ihx.v1 import cases_pb2_grpc as cgrpc
from ihx.v1 import lifecycle_pb2 as lpb

CHANGES_PER_MESSAGE = 500
BYTES_PER_MESSAGE = 4 * 1024 * 1024  # well under the 16 MiB message limit, whatever the events
POLL_S = 1.0  # the longest a watch waits before it looks at its call and the node again


def case_id_of(value: str, where: str = "case_id") -> str:
    if not is_case_id(value):
        raise InvalidEvent(f"{where}: not a case id (c- and 32 lower-case hex digits)")
    return value


def report_id_of(value: str, where: str = "report_id") -> str:
    if not is_report_id(value):
        raise InvalidEvent(f"{where}: not a report id (r- and 32 lower-case hex digits)")
    return value


def feed_cursor(value: str) -> int:
    """A WatchCases cursor as this node hands it out (ASCII digits); empty: the beginning."""
    if not value:
        return 0
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise InvalidEvent("after_cursor: not a cursor from this node")
    return int(value)


def item_keys(refs: Sequence[lpb.ItemRef]) -> list[tuple[str, int]]:
    """The items a request names: each by report id and index only, each once."""
    if len(refs) > MAX_ITEMS_PER_EVENT:
        raise InvalidEvent(f"items: at most {MAX_ITEMS_PER_EVENT} items per request")
    keys: list[tuple[str, int]] = []
    for i, ref in enumerate(refs):
        where = f"items[{i}]"
        report_id = report_id_of(ref.report_id, f"{where}.report_id")
        if ref.index >= MAX_ITEMS:
            raise InvalidEvent(f"{where}.index: {ref.index} is not an item of a report")
        if ref.origin_member or ref.origin_classification or ref.HasField("clock_started"):
            raise InvalidEvent(f"{where}: name an item by report_id and index only")
        if (report_id, ref.index) in keys:
            raise InvalidEvent(f"{where}: {report_id}#{ref.index} is named twice")
        keys.append((report_id, ref.index))
    return keys


def action_of(request: cpb.ActRequest) -> Action:
    """The requested action, decoded, with no field its kind does not take."""
    if not request.HasField("action"):
        raise InvalidEvent("action: required")
    return action_from_proto(request.action)


def change_messages(changes: Sequence[TimedEvent]) -> Iterator[cpb.WatchCasesResponse]:
    """``changes`` as WatchCases messages of at most ``BYTES_PER_MESSAGE`` (one at least)."""
    message = cpb.WatchCasesResponse()
    size = 0
    for change in changes:
        item = cpb.CaseChange(cursor=str(change.cursor), event=event_to_proto(change.event))
        item_size = item.ByteSize()
        if message.changes and size + item_size > BYTES_PER_MESSAGE:
            yield message
            message, size = cpb.WatchCasesResponse(), 0
        message.changes.append(item)
        size += item_size
    if message.changes:
        yield message


class CaseServicer(cgrpc.CasesServicer):
    def __init__(
        self,
        work: CaseWork,
        views: CaseViews,
        feed: ChangeFeed,
        *,
        stopping: threading.Event,
        max_watch_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._work = work
        self._views = views
        self._feed = feed
        self._stopping = stopping
        self._max_watch_s = max_watch_s
        self._monotonic = monotonic

    def ListQueue(
        self, request: cpb.ListQueueRequest, context: grpc.ServicerContext
    ) -> cpb.ListQueueResponse:
        try:
            queue = queue_from_proto(request.queue)
            rows, next_cursor = self._views.queue(
                queue,
                older_than_days=request.older_than_days,
                after=request.after_cursor,
                limit=request.limit,
            )
        except Exception as error:
            abort(context, error)
        return summaries_to_proto(rows, next_cursor)

    def GetCase(self, request: cpb.GetCaseRequest, context: grpc.ServicerContext) -> cpb.CaseDetail:
        try:
            detail = self._views.case(case_id_of(request.case_id))
        except Exception as error:
            abort(context, error)
        return case_detail_to_proto(detail)

    def Assess(self, request: cpb.AssessRequest, context: grpc.ServicerContext) -> cpb.CaseDetail:
        try:
            case_id = case_id_of(request.case_id)
            keys = item_keys(request.items)
            if not request.HasField("assessment"):
                raise InvalidEvent("assessment: required")
            self._work.assess(case_id, keys, assessment_from_proto(request.assessment))
            detail = self._views.case(case_id)
        except Exception as error:
            abort(context, error)
        return case_detail_to_proto(detail)

    def Act(self, request: cpb.ActRequest, context: grpc.ServicerContext) -> cpb.CaseDetail:
        try:
            case_id = case_id_of(request.case_id)
            keys = item_keys(request.items)
            self._work.act(case_id, keys, action_of(request))
            detail = self._views.case(case_id)
        except Exception as error:
            abort(context, error)
        return case_detail_to_proto(detail)

    def GetReportStatus(
        self, request: cpb.ReportStatusRequest, context: grpc.ServicerContext
    ) -> cpb.ReportStatus:
        try:
            status = self._views.report_status(report_id_of(request.report_id))
        except Exception as error:
            abort(context, error)
        return report_status_to_proto(status)

    def Withdraw(
        self, request: cpb.WithdrawRequest, context: grpc.ServicerContext
    ) -> cpb.ReportStatus:
        try:
            report_id = report_id_of(request.report_id)
            withdrawal = Withdrawal(
                withdrawal_reason_from_proto(request.reason), text(request.note, "note", MAX_NOTE)
            )
            self._work.withdraw(report_id, withdrawal)
            status = self._views.report_status(report_id)
        except Exception as error:
            abort(context, error)
        return report_status_to_proto(status)

    def WatchCases(
        self, request: cpb.WatchCasesRequest, context: grpc.ServicerContext
    ) -> Iterator[cpb.WatchCasesResponse]:
        try:
            after = feed_cursor(request.after_cursor)
        except Exception as error:
            abort(context, error)
        ends_at = self._monotonic() + self._max_watch_s
        first = True
        while context.is_active() and not self._stopping.is_set():
            # The version before the read: a commit after it wakes the wait below at once.
            seen = self._feed.version
            try:
                changes = self._views.changes(after, CHANGES_PER_MESSAGE)
            except Exception as error:
                abort(context, error)
            if changes:
                after = changes[-1].cursor
                yield from change_messages(changes)
            elif first:
                yield cpb.WatchCasesResponse()  # caught up at once: the stream is live
            first = False
            left = ends_at - self._monotonic()
            if left <= 0:
                return  # OK: the client resumes from the last cursor it received
            if not changes:
                self._feed.wait(seen, min(POLL_S, left))
