"""Clients for a node's services, used by the CLI, the demo and the benchmarks.

Every call carries ``authorization: Bearer <token>`` when a token is given and has a deadline.
Bulk submission streams chunks of reports (see intake.proto) and yields one response per
submission, in order. Log listing pages by entry index until the end. The case-work client
speaks domain objects both ways (the lifecycle codec converts), so the CLI and the demo never
touch its protobuf. Statistics come back as raw bytes: their signature covers the bytes, so
the caller verifies them before anything parses them. Channels are plaintext
unless ``tls`` (CA, certificate, key) is given: a node with mTLS requires a client certificate
from its CA on every call.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Self, cast

import grpc

from exchange.domain import Submission
from exchange.lifecycle.model import (
    Action,
    Assessment,
    CaseDetail,
    CaseSummary,
    Queue,
    ReportStatus,
    TimedEvent,
    Withdrawal,
)
from exchange.stats.model import Period
from exchange.wire.case_codec import (
    action_to_proto,
    assessment_to_proto,
    case_detail_from_proto,
    event_from_proto,
    item_key_to_proto,
    queue_to_proto,
    report_status_from_proto,
    summaries_from_proto,
    withdrawal_to_proto,
)
from exchange.wire.codec import submission_to_proto, timestamp
from exchange.wire.stats_codec import request_from_period
from ihx.v1 import cases_pb2 as cpb
from ihx.v1 import cases_pb2_grpc as cgrpc
from ihx.v1 import intake_pb2 as ipb
from ihx.v1 import intake_pb2_grpc as igrpc
from ihx.v1 import partner_pb2 as ppb
from ihx.v1 import partner_pb2_grpc as pgrpc
from ihx.v1 import routing_log_pb2 as lpb
from ihx.v1 import routing_log_pb2_grpc as lgrpc
from ihx.v1 import statistics_pb2 as spb

DEFAULT_CHUNK = 500
MAX_MESSAGE = 16 * 1024 * 1024


# (CA certificate, client certificate, client key), all PEM: mutual TLS to a node.
ClientTls = tuple[bytes, bytes, bytes]


class _Client:
    default_timeout = 30.0

    def __init__(
        self,
        address: str,
        *,
        token: str | None = None,
        timeout: float | None = None,
        tls: ClientTls | None = None,
    ) -> None:
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.max_receive_message_length", MAX_MESSAGE),
        ]
        if tls is None:
            self._channel = grpc.insecure_channel(address, options=options)
        else:
            ca, cert, key = tls
            credentials = grpc.ssl_channel_credentials(ca, key, cert)
            self._channel = grpc.secure_channel(address, credentials, options=options)
        self._metadata: tuple[tuple[str, str | bytes], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )
        self._timeout = timeout if timeout is not None else self.default_timeout
        self._bind(self._channel)

    def _bind(self, channel: grpc.Channel) -> None:
        """Create the service stub on the channel (one per client kind)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()


class IntakeClient(_Client):
    def _bind(self, channel: grpc.Channel) -> None:
        self._stub = igrpc.IntakeStub(channel)

    def submit(self, submission: Submission) -> ipb.SubmitReportResponse:
        response: ipb.SubmitReportResponse = self._stub.SubmitReport(
            submission_to_proto(submission), timeout=self._timeout, metadata=self._metadata
        )
        return response

    def submit_many(
        self,
        submissions: Iterable[Submission],
        *,
        chunk: int = DEFAULT_CHUNK,
        deadline: float = 3600.0,
    ) -> Iterator[ipb.SubmitReportResponse]:
        """Stream submissions; one response per submission, in order."""
        return self.submit_requests(
            (submission_to_proto(s) for s in submissions), chunk=chunk, deadline=deadline
        )

    def submit_requests(
        self,
        requests: Iterable[ipb.SubmitReportRequest],
        *,
        chunk: int = DEFAULT_CHUNK,
        deadline: float = 3600.0,
    ) -> Iterator[ipb.SubmitReportResponse]:
        def chunks() -> Iterator[ipb.SubmitReportsRequest]:
            it = iter(requests)
            while part := list(islice(it, chunk)):
                yield ipb.SubmitReportsRequest(reports=part)

        for response in self._stub.SubmitReports(
            chunks(), timeout=deadline, metadata=self._metadata
        ):
            yield from response.results


class PartnerClient(_Client):
    default_timeout = 60.0

    def _bind(self, channel: grpc.Channel) -> None:
        self._stub = pgrpc.PartnerStub(channel)

    def pull(self, after_cursor: str = "", limit: int = 100) -> Iterator[ppb.Case]:
        request = ppb.PullCasesRequest(after_cursor=after_cursor, limit=limit)
        for chunk in self._stub.PullCases(request, timeout=self._timeout, metadata=self._metadata):
            yield from chunk.cases

    def pull_page(
        self, after_cursor: str, limit: int, *, visibility_s: int = 0
    ) -> tuple[list[ppb.Case], datetime | None]:
        """One pull: its cases, and until when the node hides them from further pulls."""
        request = ppb.PullCasesRequest(
            after_cursor=after_cursor, limit=limit, visibility_seconds=visibility_s
        )
        cases: list[ppb.Case] = []
        until: datetime | None = None
        for chunk in self._stub.PullCases(request, timeout=self._timeout, metadata=self._metadata):
            cases.extend(chunk.cases)
            if chunk.HasField("invisible_until"):
                until = chunk.invisible_until.ToDatetime(tzinfo=UTC)
        return cases, until

    def ack(self, case_ids: Sequence[str]) -> ppb.AckCasesResponse:
        response: ppb.AckCasesResponse = self._stub.AckCases(
            ppb.AckCasesRequest(case_ids=list(case_ids)),
            timeout=self._timeout,
            metadata=self._metadata,
        )
        return response

    def feedback(
        self, case_id: str, code: ppb.FeedbackCode.ValueType, note: str = ""
    ) -> ppb.CaseFeedbackResponse:
        """Record this partner's feedback on one of its cases."""
        response: ppb.CaseFeedbackResponse = self._stub.RecordFeedback(
            ppb.CaseFeedbackRequest(case_id=case_id, code=code, note=note),
            timeout=self._timeout,
            metadata=self._metadata,
        )
        return response

    def hold(self, case_id: str, seconds: int, reason: str) -> ppb.HoldNoticesResponse:
        """Hold the notices to the hoster of one of this partner's cases."""
        response: ppb.HoldNoticesResponse = self._stub.HoldNotices(
            ppb.HoldNoticesRequest(case_id=case_id, hold_seconds=seconds, reason=reason),
            timeout=self._timeout,
            metadata=self._metadata,
        )
        return response

    def release_hold(self, case_id: str) -> ppb.ReleaseHoldResponse:
        response: ppb.ReleaseHoldResponse = self._stub.ReleaseHold(
            ppb.ReleaseHoldRequest(case_id=case_id),
            timeout=self._timeout,
            metadata=self._metadata,
        )
        return response


class LogClient(_Client):
    default_timeout = 60.0

    def _bind(self, channel: grpc.Channel) -> None:
        self._stub = lgrpc.RoutingLogStub(channel)

    def entries(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        country: str = "",
        member: str = "",
        kind: str = "",
        report_id: str = "",
        page_size: int = 1000,
    ) -> Iterator[lpb.LogEntry]:
        """Every matching entry, in index order, page after page."""
        after = 0
        while True:
            request = lpb.ListRoutingLogRequest(
                country=country,
                member=member,
                kind=kind,
                report_id=report_id,
                after_index=after,
                page_size=page_size,
            )
            if since is not None:
                request.since.CopyFrom(timestamp(since))
            if until is not None:
                request.until.CopyFrom(timestamp(until))
            page: lpb.ListRoutingLogResponse = self._stub.ListRoutingLog(
                request, timeout=self._timeout, metadata=self._metadata
            )
            yield from page.entries
            if not page.next_after_index:
                return
            after = page.next_after_index

    def checkpoint(self, size: int = 0) -> lpb.Checkpoint:
        cp: lpb.Checkpoint = self._stub.GetCheckpoint(
            lpb.GetCheckpointRequest(size=size), timeout=self._timeout, metadata=self._metadata
        )
        return cp


ItemKey = tuple[str, int]  # (report id, item index)


class CasesClient(_Client):
    """A hotline's case work (scope ``cases:work``): queues, cases, assess, act, withdraw, watch."""

    def _bind(self, channel: grpc.Channel) -> None:
        self._stub = cgrpc.CasesStub(channel)

    def queue(
        self, queue: Queue, *, older_than_days: int = 0, after: str = "", limit: int = 0
    ) -> tuple[list[CaseSummary], str]:
        """One page of a work queue and the cursor of the next ("" at the end)."""
        request = cpb.ListQueueRequest(
            queue=queue_to_proto(queue),
            older_than_days=older_than_days,
            after_cursor=after,
            limit=limit,
        )
        page = self._stub.ListQueue(request, timeout=self._timeout, metadata=self._metadata)
        return summaries_from_proto(page)

    def case(self, case_id: str) -> CaseDetail:
        answer = self._stub.GetCase(
            cpb.GetCaseRequest(case_id=case_id), timeout=self._timeout, metadata=self._metadata
        )
        return case_detail_from_proto(answer)

    def assess(self, case_id: str, items: Sequence[ItemKey], assessment: Assessment) -> CaseDetail:
        """Assess the named items (none: every open item); the case as it stands after."""
        request = cpb.AssessRequest(
            case_id=case_id,
            items=[item_key_to_proto(r, i) for r, i in items],
            assessment=assessment_to_proto(assessment),
        )
        answer = self._stub.Assess(request, timeout=self._timeout, metadata=self._metadata)
        return case_detail_from_proto(answer)

    def act(self, case_id: str, items: Sequence[ItemKey], action: Action) -> CaseDetail:
        """Record an action on the named items (none: every open item); the case after."""
        request = cpb.ActRequest(
            case_id=case_id,
            items=[item_key_to_proto(r, i) for r, i in items],
            action=action_to_proto(action),
        )
        answer = self._stub.Act(request, timeout=self._timeout, metadata=self._metadata)
        return case_detail_from_proto(answer)

    def report_status(self, report_id: str) -> ReportStatus:
        answer = self._stub.GetReportStatus(
            cpb.ReportStatusRequest(report_id=report_id),
            timeout=self._timeout,
            metadata=self._metadata,
        )
        return report_status_from_proto(answer)

    def withdraw(self, report_id: str, withdrawal: Withdrawal) -> ReportStatus:
        w = withdrawal_to_proto(withdrawal)
        answer = self._stub.Withdraw(
            cpb.WithdrawRequest(report_id=report_id, reason=w.reason, note=w.note),
            timeout=self._timeout,
            metadata=self._metadata,
        )
        return report_status_from_proto(answer)

    def watch(self, after: str = "", *, deadline: float | None = None) -> Iterator[TimedEvent]:
        """Every change after cursor ``after``, then new ones as they commit, until the node
        ends the stream (``watch_max_s``), ``deadline`` passes or the caller stops iterating."""
        stream = self._stub.WatchCases(
            cpb.WatchCasesRequest(after_cursor=after), timeout=deadline, metadata=self._metadata
        )
        try:
            for message in stream:
                for change in message.changes:
                    yield TimedEvent(int(change.cursor), event_from_proto(change.event))
        finally:
            stream.cancel()  # type: ignore[no-untyped-call]


class StatisticsClient(_Client):
    """``GetStatistics`` answered as raw bytes: the signature covers bytes, not a parse."""

    def _bind(self, channel: grpc.Channel) -> None:
        self._get = channel.unary_unary(
            "/ihx.v1.Statistics/GetStatistics",
            request_serializer=spb.StatisticsRequest.SerializeToString,
            response_deserializer=None,
        )

    def signed(self, period: Period) -> bytes:
        answer = self._get(
            request_from_period(period), timeout=self._timeout, metadata=self._metadata
        )
        return cast(bytes, answer)
