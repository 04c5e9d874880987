"""A client for a node's intake service, used by the CLI, the demo and the benchmarks.

Bulk submission streams chunks of reports (see intake.proto) with a bounded number of chunks in
flight, and yields one response per submission in order. Every call has a deadline.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

import grpc

from exchange.codec import submission_to_proto
from exchange.domain import Submission
from ihx.v1 import intake_pb2 as ipb
from ihx.v1 import intake_pb2_grpc as igrpc

DEFAULT_CHUNK = 500


class IntakeClient:
    def __init__(self, address: str, *, timeout: float = 30.0) -> None:
        self._channel = grpc.insecure_channel(
            address,
            options=[
                ("grpc.max_send_message_length", 16 * 1024 * 1024),
                ("grpc.max_receive_message_length", 16 * 1024 * 1024),
            ],
        )
        self._stub = igrpc.IntakeStub(self._channel)
        self._timeout = timeout

    def __enter__(self) -> IntakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def submit(self, submission: Submission) -> ipb.SubmitReportResponse:
        response: ipb.SubmitReportResponse = self._stub.SubmitReport(
            submission_to_proto(submission), timeout=self._timeout
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

        for response in self._stub.SubmitReports(chunks(), timeout=deadline):
            yield from response.results
