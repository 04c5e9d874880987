"""Clients for a node's services, used by the CLI, the demo and the benchmarks.

Every call carries ``authorization: Bearer <token>`` when a token is given and has a deadline.
Bulk submission streams chunks of reports (see intake.proto) and yields one response per
submission, in order. Log listing pages by entry index until the end. Channels are plaintext
unless ``tls`` (CA, certificate, key) is given: a node with mTLS requires a client certificate
from its CA on every call.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from itertools import islice
from typing import Self

import grpc

from exchange.domain import Submission
from exchange.wire.codec import submission_to_proto, timestamp
from ihx.v1 import intake_pb2 as ipb
from ihx.v1 import intake_pb2_grpc as igrpc
from ihx.v1 import partner_pb2 as ppb
from ihx.v1 import partner_pb2_grpc as pgrpc
from ihx.v1 import routing_log_pb2 as lpb
from ihx.v1 import routing_log_pb2_grpc as lgrpc

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
