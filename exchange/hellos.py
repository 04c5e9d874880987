"""Hellos from peers: a verified "I am back" wakes this node's sender to that peer.

Every hello is hostile input (wire/hello.py verifies it). Around that check this module keeps
what a hello must never cost: a member may say hello ``burst`` times at once and then once per
``every_s`` seconds (a restarting node sends one per peer, and a few retries only when one was
not answered); more are refused unread with ``HelloFlood`` (RESOURCE_EXHAUSTED) *before* the
signature is verified, so a flood costs no Ed25519 work. Buckets exist only for members of the
manifest (an unknown sender is refused before one is made), so memory is bounded by the
network's size. With mTLS the TLS client must be the member the hello names (peer_binding.py)
— checked before the bucket, so nobody can spend another member's hellos. A hello signed no
later than the last one taken from its member is a replay (``HelloReplayed``): a hello is
accepted once, and the sender signs a new one for every attempt.

Only a hello that passed everything reaches ``on_hello`` (``Fanout.greeted``); a refused one
wakes nobody. Counted in the metrics: received (by member) and refused (by error code — never
by the claimed sender, which a forger chooses).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from auth.manifest import Manifest
from common.clock import Clock
from exchange.errors import HelloFlood, HelloReplayed, error_code
from exchange.ops.metrics import Metrics
from exchange.peer_binding import check_peer
from exchange.wire.hello import decode_body, open_hello
from ihx.v1 import exchange_pb2 as xpb

log = logging.getLogger(__name__)


class _Bucket:
    """A token bucket: ``burst`` at once, then one per ``every_s`` seconds."""

    __slots__ = ("at", "tokens")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens
        self.at = at


class HelloDesk:
    """Takes peers' hellos: verified, bounded per member, accepted once each."""

    def __init__(
        self,
        *,
        self_member: str,
        manifest: Callable[[], Manifest],
        clock: Clock,
        max_skew: timedelta,
        on_hello: Callable[[str], None],
        bind_peers: bool = False,
        metrics: Metrics | None = None,
        burst: int = 5,
        every_s: float = 6.0,
    ) -> None:
        self._self = self_member
        self._manifest = manifest
        self._clock = clock
        self._max_skew = max_skew
        self._on_hello = on_hello
        self._bind_peers = bind_peers
        self._metrics = metrics
        self._burst = float(burst)
        self._every = every_s
        self._buckets: dict[str, _Bucket] = {}
        self._last: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def take(self, signed: xpb.SignedHello, peer_certificate: bytes | None) -> xpb.HelloAck:
        """Verify ``signed`` and wake our sender to its member; raise a typed error if refused."""
        try:
            sender = self._take(signed, peer_certificate)
        except Exception as error:
            if self._metrics is not None:
                self._metrics.hellos_refused.labels(error_code(error)).inc()
            raise
        if self._metrics is not None:
            self._metrics.hellos_received.labels(sender).inc()
        log.info("hello", extra={"peer": sender})
        self._on_hello(sender)
        return xpb.HelloAck(member=self._self)

    def _take(self, signed: xpb.SignedHello, peer_certificate: bytes | None) -> str:
        body = decode_body(signed)
        manifest = self._manifest()
        now = self._clock()
        # Known member (UnknownMember otherwise) and, with mTLS, the TLS client is that member.
        if self._bind_peers:
            check_peer(manifest, body.sender, peer_certificate)
        else:
            manifest.member(body.sender)
        self._spend(body.sender, now)
        hello = open_hello(
            signed,
            body,
            manifest=manifest,
            self_member=self._self,
            now=now,
            max_skew=self._max_skew,
        )
        with self._lock:
            last = self._last.get(hello.sender)
            if last is not None and hello.signed_at <= last:
                raise HelloReplayed(
                    f"hello from {hello.sender} signed at {hello.signed_at.isoformat()}, not "
                    f"after the last one taken ({last.isoformat()})"
                )
            self._last[hello.sender] = hello.signed_at
        return hello.sender

    def _spend(self, member: str, now: datetime) -> None:
        """Take one hello from ``member``'s bucket, or refuse with ``HelloFlood``."""
        at = now.timestamp()
        with self._lock:
            bucket = self._buckets.setdefault(member, _Bucket(self._burst, at))
            bucket.tokens = min(self._burst, bucket.tokens + max(0.0, at - bucket.at) / self._every)
            bucket.at = at
            if bucket.tokens < 1.0:
                raise HelloFlood(
                    f"more than {int(self._burst)} hellos from {member} within "
                    f"{self._burst * self._every:g} s; one every {self._every:g} s after that"
                )
            bucket.tokens -= 1.0
