"""The Intake service: analysts' reports in, routing decisions out (one, or a bulk stream).

Thin like every servicer: the codec decodes the request and encodes the answer
(``codec.result_to_proto``), intake (exchange/intake.py) traces, decides and stores, and
``streams.abort`` turns an error into a status. Bulk intake runs its request stream on a reader
thread (edge/streams.py) that prepares chunk n+1 while the writer commits chunk n; answers keep the
request order, and the bounded queue is the back-pressure on a fast client. A report refused on
its own merits is answered in its slot; a refused write ends the stream, since nothing after it
was acknowledged and the client must retry.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from concurrent.futures import Future

import grpc

from exchange.edge.streams import abort, read_requests
from exchange.errors import InvalidReport, error_code, error_message
from exchange.intake import Intake, IntakeResult
from exchange.wire.codec import fill_result, result_to_proto, submission_from_proto
from ihx.v1 import intake_pb2 as ipb
from ihx.v1 import intake_pb2_grpc as igrpc

MAX_CHUNK = 1000
"""The most reports one SubmitReports message may carry."""

_Outcomes = list[tuple[str, Future[IntakeResult] | Exception]]


class IntakeServicer(igrpc.IntakeServicer):
    def __init__(self, intake: Intake, *, window: int = 8) -> None:
        self._intake = intake
        self._window = window

    def SubmitReport(
        self, request: ipb.SubmitReportRequest, context: grpc.ServicerContext
    ) -> ipb.SubmitReportResponse:
        try:
            result = self._intake.submit(submission_from_proto(request))
        except Exception as error:
            abort(context, error)
        return result_to_proto(result, with_trace=True)

    def SubmitReports(
        self, request_iterator: Iterator[ipb.SubmitReportsRequest], context: grpc.ServicerContext
    ) -> Iterator[ipb.SubmitReportsResponse]:
        pending: queue.Queue[_Outcomes | Exception | None] = queue.Queue(self._window)

        def start(chunk: ipb.SubmitReportsRequest) -> _Outcomes:
            if len(chunk.reports) > MAX_CHUNK:
                return [("", _chunk_too_large(len(chunk.reports)))]
            return [self._start(r) for r in chunk.reports]

        read_requests("ihx-intake-reader", request_iterator, start, pending, context)
        while (entries := pending.get()) is not None:
            if isinstance(entries, Exception):
                abort(context, entries)
            yield _response(self._intake, entries, context)

    def _start(
        self, request: ipb.SubmitReportRequest
    ) -> tuple[str, Future[IntakeResult] | Exception]:
        try:
            prepared = self._intake.prepare(submission_from_proto(request))
        except Exception as error:
            return request.client_ref, error
        return request.client_ref, self._intake.submit_prepared(prepared)


def _response(
    intake: Intake, entries: _Outcomes, context: grpc.ServicerContext
) -> ipb.SubmitReportsResponse:
    """One chunk's answers, in request order, once its group commit is done; the chunk's PDQ
    hashes matched in one call."""
    answers: list[IntakeResult | tuple[str, Exception]] = []
    for client_ref, outcome in entries:
        if isinstance(outcome, Exception):
            answers.append((client_ref, outcome))
            continue
        try:
            answers.append(outcome.result())
        except InvalidReport as error:  # this report refused by what is stored (anonymised)
            answers.append((client_ref, error))
        except Exception as error:
            # Storage refused: nothing acknowledged; end the stream so the client retries.
            abort(context, error)
    matched = iter(intake.with_near([a for a in answers if isinstance(a, IntakeResult)]))
    response = ipb.SubmitReportsResponse()
    for answer in answers:
        if isinstance(answer, IntakeResult):
            fill_result(response.results.add(), next(matched), with_trace=False)
        else:
            ref, refused = answer
            response.results.add(
                client_ref=ref, error_code=error_code(refused), error=error_message(refused)
            )
    return response


def _chunk_too_large(n: int) -> Exception:
    return InvalidReport(
        f"a SubmitReports message carries {n} reports; the limit is {MAX_CHUNK}",
        code="chunk-too-large",
    )
