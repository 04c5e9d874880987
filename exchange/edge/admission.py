"""Admission: no peer or client holds more than a bounded share of the node's workers.

Why: the gRPC sync server runs every call on a worker of one thread pool, and an exchange
stream holds its worker (plus a reader thread) for as long as it is open. ~70 streams that never
send — so no signature is ever checked — used to take every worker: intake, delivery and
PullCases then timed out while health still said SERVING.

Design:

* ``AdmissionInterceptor`` runs FIRST, on the server's polling thread, before a worker is taken.
  Each method belongs to one class (``classify``) with a budget of concurrent calls: verified
  and probationary exchange streams, intake, partner, routing log, analysts' case work, case
  watches (WatchCases streams, which also end after ``watch_max_s``), hellos (fast, and
  rate-limited per member: a budget of their own so nothing held open can shut out a peer's
  hello), probes (health Watch and reflection: streams anyone may hold idle, so at most
  ``probes_per_connection`` per connection and each cancelled after ``probe_max_s``), other
  (Deliver, Statistics), open (health Check, GetNodeInfo). The pool is sized from the sum of the
  budgets (``Budgets.workers``), so a class over its budget is refused at once —
  RESOURCE_EXHAUSTED, ``overloaded: …`` — and can never queue behind another class for a
  worker. Health always finds a worker.
* An exchange stream starts on **probation**: nobody has proved who it is. Probation has a small
  cap; when it is full the OLDEST probationary stream is evicted, not the newcomer, so churning
  idle streams cannot lock out a real peer, whose first envelope follows within milliseconds. A
  probationary stream that sends no valid envelope within ``first_envelope_s`` is ended.
* When its first envelope verifies (``StreamTicket.promote``, called by the servicer) the stream
  counts against its member: at most ``streams_per_member`` (the member's oldest is evicted —
  a real sender uses one stream per destination, so the newest is the live one) and at most
  ``max_streams`` in all. A stream without an envelope or receipt for ``stream_idle_timeout_s``
  is ended gracefully (OK). At most ``streams_per_connection`` streams share one connection.
* Ending a stream is a flag its servicer loop sees within a poll; a stream blocked elsewhere
  (writing receipts to a peer that never reads) is cancelled after ``END_GRACE``. Until a
  stream's worker has really let go it still counts ("ending"), and the ending streams have a
  cap of their own, so churn cannot pile up workers faster than they are freed.
* Token-authenticated calls also count against their verified subject (``calls_per_subject``),
  keyed by issuer and subject; exchange/access.py takes that slot after verifying the token.

A call is checked twice. On the polling thread (``check``), a class already full is refused
before anything is queued. The slot itself is taken (``acquire``) when the call's worker starts
and released when its behaviour ends, both on that worker: gRPC never runs the behaviour of a
call whose client left before its request arrived (a "rapid reset"), so a slot taken any
earlier could never be given back. Between the two, a burst may queue a few calls more than the
budget for a moment; each is refused as it starts, so what is *held* never exceeds a budget.
Once the node begins to stop (``close``), every new call but a health check or probe is refused
— UNAVAILABLE, ``shutting-down: …`` — before health turns NOT_SERVING, so no client that saw
NOT_SERVING is handed new work in the moment before gRPC's own stop refuses it.
``sweep`` runs on a reaper thread every ``REAP_INTERVAL``; the clock is injectable and ``sweep``
is callable directly.
"""

from __future__ import annotations

import contextvars
import enum
import itertools
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn, TypeAlias

import grpc

from exchange.edge.status import status_for
from exchange.errors import Overloaded, ShuttingDown, error_code, error_message
from exchange.ops.metrics import Metrics
from exchange.settings import ExchangeTuning

log = logging.getLogger(__name__)

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"

END_GRACE = 1.0  # seconds an ended stream gets to let go before it is cancelled
REAP_INTERVAL = 0.25
# Workers beyond the budgets: the refusals themselves run on a worker, briefly.
REFUSAL_WORKERS = 16


class CallClass(enum.StrEnum):
    STREAM = "exchange-stream"
    INTAKE = "intake"
    PARTNER = "partner"
    LOG = "log"
    CASES = "cases"
    WATCH = "cases-watch"
    HELLO = "hello"
    PROBE = "probe"
    OTHER = "other"
    OPEN = "open"


def classify(method: str) -> CallClass:
    if method == "/ihx.v1.Exchange/Stream":
        return CallClass.STREAM
    if method in ("/ihx.v1.Exchange/GetNodeInfo", "/grpc.health.v1.Health/Check"):
        return CallClass.OPEN
    if method.startswith("/ihx.v1.Intake/"):
        return CallClass.INTAKE
    if method.startswith("/ihx.v1.Partner/"):
        return CallClass.PARTNER
    if method.startswith("/ihx.v1.RoutingLog/"):
        return CallClass.LOG
    if method == "/ihx.v1.Exchange/Hello":
        return CallClass.HELLO
    if method == "/grpc.health.v1.Health/Watch" or method.startswith("/grpc.reflection."):
        return CallClass.PROBE  # held open by anyone: bounded per connection and in lifetime
    if method == "/ihx.v1.Cases/WatchCases":
        return CallClass.WATCH  # held open: a budget of its own, so watches never block work
    if method.startswith("/ihx.v1.Cases/"):
        return CallClass.CASES
    return CallClass.OTHER


@dataclass(frozen=True, slots=True)
class Budgets:
    max_streams: int = 128
    probation_streams: int = 32
    streams_per_member: int = 4
    streams_per_connection: int = 8
    first_envelope_s: float = 10.0
    stream_idle_timeout_s: float = 180.0
    intake_calls: int = 64
    partner_calls: int = 32
    log_calls: int = 16
    cases_calls: int = 32
    watch_streams: int = 16
    hello_calls: int = 8
    probe_streams: int = 8
    probes_per_connection: int = 2
    probe_max_s: float = 300.0
    other_calls: int = 16
    open_calls: int = 32
    calls_per_subject: int = 16

    @classmethod
    def from_tuning(cls, t: ExchangeTuning) -> Budgets:
        return cls(
            max_streams=t.max_streams,
            probation_streams=t.probation_streams,
            streams_per_member=t.streams_per_member,
            streams_per_connection=t.streams_per_connection,
            first_envelope_s=t.first_envelope_s,
            stream_idle_timeout_s=t.stream_idle_timeout_s,
            intake_calls=t.intake_calls,
            partner_calls=t.partner_calls,
            log_calls=t.log_calls,
            cases_calls=t.cases_calls,
            watch_streams=t.watch_streams,
            hello_calls=t.hello_calls,
            probe_streams=t.probe_streams,
            probes_per_connection=t.probes_per_connection,
            probe_max_s=t.probe_max_s,
            other_calls=t.other_calls,
            open_calls=t.open_calls,
            calls_per_subject=t.calls_per_subject,
        )

    def limit(self, kind: CallClass) -> int:
        return {
            CallClass.INTAKE: self.intake_calls,
            CallClass.PARTNER: self.partner_calls,
            CallClass.LOG: self.log_calls,
            CallClass.CASES: self.cases_calls,
            CallClass.WATCH: self.watch_streams,
            CallClass.HELLO: self.hello_calls,
            CallClass.PROBE: self.probe_streams,
            CallClass.OTHER: self.other_calls,
            CallClass.OPEN: self.open_calls,
        }[kind]

    @property
    def stream_workers(self) -> int:
        """Workers exchange streams can hold: verified, probationary, and as many ending."""
        return self.max_streams + 2 * self.probation_streams

    @property
    def workers(self) -> int:
        """The pool size: every budget at once still leaves a worker for each refusal."""
        others = sum(self.limit(k) for k in CallClass if k is not CallClass.STREAM)
        return self.stream_workers + others + REFUSAL_WORKERS


class Slot:
    """One admitted call's hold on its budget; ``release`` is idempotent."""

    def __init__(self, admission: Admission, kind: CallClass, subject: str | None) -> None:
        self._admission = admission
        self.kind = kind
        self.subject = subject
        self.admitted_at = admission.now()
        self.released = False

    def release(self) -> None:
        self._admission._release(self)


class ProbeSlot(Slot):
    """A health Watch or reflection stream: counted per connection, cancelled when too old."""

    def __init__(
        self, admission: Admission, probe_id: int, peer: str, cancel: Callable[[], None]
    ) -> None:
        super().__init__(admission, CallClass.PROBE, None)
        self.id = probe_id
        self.peer = peer
        self.cancel = cancel
        self.cancelled = False


class StreamState(enum.Enum):
    PROBATION = "probation"
    VERIFIED = "verified"
    ENDING = "ending"


class StreamTicket(Slot):
    """An exchange stream's admission: probation, then verified as one member, then ending."""

    def __init__(self, admission: Admission, ticket_id: int) -> None:
        super().__init__(admission, CallClass.STREAM, None)
        self.id = ticket_id
        self.state = StreamState.PROBATION
        self.member: str | None = None
        self.peer: str | None = None
        self.last_active = self.admitted_at
        self.ended_at: float | None = None
        self.end_reason: str | None = None
        self.graceful = False
        self.cancel: Callable[[], None] | None = None
        self.cancelled = False
        # Set by the servicer: wakes its loop at once when the stream is ended, so the worker
        # is freed now rather than at the loop's next poll.
        self.on_end: Callable[[], None] | None = None

    def promote(self, member: str) -> None:
        """Its first envelope verified as ``member``'s: leave probation (or raise Overloaded)."""
        self._admission._promote(self, member)

    def touch(self) -> None:
        """An envelope arrived or a receipt left: the stream is not idle."""
        self.last_active = self._admission.now()

    @property
    def ended(self) -> bool:
        return self.end_reason is not None


_ticket: contextvars.ContextVar[StreamTicket | None] = contextvars.ContextVar(
    "ihx_stream_ticket", default=None
)


def current_ticket() -> StreamTicket | None:
    """The admission of the exchange stream being served (None without the interceptor)."""
    return _ticket.get()


class Admission:
    """The budgets' state; every method is thread-safe."""

    def __init__(
        self,
        budgets: Budgets,
        *,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        self.budgets = budgets
        self.now = clock
        self._metrics = metrics
        self._lock = threading.Lock()
        self._held: Counter[CallClass] = Counter()
        self._subjects: Counter[str] = Counter()
        self._connections: Counter[str] = Counter()
        self._probes: dict[int, ProbeSlot] = {}
        self._probe_connections: Counter[str] = Counter()
        self._probation: OrderedDict[int, StreamTicket] = OrderedDict()
        self._verified: dict[str, OrderedDict[int, StreamTicket]] = {}
        self._verified_count = 0
        self._ending: dict[int, StreamTicket] = {}
        self._ids = itertools.count(1)
        self.admitted: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.ended: Counter[str] = Counter()
        self._closed = False
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None

    # -- admitting ----------------------------------------------------------------------------

    def check(self, method: str) -> None:
        """Refuse (``Overloaded``) a call whose class is full now, or any call but a health
        check or probe once the node is stopping (``ShuttingDown``); nothing is held."""
        kind = classify(method)
        with self._lock:
            self._refuse_if_closed(kind)
            if kind is CallClass.STREAM:
                full = len(self._ending) >= self.budgets.probation_streams
            else:
                full = self._held[kind] >= self.budgets.limit(kind)
            if full:
                self._refuse(kind.value, "ending" if kind is CallClass.STREAM else "budget")
        if full:
            raise self._overloaded(kind)

    def acquire(self, method: str, peer: str, cancel: Callable[[], None]) -> Slot:
        """The call's worker started: its slot, or ``Overloaded`` (nothing held)."""
        kind = classify(method)
        with self._lock:
            self._refuse_if_closed(kind)
            if kind is CallClass.STREAM:
                slot: Slot = self._admit_stream(peer, cancel)
            elif kind is CallClass.PROBE:
                slot = self._admit_probe(peer, cancel)
            else:
                if self._held[kind] >= self.budgets.limit(kind):
                    self._refuse(kind.value, "budget")
                    raise self._overloaded(kind)
                self._held[kind] += 1
                slot = Slot(self, kind, None)
            self.admitted[kind.value] += 1
            return slot

    def close(self) -> None:
        """The node begins to stop: from now on only health checks and probes are admitted.

        Called before health turns NOT_SERVING, so that a client who saw NOT_SERVING is never
        served new work: gRPC's own refusal starts only at ``server.stop``, which comes after
        the open streams were asked to end. Calls already admitted run to their end."""
        with self._lock:
            self._closed = True

    def _refuse_if_closed(self, kind: CallClass) -> None:
        if self._closed and kind not in (CallClass.OPEN, CallClass.PROBE):
            self._refuse(kind.value, "shutdown")
            raise ShuttingDown("the node is stopping and takes no new calls; retry elsewhere")

    def _overloaded(self, kind: CallClass) -> Overloaded:
        if kind is CallClass.STREAM:
            return Overloaded("too many exchange streams are still ending; retry shortly")
        return Overloaded(
            f"the node serves at most {self.budgets.limit(kind)} concurrent {kind.value} calls"
        )

    def check_subject(self, subject: str, kind: CallClass) -> None:
        """Refuse a call of a verified token ``subject`` that holds its share already."""
        with self._lock:
            if self._subjects[subject] < self.budgets.calls_per_subject:
                return
            self._refuse(kind.value, "subject")
        raise Overloaded(f"{subject!r} already holds {self.budgets.calls_per_subject} calls")

    def acquire_subject(self, subject: str, kind: CallClass) -> Slot:
        """One more concurrent call of ``subject``, taken when its worker starts."""
        with self._lock:
            limit = self.budgets.calls_per_subject
            if self._subjects[subject] >= limit:
                self._refuse(kind.value, "subject")
                raise Overloaded(f"{subject!r} already holds {limit} calls")
            self._subjects[subject] += 1
            return Slot(self, kind, subject)

    def _admit_stream(self, peer: str, cancel: Callable[[], None]) -> StreamTicket:
        b = self.budgets
        if len(self._ending) >= b.probation_streams:
            self._refuse(CallClass.STREAM.value, "ending")
            raise self._overloaded(CallClass.STREAM)
        if self._connections[peer] >= b.streams_per_connection:
            self._refuse(CallClass.STREAM.value, "connection")
            raise Overloaded(f"at most {b.streams_per_connection} exchange streams per connection")
        if len(self._probation) >= b.probation_streams:
            _, oldest = self._probation.popitem(last=False)
            self._end(oldest, "probation-full", graceful=False)
        ticket = StreamTicket(self, next(self._ids))
        ticket.peer, ticket.cancel = peer, cancel
        self._connections[peer] += 1
        self._probation[ticket.id] = ticket
        return ticket

    def _admit_probe(self, peer: str, cancel: Callable[[], None]) -> ProbeSlot:
        b = self.budgets
        if self._held[CallClass.PROBE] >= b.probe_streams:
            self._refuse(CallClass.PROBE.value, "budget")
            raise self._overloaded(CallClass.PROBE)
        if self._probe_connections[peer] >= b.probes_per_connection:
            self._refuse(CallClass.PROBE.value, "connection")
            raise Overloaded(
                f"at most {b.probes_per_connection} health watch or reflection streams "
                "per connection"
            )
        probe = ProbeSlot(self, next(self._ids), peer, cancel)
        self._held[CallClass.PROBE] += 1
        self._probe_connections[peer] += 1
        self._probes[probe.id] = probe
        return probe

    def _promote(self, ticket: StreamTicket, member: str) -> None:
        b = self.budgets
        with self._lock:
            if ticket.state is not StreamState.PROBATION:
                return  # verified already (a later envelope), or ending: the loop ends it
            if self._verified_count >= b.max_streams:
                self._refuse(CallClass.STREAM.value, "verified-full")
                self._end(ticket, "verified-full", graceful=False, count=False)
                raise Overloaded(f"the node holds its maximum of {b.max_streams} peer streams")
            own = self._verified.setdefault(member, OrderedDict())
            if len(own) >= b.streams_per_member:
                _, oldest = own.popitem(last=False)
                self._verified_count -= 1
                self._end(oldest, "member-full", graceful=False)
            del self._probation[ticket.id]
            own[ticket.id] = ticket
            self._verified_count += 1
            ticket.state = StreamState.VERIFIED
            ticket.member = member
            ticket.last_active = self.now()

    # -- ending and releasing -------------------------------------------------------------------

    def _end(
        self,
        ticket: StreamTicket,
        reason: str,
        *,
        graceful: bool,
        count: bool = True,
        wake: bool = True,
    ) -> None:
        """Mark ``ticket`` ending (lock held): its loop sees it; the reaper cancels a laggard."""
        if ticket.state is StreamState.PROBATION:
            self._probation.pop(ticket.id, None)
        elif (
            ticket.state is StreamState.VERIFIED
            and ticket.member is not None
            and self._verified.get(ticket.member, OrderedDict()).pop(ticket.id, None) is not None
        ):
            self._verified_count -= 1
        if ticket.state is not StreamState.ENDING:
            ticket.state = StreamState.ENDING
            ticket.end_reason = reason
            ticket.graceful = graceful
            ticket.ended_at = self.now()
            if not ticket.released:
                self._ending[ticket.id] = ticket
            if count:
                self.ended[reason] += 1
                if self._metrics is not None:
                    self._metrics.streams_ended.labels(reason).inc()
            if wake and ticket.on_end is not None:
                ticket.on_end()  # must not block: it runs under the admission lock

    def _release(self, slot: Slot) -> None:
        with self._lock:
            if slot.released:
                return
            slot.released = True
            if slot.subject is not None:
                self._subjects[slot.subject] -= 1
                if self._subjects[slot.subject] <= 0:
                    del self._subjects[slot.subject]
                return
            if isinstance(slot, StreamTicket):
                if slot.state is not StreamState.ENDING:
                    # The call is over already: nothing to wake (or cancel, which would replace
                    # the status it is ending with).
                    self._end(slot, "closed", graceful=True, count=False, wake=False)
                self._ending.pop(slot.id, None)
                if slot.peer is not None:
                    self._connections[slot.peer] -= 1
                    if self._connections[slot.peer] <= 0:
                        del self._connections[slot.peer]
                return
            if isinstance(slot, ProbeSlot):
                del self._probes[slot.id]
                self._probe_connections[slot.peer] -= 1
                if self._probe_connections[slot.peer] <= 0:
                    del self._probe_connections[slot.peer]
            self._held[slot.kind] -= 1

    def _refuse(self, kind: str, reason: str) -> None:
        self.refused[reason] += 1
        if self._metrics is not None:
            self._metrics.admission_refused.labels(kind, reason).inc()

    def sweep(self) -> None:
        """End overdue streams, and cancel those that do not let go when ended."""
        now = self.now()
        b = self.budgets
        cancels: list[Callable[[], None]] = []
        with self._lock:
            for ticket in list(self._probation.values()):
                if now - ticket.admitted_at >= b.first_envelope_s:
                    self._end(ticket, "first-envelope-timeout", graceful=False)
            for own in list(self._verified.values()):
                for ticket in list(own.values()):
                    if now - ticket.last_active >= b.stream_idle_timeout_s:
                        self._end(ticket, "idle", graceful=True)
            for ticket in self._ending.values():
                assert ticket.ended_at is not None
                if (
                    ticket.cancel is not None
                    and not ticket.cancelled
                    and now - ticket.ended_at >= END_GRACE
                ):
                    ticket.cancelled = True
                    cancels.append(ticket.cancel)
            cancels.extend(self._overdue_probes(now))
        for cancel in cancels:
            cancel()

    def _overdue_probes(self, now: float) -> list[Callable[[], None]]:
        """The cancels of probe streams held past ``probe_max_s`` (lock held), each once."""
        overdue = [
            p
            for p in self._probes.values()
            if not p.cancelled and now - p.admitted_at >= self.budgets.probe_max_s
        ]
        for probe in overdue:
            probe.cancelled = True
            self.ended["probe-lifetime"] += 1
        return [p.cancel for p in overdue]

    def end_probation(self) -> None:
        """End every stream still on probation (graceful stop: they have nothing in flight)."""
        with self._lock:
            for ticket in list(self._probation.values()):
                self._end(ticket, "shutdown", graceful=True)

    def snapshot(self) -> dict[str, int]:
        """Counts held now (for tests, health and ``ihx status``)."""
        with self._lock:
            held = {k.value: n for k, n in self._held.items()}
            return {
                **held,
                "probation": len(self._probation),
                "verified": self._verified_count,
                "ending": len(self._ending),
                "subjects": sum(self._subjects.values()),
            }

    # -- the reaper -----------------------------------------------------------------------------

    def start(self) -> None:
        self._reaper = threading.Thread(target=self._reap, name="ihx-admission", daemon=True)
        self._reaper.start()

    def stop(self) -> None:
        self._stop.set()
        if self._reaper is not None:
            self._reaper.join(5)

    def _reap(self) -> None:
        while not self._stop.wait(REAP_INTERVAL):
            try:
                self.sweep()
            except Exception:  # the reaper must outlive a bug
                log.exception("admission sweep failed")


# -- the interceptor ------------------------------------------------------------------------------


def refuse(context: grpc.ServicerContext, error: Exception) -> NoReturn:
    context.abort(status_for(error), f"{error_code(error)}: {error_message(error)}")


def refusal(handler: Handler, error: Exception) -> Handler:
    """A handler of the same shape that answers ``error`` at once."""

    def deny(request: Any, context: grpc.ServicerContext) -> Any:
        refuse(context, error)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny)
    return grpc.unary_unary_rpc_method_handler(deny)


Acquire: TypeAlias = Callable[[str, Callable[[], None]], Slot]


def held(handler: Handler, acquire: Acquire) -> Handler:
    """``handler`` run while holding the slot ``acquire(peer, cancel)`` gives; released however
    the call ends. Without a slot (``Overloaded``) the call is refused."""
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(
            _held_stream(handler.stream_stream, acquire), **kwargs
        )
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(
            _held_unary(handler.stream_unary, acquire), **kwargs
        )
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(
            _held_stream(handler.unary_stream, acquire), **kwargs
        )
    return grpc.unary_unary_rpc_method_handler(_held_unary(handler.unary_unary, acquire), **kwargs)


def _begin(acquire: Acquire, context: grpc.ServicerContext) -> Slot:
    """The call's slot, released also by the RPC's own end; the call is refused without one."""
    try:
        slot = acquire(context.peer(), context.cancel)
    except (Overloaded, ShuttingDown) as error:
        refuse(context, error)
    # The RPC's own end releases too: a streaming generator gRPC abandons is not closed
    # at once, and its slot must not wait for the garbage collector.
    context.add_callback(slot.release)
    return slot


def _held_unary(behavior: Callable[..., Any] | None, acquire: Acquire) -> Callable[..., Any]:
    """``behavior`` (a unary response) run while holding its slot."""
    assert behavior is not None

    def run(request: Any, context: grpc.ServicerContext) -> Any:
        slot = _begin(acquire, context)
        try:
            return behavior(request, context)
        finally:
            slot.release()

    return run


def _held_stream(behavior: Callable[..., Any] | None, acquire: Acquire) -> Callable[..., Any]:
    """``behavior`` (a streamed response) run while holding its slot, from first to last item."""
    assert behavior is not None

    def run(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        slot = _begin(acquire, context)
        try:
            iterator = iter(behavior(request, context))
            if isinstance(slot, StreamTicket):
                yield from _under_ticket(iterator, slot)
            else:
                yield from iterator
        finally:
            slot.release()

    return run


def _under_ticket(iterator: Iterator[Any], ticket: StreamTicket) -> Iterator[Any]:
    """The items of ``iterator``, each produced with ``ticket`` as the current stream ticket."""
    while True:
        token = _ticket.set(ticket)
        try:
            item = next(iterator)
        except StopIteration:
            return
        finally:
            _ticket.reset(token)
        yield item


class AdmissionInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """First in the chain: a call over its class's budget never reaches a worker's queue."""

    def __init__(self, admission: Admission) -> None:
        self.admission = admission

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(details)
        if handler is None:
            return None
        method: str = details.method
        try:
            self.admission.check(method)
        except (Overloaded, ShuttingDown) as error:
            log.debug("refused %s: %s", method, error)
            return refusal(handler, error)
        return held(handler, lambda peer, cancel: self.admission.acquire(method, peer, cancel))
