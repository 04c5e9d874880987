"""On start, tell every peer this node is back: a signed hello to each (wire/hello.py).

A node back from maintenance often has nothing to send its peers, and their senders to it would
wait out their backoff (up to 5 minutes) before trying again. A hello makes each peer's sender
retry at once (hellos.py at the peer), so delivery resumes within a round trip.

It never blocks or fails the start: one background thread, on channels of its own (a dead
peer's channel must not drag the senders' into its reconnect backoff). Every peer's first hello
goes out at once, with a short deadline (``first_deadline_s``), before any peer's second: a
peer that is unreachable or a black hole (accepts TCP, never answers) delays nobody else's hello.
Those worth another try (unreachable, slow, rate-limiting us) are tried again in rounds after
that, a growing pause before each round and none after the last; a refusal is not retried (it
does not change by asking again). At most one hello per peer is in flight, so the manifest's
size bounds the calls. Each attempt is signed anew, so a retry is never taken for a replay. A
peer that is down now needs no hello: when it starts, it says hello to us. Results are counted
(``ihx_hellos_sent``) and a failure is logged, never raised.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import grpc

from auth.keys import SigningKey
from auth.manifest import Manifest, Member
from common.clock import Clock
from exchange.delivery.fanout import Channels
from exchange.ops.metrics import Metrics
from exchange.wire.hello import sign_hello
from ihx.v1 import exchange_pb2_grpc as xgrpc

log = logging.getLogger(__name__)

# Worth another attempt: the peer is not (yet) there, slow, or rate-limiting us.
_RETRY = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


class Greeter:
    """Says hello to every peer of the manifest, once, in the background."""

    def __init__(
        self,
        *,
        self_member: str,
        key: SigningKey,
        manifest: Callable[[], Manifest],
        clock: Clock,
        max_message_bytes: int,
        tls: tuple[bytes, bytes, bytes] | None = None,
        metrics: Metrics | None = None,
        first_deadline_s: float = 1.0,
        deadline_s: float = 2.0,
        attempts: int = 3,
        pause_s: float = 1.0,
    ) -> None:
        self._self = self_member
        self._key = key
        self._manifest = manifest
        self._clock = clock
        self._channels = Channels(max_message_bytes, tls)
        self._metrics = metrics
        self._first_deadline = first_deadline_s
        self._deadline = deadline_s
        self._attempts = attempts
        self._pause = pause_s
        self._results: dict[str, str] = {}  # a peer's greeting over: its result, counted
        self._tried: dict[str, str] = {}  # still worth another attempt: why the last failed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._round, name="ihx-hello", daemon=True)
        self.done = threading.Event()  # every peer greeted or given up on (tests wait on it)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Give up on the hellos not yet answered (each ends within its deadline)."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(max(self._first_deadline, self._deadline) + 1)

    def _round(self) -> None:
        peers: list[Member] = []
        try:
            peers = [m for m in self._manifest().members if m.id != self._self]
            # Every peer's first hello before anyone's second: an unreachable peer costs the
            # others nothing. Retries go in rounds after it, a growing pause before each.
            retry = self._attempt(peers, self._first_deadline)
            for attempt in range(1, self._attempts):
                if not retry or self._stop.wait(self._pause * 2 ** (attempt - 1)):
                    break
                retry = self._attempt(retry, self._deadline)
        except Exception:  # never the node's problem: its peers fall back to their backoff
            log.exception("hellos to peers failed")
        finally:
            for member in peers:
                if member.id not in self._results:  # given up on, or stopped before its turn
                    self._record(member, self._tried.get(member.id, "not-sent"))
            self._channels.close()
            self.done.set()

    def _attempt(self, peers: list[Member], deadline: float) -> list[Member]:
        """One hello to each of ``peers``, all in flight at once; those worth another try."""
        calls = []
        for member in peers:
            if self._stop.is_set():
                break
            stub = xgrpc.ExchangeStub(self._channels.channel_for(member.endpoint))
            hello = sign_hello(
                self._key,
                sender=self._self,
                recipient=member.id,
                signed_at=self._clock(),
                manifest_epoch=self._manifest().epoch,
            )
            calls.append((member, stub.Hello.future(hello, timeout=deadline)))
        retry = []
        for member, call in calls:
            try:
                call.result()
            except grpc.RpcError as error:
                code = error.code()
                if code in _RETRY:
                    self._tried[member.id] = code.name
                    retry.append(member)
                    continue
                if code is grpc.StatusCode.UNIMPLEMENTED:
                    # A peer older than Hello: expected while members upgrade, not a fault.
                    log.info("%s does not know hellos yet", member.id, extra={"peer": member.id})
                else:
                    details = error.details()
                    log.warning(
                        "hello refused by %s: %s", member.id, details, extra={"peer": member.id}
                    )
                self._record(member, code.name)
                continue
            self._record(member, "ok")
        return retry

    def _record(self, member: Member, result: str) -> None:
        """``member``'s greeting is over with ``result``: counted once, logged if it failed."""
        self._results[member.id] = result
        if self._metrics is not None:
            self._metrics.hellos_sent.labels(member.id, result).inc()
        if result != "ok":
            log.info("no hello to %s (%s): it will hear from us on delivery", member.id, result)
