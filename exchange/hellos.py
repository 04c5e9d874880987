"""Hellos from peers: a verified "I am back" wakes this node's sender to that peer.

Every hello is hostile input (wire/hello.py verifies it). Around that check this module keeps
what a hello must never cost. Every free check comes first — known member, with mTLS the TLS
client is that member (peer_binding.py), addressed to us, signed within the clock skew, with a
key valid then — so a hello that fails one spends nothing. Then the signature; a member may say
hello ``burst`` times at once and then once per ``every_s`` seconds, counted only for hellos
its signature verified, so nobody can spend another member's allowance (a restarting node
sends one per peer, and a few retries only when one was not answered). Hellos whose signature
fails share one allowance of their own (``forged_burst``, one per ``forged_every_s``); when it
is spent, every hello is refused unread (``HelloFlood``, RESOURCE_EXHAUSTED) until it refills,
which bounds the Ed25519 work a forger can cause. Without mTLS a sustained forgery flood can so
delay hellos (peers fall back to their backoff); it cannot spend a member's own allowance.
Buckets exist only for members of the manifest, so memory is bounded by the network's size. A
hello signed no later than the last one taken from its member is a replay
(``HelloReplayed``, checked before the signature too, so a replay flood costs nothing): a hello
is accepted once, and the sender signs a new one for every attempt.

Only a hello that passed everything reaches ``on_hello`` (``Fanout.greeted``); a refused one
wakes nobody. Counted in the metrics: received (by member) and refused (by error code — never
by the claimed sender, which a forger chooses).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from auth.errors import SignatureInvalid
from auth.manifest import Manifest
from common.clock import Clock
from exchange.errors import HelloFlood, HelloReplayed, error_code
from exchange.ops.metrics import Metrics
from exchange.peer_binding import check_peer
from exchange.wire.hello import Hello, decode_body, verify_hello, vet_hello
from ihx.v1 import exchange_pb2 as xpb

log = logging.getLogger(__name__)


class _Bucket:
    """A token bucket: ``burst`` at once, then one per ``every`` seconds."""

    __slots__ = ("at", "burst", "every", "tokens")

    def __init__(self, tokens: float, burst: float, every: float, at: float) -> None:
        self.tokens = tokens
        self.burst = burst
        self.every = every
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
        forged_burst: int = 32,
        forged_every_s: float = 1.0,
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
        self._burst_forged = float(forged_burst)
        self._every_forged = forged_every_s
        self._forged = _Bucket(self._burst_forged, self._burst_forged, forged_every_s, 0.0)
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
        # Every free check first: known member (with mTLS, the TLS client is that member),
        # addressed to us, signed within the skew, with a key valid then. A hello refused here
        # costs nobody anything.
        if self._bind_peers:
            check_peer(manifest, body.sender, peer_certificate)
        hello = vet_hello(
            body, manifest=manifest, self_member=self._self, now=now, max_skew=self._max_skew
        )
        with self._lock:
            self._check_replay(hello)  # free too: a replay, or a forgery, either way refused
        self._verify(signed, hello, manifest, now.timestamp())
        with self._lock:
            self._check_replay(hello)  # again: another may have been taken meanwhile
            # Only now, signed by its member, may a hello spend that member's allowance.
            if not _spend(self._bucket(hello.sender, now.timestamp()), now.timestamp()):
                raise HelloFlood(
                    f"more than {int(self._burst)} hellos from {hello.sender} within "
                    f"{self._burst * self._every:g} s; one every {self._every:g} s after that"
                )
            self._last[hello.sender] = hello.signed_at
        return hello.sender

    def _check_replay(self, hello: Hello) -> None:
        """``HelloReplayed`` unless ``hello`` is newer than the last taken (lock held)."""
        last = self._last.get(hello.sender)
        if last is not None and hello.signed_at <= last:
            raise HelloReplayed(
                f"hello from {hello.sender} signed at {hello.signed_at.isoformat()}, not "
                f"after the last one taken ({last.isoformat()})"
            )

    def _verify(self, signed: xpb.SignedHello, hello: Hello, manifest: Manifest, at: float) -> None:
        """The signature, unless forgeries have spent their shared allowance (``HelloFlood``,
        the signature unread); a hello whose signature fails spends one of it."""
        with self._lock:
            if not _refill(self._forged, at).tokens >= 1.0:
                raise HelloFlood(
                    f"more than {int(self._burst_forged)} hellos with a bad signature within "
                    f"{self._burst_forged * self._every_forged:g} s; hellos are refused unread "
                    "until that allowance refills"
                )
        try:
            verify_hello(signed, hello, manifest)
        except SignatureInvalid:
            with self._lock:
                self._forged.tokens = max(0.0, self._forged.tokens - 1.0)
            raise

    def _bucket(self, member: str, at: float) -> _Bucket:
        """``member``'s bucket (lock held); full when first made."""
        bucket = self._buckets.get(member)
        if bucket is None:
            bucket = self._buckets[member] = _Bucket(self._burst, self._burst, self._every, at)
        return bucket


def _refill(bucket: _Bucket, at: float) -> _Bucket:
    bucket.tokens = min(bucket.burst, bucket.tokens + max(0.0, at - bucket.at) / bucket.every)
    bucket.at = at
    return bucket


def _spend(bucket: _Bucket, at: float) -> bool:
    """Take one token from ``bucket`` if it has one (lock held)."""
    if _refill(bucket, at).tokens < 1.0:
        return False
    bucket.tokens -= 1.0
    return True
