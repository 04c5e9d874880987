"""Fan-out: one sender per peer member, the channels they share, and routing wakes to them.

The node holds one ``Fanout`` (Synapse's FederationSender to the per-peer queues of
sender.py). ``ensure(manifest)`` creates a ``PeerSender`` for every member other than this node
that has none yet — at start and whenever a newer manifest adds members — and starts it unless
the node is stopping; a member dropped from the manifest keeps its sender, which simply finds
nothing to send. ``seal_early`` (intake is queuing reports, in its transaction: the senders
seal what they may in it and, after COMMIT, wake themselves unless they sealed everything),
``wake`` (rows were queued and not sealed: case events, transfers), ``heard_from`` (the
receiver verified an envelope from the peer) and ``greeted`` (the peer's verified hello: it
has just started) go to that peer's sender, if there is one.

Channels are pooled by endpoint. ``channel_for(endpoint, fresh=True)`` replaces a channel to a
peer found unreachable with a new, idle one, so that our backoff alone decides when the peer is
dialled again (see ``PeerSender._drop_channel``). Channels use mTLS when the node has TLS.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable, Mapping

import grpc
from sqlalchemy import Engine

from auth.keys import SigningKey
from auth.manifest import Manifest
from common.clock import Clock
from exchange.delivery.backoff import Wait, event_wait
from exchange.delivery.leases import Leases
from exchange.delivery.sender import PeerSender
from exchange.ops.metrics import Metrics
from exchange.settings import ExchangeTuning
from exchange.store.writer import Tx, Writer


def channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    # Keepalive finds a dead peer within ~40 s on an idle stream; the server permits our pings.
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        # Each channel its own connections: a fresh channel (after the peer was unreachable)
        # must not inherit a shared subchannel's reconnect backoff.
        ("grpc.use_local_subchannel_pool", 1),
    ]


class Channels:
    """The node's client channels to its peers, one per endpoint."""

    def __init__(self, max_message_bytes: int, tls: tuple[bytes, bytes, bytes] | None) -> None:
        self._options = channel_options(max_message_bytes)
        self._tls = tls
        self._channels: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()

    def channel_for(self, endpoint: str, fresh: bool = False) -> grpc.Channel:
        """The channel to ``endpoint``; ``fresh`` replaces it (see ``PeerSender``)."""
        with self._lock:
            channel = self._channels.get(endpoint)
            if channel is not None and fresh:
                channel.close()
                channel = None
            if channel is None:
                channel = self._open(endpoint)
                self._channels[endpoint] = channel
            return channel

    def _open(self, endpoint: str) -> grpc.Channel:
        if self._tls is None:
            return grpc.insecure_channel(endpoint, options=self._options)
        cert, key, ca = self._tls
        credentials = grpc.ssl_channel_credentials(ca, key, cert)
        return grpc.secure_channel(endpoint, credentials, options=self._options)

    def close(self) -> None:
        with self._lock:
            channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            channel.close()


class Fanout:
    """The senders of one node, by peer member id."""

    def __init__(
        self,
        *,
        self_member: str,
        key: SigningKey,
        manifest: Callable[[], Manifest],
        engine: Engine,
        writer: Writer,
        clock: Clock,
        rng: random.Random,
        tuning: ExchangeTuning,
        tls: tuple[bytes, bytes, bytes] | None = None,
        metrics: Metrics | None = None,
        leases: Leases | None = None,
        wait: Wait = event_wait,
    ) -> None:
        self._self = self_member
        self._wait = wait
        self._key = key
        self._manifest = manifest
        self._engine = engine
        self._writer = writer
        self._clock = clock
        self._rng = rng
        self._tuning = tuning
        self._metrics = metrics
        self._leases = leases
        self.channels = Channels(tuning.max_message_bytes, tls)
        self._senders: dict[str, PeerSender] = {}
        self._lock = threading.Lock()
        self._stopping = False

    @property
    def senders(self) -> Mapping[str, PeerSender]:
        return self._senders

    def ensure(self, manifest: Manifest) -> None:
        """A sender, started, for every peer member of ``manifest`` that has none yet."""
        with self._lock:
            for member in manifest.members:
                if member.id == self._self or member.id in self._senders:
                    continue
                sender = self._make(member.id)
                self._senders[member.id] = sender
                if not self._stopping:
                    sender.start()

    def _make(self, peer: str) -> PeerSender:
        return PeerSender(
            self_member=self._self,
            peer=peer,
            key=self._key,
            manifest=self._manifest,
            engine=self._engine,
            writer=self._writer,
            clock=self._clock,
            rng=random.Random(self._rng.random()),
            channel_for=self.channels.channel_for,
            tuning=self._tuning,
            metrics=self._metrics,
            leases=self._leases,
            wait=self._wait,
        )

    def wake(self, members: Iterable[str]) -> None:
        """Reports were queued for ``members``: their senders look now, not at the next poll."""
        for m in members:
            sender = self._senders.get(m)
            if sender is not None:
                sender.wake()

    def seal_early(self, tx: Tx, members: Iterable[str]) -> None:
        """Reports were queued for ``members`` in ``tx``: senders with room seal them in it,
        and each wakes after COMMIT unless it left nothing unbatched (``PeerSender.seal_early``)."""
        for m in members:
            sender = self._senders.get(m)
            if sender is not None:
                sender.seal_early(tx)

    def heard_from(self, member: str) -> None:
        sender = self._senders.get(member)
        if sender is not None:
            sender.heard_from()

    def greeted(self, member: str) -> None:
        """``member`` said hello: its sender, if failing, retries now (``PeerSender.greeted``)."""
        sender = self._senders.get(member)
        if sender is not None:
            sender.greeted()

    def stop_senders(self) -> None:
        """Stop every sender, each after its in-flight batch; no new one starts after this."""
        with self._lock:
            self._stopping = True
            senders = list(self._senders.values())
        for sender in senders:
            sender.stop()

    def close_channels(self) -> None:
        self.channels.close()
