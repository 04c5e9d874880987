"""The composition root: one function of settings builds a whole node by constructor injection.

Nothing here is global. The clock, the resolver and the random source are parameters (tests and
the demo pass their own); everything else is built from ``Settings``: the engine (refusing a
schema that is not at head), the signing key (which must be one of this member's keys in the
manifest), the manifest store, the GeoIP reader, the tracer, the single writer, intake, the
receiver, one sender per peer, partners and checkpoints, the token verifier behind one access
interceptor, metrics, and the gRPC server (mTLS unless explicitly plaintext on loopback) with
health checking and reflection. Health reports SERVING only once the database, keys and
manifest are loaded and the writer runs; from then on a monitor (health_monitor.py) turns it
NOT_SERVING while no worker is free or the database takes no write, and back on recovery.

The server's worker pool is sized from the admission budgets (admission.py): an admission
interceptor, first in the chain, gives each kind of call its own share, so exchange streams can
never starve intake, partners or health.

Shutdown is graceful within a deadline: health turns NOT_SERVING, the server stops taking
calls and lets in-flight ones finish, senders stop after their in-flight batch, then the writer
drains its queue and the database closes.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterable
from concurrent import futures
from datetime import UTC, datetime, timedelta

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from auth.errors import TrustConfigError
from auth.keys import SigningKey
from auth.manifest import Manifest
from auth.tls import read_pem
from auth.tokens import Scope, TokenIssuer, TokenPolicy, TokenVerifier, load_jwks_issuers
from exchange.checkpoints import Checkpointer
from exchange.delivery.leases import Leases
from exchange.delivery.sender import PeerSender, SenderSettings
from exchange.domain import Classification
from exchange.edge.access import AccessInterceptor
from exchange.edge.admission import Admission, AdmissionInterceptor, Budgets
from exchange.edge.decoding import DecodeGuard
from exchange.edge.log_service import RoutingLogServicer
from exchange.edge.partner_service import PartnerServicer
from exchange.edge.services import ExchangeServicer, IntakeServicer, node_info
from exchange.errors import ConfigError
from exchange.intake import Intake
from exchange.manifest_store import ManifestStore, trust_anchors
from exchange.ops.health import HealthMonitor
from exchange.ops.metrics import Metrics
from exchange.partners import PartnerRule, Partners
from exchange.receiver import Receiver
from exchange.settings import Settings
from exchange.store.engine import open_engine
from exchange.store.migrate import require_head
from exchange.store.writer import Writer
from exchange.wire.envelope import Limits
from ihx.v1 import exchange_pb2, intake_pb2, partner_pb2, routing_log_pb2
from ihx.v1 import exchange_pb2_grpc as xgrpc
from ihx.v1 import intake_pb2_grpc as igrpc
from ihx.v1 import partner_pb2_grpc as pgrpc
from ihx.v1 import routing_log_pb2_grpc as lgrpc
from routing.geoip import GeoIp
from routing.resolver import DnsResolver, Resolver, StaticResolver
from routing.trace import Tracer

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


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


def server_options(max_message_bytes: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.max_concurrent_streams", 256),
        # Never share a port with another process: two nodes would split the connections.
        ("grpc.so_reuseport", 0),
    ]


def build_resolver(settings: Settings) -> Resolver:
    if settings.resolver_kind == "static":
        return StaticResolver(settings.static_hosts)
    return DnsResolver(nameservers=list(settings.nameservers) or None)


class Node:
    """One running ihx node."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utc_now,
        resolver: Resolver | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.member = settings.member
        self._clock = clock
        self._rng = rng or random.Random()
        tuning = settings.exchange
        skew = timedelta(seconds=tuning.max_clock_skew_s)
        self.limits = Limits(
            max_payloads=tuning.max_payloads,
            max_envelope_bytes=tuning.max_message_bytes,
            max_clock_skew=skew,
        )
        self.sender_settings = SenderSettings(
            max_batch=min(tuning.max_batch, tuning.max_payloads),
            linger=tuning.linger_ms / 1000,
            window=tuning.window,
            receipt_timeout=tuning.receipt_timeout_s,
            stream_lifetime=tuning.stream_lifetime_s,
            backoff_initial=tuning.backoff_initial_s,
            backoff_max=tuning.backoff_max_s,
            max_batch_bytes=tuning.max_message_bytes,
            max_clock_skew=tuning.max_clock_skew_s,
            stream_idle=tuning.stream_idle_s,
        )
        self.engine = open_engine(settings.database_url)
        require_head(self.engine)
        self.key = SigningKey.load(settings.signing_key)
        self.manifests = ManifestStore(
            settings.manifest_path, trust_anchors(settings.trusted_keys), clock, max_skew=skew
        )
        self._check_identity(self.manifests.current())
        self.metrics = Metrics()
        self.tokens = TokenIssuer(
            self.key,
            settings.token_issuer,
            self.member,
            clock,
            max_lifetime=timedelta(seconds=settings.max_token_lifetime_s),
        )
        self.verifier = TokenVerifier(self._token_policy(), clock)
        self._tls = self._load_tls()
        self.geoip = GeoIp(settings.country_db, settings.asn_db)
        self.tracer = Tracer(resolver or build_resolver(settings), self.geoip, clock)
        self._monitor: HealthMonitor | None = None
        self.writer = Writer(self.engine, on_failure=self._write_failed)
        # PostgreSQL may be shared by several replicas of this node: one streams to each peer.
        self.leases = Leases(self.writer, ttl=tuning.lease_s) if self.writer.shared_log else None
        self.partners = Partners(
            self_member=self.member,
            rules=[
                PartnerRule(
                    r.partner,
                    r.countries,
                    frozenset(Classification(c) for c in r.classifications),
                )
                for r in settings.partner_rules
            ],
            visibility_timeout=timedelta(seconds=settings.visibility_timeout_s),
            writer=self.writer,
            manifest=self.manifests.current,
            clock=clock,
        )
        self.checkpointer = Checkpointer(
            member=self.member,
            key=self.key,
            writer=self.writer,
            clock=clock,
            every=settings.checkpoint_every,
            interval=settings.checkpoint_interval_s,
        )
        self.intake = Intake(
            self_member=self.member,
            tracer=self.tracer,
            manifest=self.manifests.current,
            writer=self.writer,
            clock=clock,
            wake=self.wake,
            on_cases=self.partners.assign,
            metrics=self.metrics,
        )
        self.receiver = Receiver(
            self_member=self.member,
            key=self.key,
            manifest=self.manifests.current,
            writer=self.writer,
            clock=clock,
            limits=self.limits,
            on_cases=self.partners.assign,
            bind_peers=self._tls is not None,
            metrics=self.metrics,
            on_heard=self._heard_from,
            locate=self.tracer.place,
        )
        self.senders: dict[str, PeerSender] = {}
        self._senders_lock = threading.Lock()
        self._channels: dict[str, grpc.Channel] = {}
        self._channels_lock = threading.Lock()
        self._stop = threading.Event()
        self._server: grpc.Server | None = None
        self._health_server: grpc.Server | None = None
        self._health = health.HealthServicer()
        self.port = 0
        self.metrics_port: int | None = None
        self.health_port: int | None = None
        self.admission = Admission(Budgets.from_tuning(tuning), metrics=self.metrics)
        self.access = AccessInterceptor(self.verifier, self.metrics, self.admission)
        self.manifests.listeners.append(self._on_manifest)

    def _check_identity(self, manifest: Manifest) -> None:
        member = manifest.find_member(self.member)
        if member is None:
            raise ConfigError(f"node.member {self.member!r} is not a member of the manifest")
        if member.key(self.key.key_id) is None:
            raise ConfigError(
                f"the signing key {self.key.key_id} is not one of {self.member}'s keys "
                "in the manifest"
            )

    def _token_policy(self) -> TokenPolicy:
        issuers = {self.tokens.trusted.issuer: self.tokens.trusted}
        if self.settings.jwks_path is not None:
            external = load_jwks_issuers(self.settings.jwks_path)
            clash = set(external) & set(issuers)
            if clash:
                raise TrustConfigError(
                    f"{self.settings.jwks_path}: issuer {sorted(clash)[0]!r} is this node's own"
                )
            issuers.update(external)
        return TokenPolicy(
            audience=self.member,
            issuers=issuers,
            leeway=timedelta(seconds=self.settings.token_leeway_s),
            max_lifetime=timedelta(seconds=self.settings.max_token_lifetime_s),
        )

    def _load_tls(self) -> tuple[bytes, bytes, bytes] | None:
        s = self.settings
        if s.tls_cert is None or s.tls_key is None or s.tls_ca is None:
            return None
        return (
            read_pem(s.tls_cert, "TLS certificate"),
            read_pem(s.tls_key, "TLS key"),
            read_pem(s.tls_ca, "TLS CA certificate"),
        )

    def issue_token(self, subject: str, *scopes: Scope, ttl: float = 900.0) -> str:
        """A token from this node's own issuer (for local tools, tests and the demo)."""
        return self.tokens.issue(subject, scopes, ttl=timedelta(seconds=ttl))

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self.writer.start()
        max_bytes = self.settings.exchange.max_message_bytes
        workers = self.admission.budgets.workers
        # Threads that only wait are cheap: the pool holds every budget at once, so no admitted
        # call ever queues for a worker (admission.py). gRPC's own cap is a last resort only.
        pool = futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ihx-rpc")
        server = grpc.server(
            pool,
            interceptors=[AdmissionInterceptor(self.admission), self.access, DecodeGuard()],
            options=server_options(max_bytes),
            maximum_concurrent_rpcs=4 * workers,
        )
        self.admission.start()
        exchange = ExchangeServicer(self.receiver, self.member, self._node_info)
        self._exchange_servicer = exchange
        xgrpc.add_ExchangeServicer_to_server(exchange, server)
        igrpc.add_IntakeServicer_to_server(IntakeServicer(self.intake), server)
        pgrpc.add_PartnerServicer_to_server(PartnerServicer(self.partners), server)
        lgrpc.add_RoutingLogServicer_to_server(
            RoutingLogServicer(self.engine, self.member, self._clock), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        names = (
            exchange_pb2.DESCRIPTOR.services_by_name["Exchange"].full_name,
            intake_pb2.DESCRIPTOR.services_by_name["Intake"].full_name,
            partner_pb2.DESCRIPTOR.services_by_name["Partner"].full_name,
            routing_log_pb2.DESCRIPTOR.services_by_name["RoutingLog"].full_name,
            health.SERVICE_NAME,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(names, server)
        if self._tls is not None:
            cert, key, ca = self._tls
            credentials = grpc.ssl_server_credentials(
                [(key, cert)], root_certificates=ca, require_client_auth=True
            )
            self.port = server.add_secure_port(self.settings.listen, credentials)
        else:
            self.port = server.add_insecure_port(self.settings.listen)
        if self.port == 0:
            raise ConfigError(f"cannot listen on {self.settings.listen}")
        server.start()
        self._server = server
        if self.settings.health_listen:
            self._start_health_server(self.settings.health_listen)
        if self.settings.metrics_listen:
            self.metrics.watch_outbox(self.engine, self._clock)
            self.metrics_port = self.metrics.serve(self.settings.metrics_listen)
        self._ensure_senders(self.manifests.current())
        if self.leases is not None:
            self.leases.start()
        self.checkpointer.start()
        threading.Thread(target=self._watch_manifest, name="ihx-manifest", daemon=True).start()
        self._health.set("", health_pb2.HealthCheckResponse.SERVING)
        for name in names[:4]:
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._monitor = HealthMonitor(
            self._health,
            names[:4],
            writer=self.writer,
            pool=pool,
            interval=self.settings.exchange.health_probe_s,
            metrics=self.metrics,
        )
        self._monitor.start()
        log.info("node %s serving on port %d", self.member, self.port)

    def _start_health_server(self, listen: str) -> None:
        # Plaintext and health-only: Kubernetes' gRPC probes cannot present a client certificate.
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="ihx-hc"))
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        self.health_port = server.add_insecure_port(listen)
        server.start()
        self._health_server = server

    def stop(self, grace: float = 5.0) -> None:
        """Stop within about ``grace`` seconds plus one receipt timeout at worst."""
        self._stop.set()
        if self._monitor is not None:
            self._monitor.stop()
        self._health.enter_graceful_shutdown()
        if self._server is not None:
            # Peers keep idle streams open; end them after their in-flight envelopes so the
            # grace period is spent on real work, not on waiting for streams that never end.
            self._exchange_servicer.close_streams()
            self.admission.end_probation()  # those waiting for a first envelope, too
            self._server.stop(grace).wait()
            self.admission.stop()
        for sender in list(self.senders.values()):
            sender.stop()
        if self.leases is not None:
            self.leases.stop()  # hand our peers to the other replicas now, not at expiry
        for channel in self._channels.values():
            channel.close()
        self.checkpointer.stop()
        self.writer.stop()
        if self._health_server is not None:
            self._health_server.stop(0)
        self.metrics.stop()
        self.geoip.close()
        self.engine.dispose()

    @property
    def address(self) -> str:
        host = self.settings.listen.rpartition(":")[0]
        return f"{host}:{self.port}"

    @property
    def health_monitor(self) -> HealthMonitor | None:
        return self._monitor

    def _write_failed(self, reason: str) -> None:
        self.metrics.write_failures.inc()
        if self._monitor is not None:
            self._monitor.write_failed(reason)

    # -- peers --------------------------------------------------------------------------------

    def wake(self, members: Iterable[str]) -> None:
        for m in members:
            sender = self.senders.get(m)
            if sender is not None:
                sender.wake()

    def _heard_from(self, member: str) -> None:
        sender = self.senders.get(member)
        if sender is not None:
            sender.heard_from()

    def _channel_for(self, endpoint: str, fresh: bool = False) -> grpc.Channel:
        """The channel to ``endpoint``; ``fresh`` replaces it (see ``PeerSender``)."""
        with self._channels_lock:
            channel = self._channels.get(endpoint)
            if channel is not None and fresh:
                channel.close()
                channel = None
            if channel is None:
                options = channel_options(self.settings.exchange.max_message_bytes)
                if self._tls is not None:
                    cert, key, ca = self._tls
                    credentials = grpc.ssl_channel_credentials(ca, key, cert)
                    channel = grpc.secure_channel(endpoint, credentials, options=options)
                else:
                    channel = grpc.insecure_channel(endpoint, options=options)
                self._channels[endpoint] = channel
            return channel

    def _ensure_senders(self, manifest: Manifest) -> None:
        with self._senders_lock:
            for member in manifest.members:
                if member.id == self.member or member.id in self.senders:
                    continue
                sender = PeerSender(
                    self_member=self.member,
                    peer=member.id,
                    key=self.key,
                    manifest=self.manifests.current,
                    engine=self.engine,
                    writer=self.writer,
                    clock=self._clock,
                    rng=random.Random(self._rng.random()),
                    channel_for=self._channel_for,
                    settings=self.sender_settings,
                    metrics=self.metrics,
                    leases=self.leases,
                )
                self.senders[member.id] = sender
                if not self._stop.is_set():
                    sender.start()

    def _on_manifest(self, manifest: Manifest) -> None:
        self._ensure_senders(manifest)

    def _watch_manifest(self) -> None:
        while not self._stop.wait(self.settings.exchange.manifest_poll_s):
            try:
                self.manifests.refresh()
            except Exception:
                log.exception("manifest refresh failed")

    def _node_info(self) -> exchange_pb2.NodeInfo:
        return node_info(
            self.member, self.manifests.current().epoch, [self.key.key_id], self.limits
        )
