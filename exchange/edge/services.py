"""gRPC servicers: the edge where protobuf meets the node, and errors become statuses.

Servicers are thin: decode with the codec, call the node's component, encode the answer. Every
exception is mapped once by ``errors.status_for`` to a status with a one-line message; nothing
else leaks. Bulk intake runs its request stream on a reader thread so requests keep flowing
while earlier ones wait for their group commit, and answers stay in request order.

A request stream's messages are decoded by ``decoding.DecodeGuard`` as the reader thread takes
them: a message that is not valid protobuf raises ``MalformedRequest`` there, and the reader hands
it to the answering loop, which answers everything before it and then ends the stream with
INVALID_ARGUMENT. Any other end of the request iterator (the client half-closed, cancelled or went
away) just ends the stream.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, NoReturn

import grpc

from exchange.edge.admission import current_ticket
from exchange.edge.status import status_for
from exchange.errors import MalformedRequest, Overloaded, error_code, error_message
from exchange.intake import Intake, IntakeResult
from exchange.receiver import Receiver
from exchange.wire.codec import decision_to_proto, parse_report, submission_from_proto, timestamp
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import exchange_pb2_grpc as xgrpc
from ihx.v1 import intake_pb2 as ipb
from ihx.v1 import intake_pb2_grpc as igrpc
from ihx.v1 import report_pb2 as pb

log = logging.getLogger(__name__)

SOFTWARE_VERSION = "ihx/0.1.0"
# Wire schema versions this node speaks. Unknown fields are refused (exchange/known_fields.py),
# so a schema change ships as a new package (ihx.v2) beside the old one, used only with peers
# that list it in NodeInfo.protocols.
PROTOCOLS = ("ihx.v1",)


def peer_certificate(context: grpc.ServicerContext) -> bytes | None:
    """The TLS client's certificate (PEM), or None on a plaintext connection."""
    certs = context.auth_context().get("x509_pem_cert")
    return bytes(certs[0]) if certs else None


def _raise(error: Exception) -> NoReturn:
    raise error


def _offer(pending: queue.Queue[Any], entry: Any, context: grpc.ServicerContext) -> bool:
    """Queue ``entry`` for the answering loop; False once the RPC is over.

    The queue is bounded (back-pressure), and once the RPC has ended — cancelled by the client,
    aborted, past its deadline — nobody takes from it any more: a reader blocked on a full queue
    would then hang for ever, one thread per broken stream.
    """
    while True:
        try:
            pending.put(entry, timeout=0.5)
            return True
        except queue.Full:
            if not context.is_active():
                return False


def _read_requests(
    name: str,
    requests: Iterator[Any],
    take: Callable[[Any], Any],
    pending: queue.Queue[Any],
    context: grpc.ServicerContext,
) -> None:
    """Start a reader thread: each request through ``take`` into ``pending``, then None.

    An exception from ``take``, or a malformed message (``MalformedRequest`` from the decoding
    guard), is queued after everything before it — so that is answered first — and ends the
    reading; a client that half-closes, cancels or goes away just ends it.
    """

    def read() -> None:
        try:
            for request in requests:
                try:
                    entry = take(request)
                except Exception as error:
                    _offer(pending, error, context)
                    return
                if not _offer(pending, entry, context):
                    return
        except MalformedRequest as error:
            _offer(pending, error, context)
        except Exception:
            log.debug("%s: the client ended the stream", name)
        finally:
            _offer(pending, None, context)

    threading.Thread(target=read, name=name, daemon=True).start()


_ENDED = object()


def _nudge(pending: queue.Queue[Any]) -> None:
    """Wake a stream's answering loop; a full queue means it is awake anyway."""
    with contextlib.suppress(queue.Full):
        pending.put_nowait(_ENDED)


def abort(context: grpc.ServicerContext, error: Exception) -> NoReturn:
    if status_for(error) is grpc.StatusCode.INTERNAL:
        log.exception("internal error", exc_info=error)
    context.abort(status_for(error), f"{error_code(error)}: {error_message(error)}")


class ExchangeServicer(xgrpc.ExchangeServicer):
    def __init__(self, receiver: Receiver, self_member: str, node_info: Any) -> None:
        self._receiver = receiver
        self._self = self_member
        self._node_info = node_info
        self._streams_lock = threading.Lock()
        self._closing = False

    def close_streams(self) -> None:
        """End every open stream once its queued envelopes are answered (graceful stop)."""
        with self._streams_lock:
            self._closing = True

    def Stream(
        self, request_iterator: Iterator[xpb.Envelope], context: grpc.ServicerContext
    ) -> Iterator[xpb.SignedReceipt]:
        # Envelope n+1 is verified on a reader thread while the writer stores envelope n; the
        # receipts (or the refusal that ends the stream) keep the order of the envelopes.
        # Bounded: a peer that sends without reading receipts is held back by flow control; the
        # queue is the in-flight window (16 envelopes verified ahead of their receipts).
        # With admission (exchange/admission.py) the stream starts on probation, is promoted by
        # its first verified envelope, and is ended when evicted, idle or past its first-envelope
        # deadline: seen here within one poll, or cancelled by the reaper if blocked elsewhere.
        pending: queue.Queue[Future[xpb.SignedReceipt] | Exception | object | None] = queue.Queue(
            16
        )
        if self._closing:
            context.abort(grpc.StatusCode.UNAVAILABLE, "node is shutting down")

        peer = peer_certificate(context)
        ticket = current_ticket()
        requests: Iterator[xpb.Envelope] = request_iterator
        if ticket is not None:
            # On probation this worker waits for the first envelope itself: a stream that never
            # sends costs no reader thread. Ending it meanwhile (evicted, past its first-envelope
            # deadline) cancels the call, which ends the wait; the client sees CANCELLED.
            ticket.on_end = context.cancel
            try:
                first = next(request_iterator)
            except StopIteration:
                return
            except MalformedRequest as error:
                abort(context, error)
            except Exception:
                return  # cancelled by admission, or the client went away
            ticket.on_end = lambda: _nudge(pending)
            requests = itertools.chain([first], request_iterator)

        def take(envelope: xpb.Envelope) -> Future[xpb.SignedReceipt]:
            receipt = self._receiver.receive_async(envelope, peer)  # raises unless it verifies
            if ticket is not None:
                # Verified: the stream leaves probation and counts against its member from now.
                ticket.promote(xpb.EnvelopeHeader.FromString(envelope.header).sender)
                ticket.touch()
            return receipt

        _read_requests("ihx-exchange-reader", requests, take, pending, context)
        while True:
            if ticket is not None and ticket.ended:
                if ticket.graceful:
                    return  # idle: nothing is in flight, the peer reopens when it has work
                abort(context, Overloaded(f"stream ended: {ticket.end_reason}"))
            try:
                entry = pending.get(timeout=0.25)
            except queue.Empty:
                if self._closing:
                    return  # everything received so far is answered: end the idle stream
                continue
            if entry is None:
                return
            if not isinstance(entry, Future | Exception):
                continue  # _ENDED: the admission ended the stream, seen at the top of the loop
            try:
                receipt = entry.result() if isinstance(entry, Future) else _raise(entry)
            except Exception as error:
                abort(context, error)
            if ticket is not None:
                ticket.touch()
            yield receipt

    def Deliver(self, request: xpb.Envelope, context: grpc.ServicerContext) -> xpb.SignedReceipt:
        try:
            return self._receiver.receive(request, peer_certificate(context))
        except Exception as error:
            abort(context, error)

    def GetNodeInfo(
        self, request: xpb.NodeInfoRequest, context: grpc.ServicerContext
    ) -> xpb.NodeInfo:
        info: xpb.NodeInfo = self._node_info()
        return info


def result_to_proto(result: IntakeResult, *, with_trace: bool) -> ipb.SubmitReportResponse:
    msg = ipb.SubmitReportResponse(
        report_id=result.report_id,
        canonical_url=result.canonical_url,
        decision=decision_to_proto(result.decision),
        duplicate=result.duplicate,
        client_ref=result.client_ref,
    )
    for status in result.items:
        item = msg.items.add(index=status.index, known_content=status.known is not None)
        if status.known is not None:
            item.first_seen_member = status.known.member
            item.first_seen_case = status.known.case_id
            item.first_classification = _CLASSIFICATION[status.known.classification.value]
    if with_trace:
        msg.trace.CopyFrom(parse_report(result.wire).trace)
    return msg


_CLASSIFICATION: dict[str, pb.Classification.ValueType] = {
    "baseline": pb.CLASSIFICATION_BASELINE,
    "national": pb.CLASSIFICATION_NATIONAL,
    "not_illegal": pb.CLASSIFICATION_NOT_ILLEGAL,
    "doubtful": pb.CLASSIFICATION_DOUBTFUL,
}


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
        # A reader thread prepares chunk n+1 while the writer commits chunk n; answers keep the
        # request order. The bounded queue is the back-pressure on a fast client.
        pending: queue.Queue[
            list[tuple[str, Future[IntakeResult] | Exception]] | Exception | None
        ] = queue.Queue(self._window)

        def start(
            chunk: ipb.SubmitReportsRequest,
        ) -> list[tuple[str, Future[IntakeResult] | Exception]]:
            if len(chunk.reports) > MAX_CHUNK:
                return [("", _chunk_too_large(len(chunk.reports)))]
            return [self._start(r) for r in chunk.reports]

        _read_requests("ihx-intake-reader", request_iterator, start, pending, context)
        while (entries := pending.get()) is not None:
            if isinstance(entries, Exception):
                abort(context, entries)
            response = ipb.SubmitReportsResponse()
            for client_ref, outcome in entries:
                if isinstance(outcome, Exception):
                    response.results.add(
                        client_ref=client_ref,
                        error_code=error_code(outcome),
                        error=error_message(outcome),
                    )
                    continue
                try:
                    result = outcome.result()
                except Exception as error:
                    # Storage refused: nothing acknowledged; end the stream so the client retries.
                    abort(context, error)
                response.results.append(result_to_proto(result, with_trace=False))
            yield response

    def _start(
        self, request: ipb.SubmitReportRequest
    ) -> tuple[str, Future[IntakeResult] | Exception]:
        try:
            prepared = self._intake.prepare(submission_from_proto(request))
        except Exception as error:
            return request.client_ref, error
        return request.client_ref, self._intake.submit_prepared(prepared)


MAX_CHUNK = 1000


def _chunk_too_large(n: int) -> Exception:
    from exchange.errors import InvalidReport

    return InvalidReport(
        f"a SubmitReports message carries {n} reports; the limit is {MAX_CHUNK}",
        code="chunk-too-large",
    )


def node_info(member: str, epoch: int, key_ids: list[str], limits: Any) -> xpb.NodeInfo:
    return xpb.NodeInfo(
        member=member,
        manifest_epoch=epoch,
        software_version=SOFTWARE_VERSION,
        key_ids=key_ids,
        max_batch_reports=limits.max_payloads,
        max_message_bytes=limits.max_envelope_bytes,
        protocols=PROTOCOLS,
    )


__all__ = ["ExchangeServicer", "IntakeServicer", "node_info", "result_to_proto", "timestamp"]
