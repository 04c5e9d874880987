"""The node-to-node Exchange service: envelopes in, signed receipts out, in order.

Thin like every servicer: the receiver (exchange/receiver.py) verifies and stores, the codec
converts, ``streams.abort`` turns an error into a status. What this module adds is the stream's
shape: envelope n+1 is verified on a reader thread while the writer stores envelope n; the
receipts (or the refusal that ends the stream) keep the order of the envelopes. The queue is
bounded — a peer that sends without reading receipts is held back by flow control; the queue is
the in-flight window (16 envelopes verified ahead of their receipts).

``Hello`` hands a peer's signed hello to the desk (exchange/hellos.py), which verifies it and
wakes our sender to that peer; a refusal is answered with its status, and wakes nobody.

With admission (edge/admission.py) the stream starts on probation, is promoted by its first
verified envelope, and is ended when evicted, idle or past its first-envelope deadline: seen here
within one poll, or cancelled by the reaper if blocked elsewhere.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import NoReturn

import grpc

from exchange.edge.admission import StreamTicket, current_ticket
from exchange.edge.streams import abort, nudge, read_requests
from exchange.errors import MalformedRequest, Overloaded
from exchange.hellos import HelloDesk
from exchange.receiver import Receiver
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import exchange_pb2_grpc as xgrpc

_Pending = queue.Queue[Future[xpb.SignedReceipt] | Exception | object | None]
_WINDOW = 16


def peer_certificate(context: grpc.ServicerContext) -> bytes | None:
    """The TLS client's certificate (PEM), or None on a plaintext connection."""
    certs = context.auth_context().get("x509_pem_cert")
    return bytes(certs[0]) if certs else None


def _raise(error: Exception) -> NoReturn:
    raise error


class ExchangeServicer(xgrpc.ExchangeServicer):
    def __init__(
        self,
        receiver: Receiver,
        self_member: str,
        node_info: Callable[[], xpb.NodeInfo],
        hellos: HelloDesk | None = None,
    ) -> None:
        self._receiver = receiver
        self._hellos = hellos
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
        pending: _Pending = queue.Queue(_WINDOW)
        if self._closing:
            context.abort(grpc.StatusCode.UNAVAILABLE, "node is shutting down")
        peer = peer_certificate(context)
        ticket = current_ticket()
        requests = request_iterator
        if ticket is not None:
            rest = _first_envelope(request_iterator, ticket, pending, context)
            if rest is None:
                return
            requests = rest

        def take(envelope: xpb.Envelope) -> Future[xpb.SignedReceipt]:
            receipt = self._receiver.receive_async(envelope, peer)  # raises unless it verifies
            if ticket is not None:
                # Verified: the stream leaves probation and counts against its member from now.
                ticket.promote(xpb.EnvelopeHeader.FromString(envelope.header).sender)
                ticket.touch()
            return receipt

        read_requests("ihx-exchange-reader", requests, take, pending, context)
        yield from self._answer(pending, ticket, context)

    def _answer(
        self, pending: _Pending, ticket: StreamTicket | None, context: grpc.ServicerContext
    ) -> Iterator[xpb.SignedReceipt]:
        """The receipts in envelope order, until the stream ends (or is ended)."""
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
                continue  # ENDED: the admission ended the stream, seen at the top of the loop
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

    def Hello(self, request: xpb.SignedHello, context: grpc.ServicerContext) -> xpb.HelloAck:
        if self._hellos is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "this node takes no hellos")
        try:
            return self._hellos.take(request, peer_certificate(context))
        except Exception as error:
            abort(context, error)

    def GetNodeInfo(
        self, request: xpb.NodeInfoRequest, context: grpc.ServicerContext
    ) -> xpb.NodeInfo:
        return self._node_info()


def _first_envelope(
    requests: Iterator[xpb.Envelope],
    ticket: StreamTicket,
    pending: _Pending,
    context: grpc.ServicerContext,
) -> Iterator[xpb.Envelope] | None:
    """Wait on probation for the first envelope; the stream with it put back, or None if none.

    This worker waits itself: a stream that never sends costs no reader thread. Ending it
    meanwhile (evicted, past its first-envelope deadline) cancels the call, which ends the wait;
    the client sees CANCELLED.
    """
    ticket.on_end = context.cancel
    try:
        first = next(requests)
    except StopIteration:
        return None
    except MalformedRequest as error:
        abort(context, error)
    except Exception:
        return None  # cancelled by admission, or the client went away
    ticket.on_end = lambda: nudge(pending)
    return itertools.chain([first], requests)
