"""On start, tell every peer this node is back: a signed hello to each (wire/hello.py).

A node back from maintenance often has nothing to send its peers, and their senders to it would
wait out their backoff (up to 5 minutes) before trying again. A hello makes each peer's sender
retry at once (hellos.py at the peer), so delivery resumes within a round trip.

It never blocks or fails the start: one background thread, at most ``concurrency`` hellos at once
on channels of its own (a dead peer's channel must not drag the senders' into its reconnect
backoff), each with a short deadline, a few attempts with a growing pause when the peer is
unreachable or busy, none when it refuses (a refusal does not change by asking again). Each
attempt is signed anew, so a retry is never taken for a replay. A peer that is down now needs
no hello: when it starts, it says hello to us. Results are counted (``ihx_hellos_sent``) and a
failure is logged, never raised.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

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
        concurrency: int = 8,
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
        self._concurrency = concurrency
        self._deadline = deadline_s
        self._attempts = attempts
        self._pause = pause_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._round, name="ihx-hello", daemon=True)
        self.done = threading.Event()  # every peer greeted or given up on (tests wait on it)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Give up on the hellos not yet answered (each ends within its deadline)."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(self._deadline + 1)

    def _round(self) -> None:
        try:
            peers = [m for m in self._manifest().members if m.id != self._self]
            with ThreadPoolExecutor(self._concurrency, thread_name_prefix="ihx-hello") as pool:
                list(pool.map(self._greet, peers))
        except Exception:  # never the node's problem: its peers fall back to their backoff
            log.exception("hellos to peers failed")
        finally:
            self._channels.close()
            self.done.set()

    def _greet(self, member: Member) -> None:
        stub = xgrpc.ExchangeStub(self._channels.channel_for(member.endpoint))
        result = "not-sent"
        for attempt in range(self._attempts):
            if self._stop.is_set():
                break
            hello = sign_hello(
                self._key,
                sender=self._self,
                recipient=member.id,
                signed_at=self._clock(),
                manifest_epoch=self._manifest().epoch,
            )
            try:
                stub.Hello(hello, timeout=self._deadline)
            except grpc.RpcError as error:
                code = error.code()
                result = code.name
                if code not in _RETRY:
                    log.warning("hello refused by %s: %s", member.id, error.details())
                    break
                self._stop.wait(self._pause * 2**attempt)
                continue
            result = "ok"
            break
        if self._metrics is not None:
            self._metrics.hellos_sent.labels(member.id, result).inc()
        if result != "ok":
            log.info("no hello to %s (%s): it will hear from us on delivery", member.id, result)
