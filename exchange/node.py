"""The composition root: one function of settings builds a whole node by constructor injection.

Nothing here is global. The clock, the resolver and the random source are parameters (tests and the
demo pass their own); everything else is built from ``Settings``: the engine (refusing a schema that
is not at head), the signing key (which must be one of this member's keys in the manifest), the
manifest store, the GeoIP reader, the tracer, the single writer (on SQLite with the log's
checkpoints on a thread of their own: store/wal.py), intake, the receiver, the fan-out
of senders (one per peer: delivery/fanout.py) and the hellos (ours to every peer once the server
listens: delivery/greeter.py; theirs: hellos.py), partners and checkpoints, the token verifier
behind one access interceptor, metrics, and the gRPC server (mTLS unless explicitly plaintext on
loopback) with health checking and reflection. Health reports SERVING only once the database, keys
and manifest are loaded and the writer runs; from then on a monitor (health_monitor.py) turns it
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
import socket
import ssl
import threading
from collections.abc import Iterable, Mapping
from concurrent import futures
from datetime import datetime, timedelta

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy.exc import SQLAlchemyError

from auth.errors import AuthError
from auth.manifest import Manifest
from auth.tls import read_pem
from auth.tokens import Scope
from common.clock import Clock, system_clock
from common.periodic import Periodic
from exchange.checkpoints import Checkpointer
from exchange.delivery.backoff import Wait, event_wait
from exchange.delivery.fanout import Fanout
from exchange.delivery.greeter import Greeter
from exchange.delivery.leases import Leases
from exchange.delivery.sender import PeerSender
from exchange.domain import Classification
from exchange.edge.access import AccessInterceptor
from exchange.edge.admission import Admission, AdmissionInterceptor, Budgets
from exchange.edge.call_metrics import CallMetricsInterceptor
from exchange.edge.case_service import CaseServicer
from exchange.edge.decoding import DecodeGuard
from exchange.edge.exchange_service import ExchangeServicer
from exchange.edge.intake_service import IntakeServicer
from exchange.edge.log_service import RoutingLogServicer
from exchange.edge.partner_service import PartnerServicer
from exchange.edge.stats_service import StatisticsServicer
from exchange.errors import ConfigError
from exchange.hellos import HelloDesk
from exchange.intake import Intake
from exchange.lifecycle.feed import ChangeFeed
from exchange.lifecycle.inbound import Inbound
from exchange.lifecycle.record import Recorder
from exchange.lifecycle.retention import Retention
from exchange.lifecycle.views import CaseViews
from exchange.lifecycle.work import CaseWork
from exchange.local import LocalNode, open_local
from exchange.ops.gauges import GaugeSources
from exchange.ops.health import HealthMonitor
from exchange.ops.listen import check_bindable, refused
from exchange.ops.metrics import Metrics
from exchange.partners import PartnerRule, Partners
from exchange.pdq.case_near import CaseNear
from exchange.pdq.matcher import follower_name
from exchange.receiver import Receiver
from exchange.settings import ExchangeTuning, Settings
from exchange.stats.figures import NodeFigures
from exchange.stats.fold import Folder
from exchange.store.wal import BACKSTOP_PAGES, WalCheckpointer
from exchange.store.writer import Tx, Writer
from exchange.takedown.directory import DirectoryFile
from exchange.takedown.dispatch import CheckPool
from exchange.takedown.holds import Holds
from exchange.takedown.mailer import Mailer, Relay
from exchange.takedown.notices import Notifier
from exchange.takedown.probe import Prober, Route, direct
from exchange.takedown.render import Sender
from exchange.takedown.scheduler import Rechecker, policy_from
from exchange.takedown.views import TakedownViews
from exchange.token_trust import ManifestVerifier
from exchange.transfer.arrivals import Arrivals
from exchange.transfer.outgoing import Outgoing, retracer
from exchange.wire.codec import node_info
from exchange.wire.envelope import Limits
from ihx.v1 import cases_pb2, exchange_pb2, intake_pb2, partner_pb2, routing_log_pb2, statistics_pb2
from ihx.v1 import cases_pb2_grpc as cgrpc
from ihx.v1 import exchange_pb2_grpc as xgrpc
from ihx.v1 import intake_pb2_grpc as igrpc
from ihx.v1 import partner_pb2_grpc as pgrpc
from ihx.v1 import routing_log_pb2_grpc as lgrpc
from ihx.v1 import statistics_pb2_grpc as sgrpc
from routing.geoip import GeoIp
from routing.resolver import DnsResolver, Resolver, StaticResolver
from routing.trace import Tracer

log = logging.getLogger(__name__)


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


def build_node(
    settings: Settings,
    *,
    clock: Clock = system_clock,
    resolver: Resolver | None = None,
    rng: random.Random | None = None,
    route: Route = direct,
    recheck_tls: ssl.SSLContext | None = None,
    notice_tls: ssl.SSLContext | None = None,
    wait: Wait = event_wait,
) -> Node:
    """The server of ``settings`` (not started): the one way a node is built from settings.

    ``clock``, ``resolver``, ``rng`` and the network edges of takedown (``route``, where a
    re-check's traced address is connected to; ``recheck_tls``, its TLS trust; ``notice_tls``,
    the TLS trust of the notices' SMTP relay — default: the system's CAs) and the senders'
    backoff ``wait`` (a test fast-forwards it) are the only parts not built from the settings
    (tests, benches and the demo pass their own); ``open_local`` (exchange/local.py) is the same
    without a server.
    """
    return Node(
        settings,
        clock=clock,
        resolver=resolver,
        rng=rng,
        route=route,
        recheck_tls=recheck_tls,
        notice_tls=notice_tls,
        wait=wait,
    )


def _limits(tuning: ExchangeTuning) -> Limits:
    return Limits(
        max_payloads=tuning.max_payloads,
        max_envelope_bytes=tuning.max_message_bytes,
        max_clock_skew=timedelta(seconds=tuning.max_clock_skew_s),
    )


class Node:
    """One running ihx node (built by ``build_node``)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = system_clock,
        resolver: Resolver | None = None,
        rng: random.Random | None = None,
        route: Route = direct,
        recheck_tls: ssl.SSLContext | None = None,
        notice_tls: ssl.SSLContext | None = None,
        wait: Wait = event_wait,
    ) -> None:
        self.settings = settings
        self._wait = wait
        self._route = route
        self._recheck_tls = recheck_tls
        self.member = settings.member
        self._clock = clock
        self._rng = rng or random.Random()
        self.limits = _limits(settings.exchange)
        # The node's files and database, opened as every CLI command opens them; the node owns
        # the engine from here on (stop() disposes it).
        local = open_local(settings, clock=clock)
        self.engine = local.engine
        self.key = local.key
        self.manifests = local.manifests
        self._check_identity(self.manifests.current())
        self.metrics = Metrics()
        self._build_security(local)
        self.geoip = GeoIp(settings.country_db, settings.asn_db)
        self.tracer = Tracer(resolver or build_resolver(settings), self.geoip, clock)
        self._monitor: HealthMonitor | None = None
        self._build_delivery()
        self._build_partners()
        self.pdq = local.pdq_matcher(
            follower_name("node", socket.gethostname(), self._rng), owns_file=True
        )
        log.info("PDQ index %s", self.pdq.open())
        self._pdq_loop = Periodic(
            "ihx-pdq-trim", settings.pdq.trim_interval_s, lambda: self.pdq.trim(self.writer)
        )
        self._build_lifecycle()
        self._build_takedown()
        self._build_stats()
        self.notifier = self._build_notices(notice_tls)
        self._build_intake()
        self._build_server_state()
        self.manifests.listeners.append(self._on_manifest)

    def _build_security(self, local: LocalNode) -> None:
        """The token issuer and verifier, and the TLS material (``None``: plaintext)."""
        self.tokens = local.token_issuer()
        self.verifier = ManifestVerifier(
            self.settings, self.member, self.tokens.trusted, self.manifests.current(), self._clock
        )
        self._tls = self._load_tls()

    def _build_delivery(self) -> None:
        """The single writer (on SQLite with the log's checkpoints on a thread of their own),
        the peer leases (shared database only) and the fan-out."""
        tuning = self.settings.exchange
        sqlite = self.engine.dialect.name == "sqlite"
        self.wal_checkpoints = WalCheckpointer(self.engine) if sqlite else None
        self.writer = Writer(
            self.engine,
            on_failure=self._write_failed,
            on_group=self.metrics.writer_group,
            wal_autocheckpoint=BACKSTOP_PAGES if sqlite else None,
        )
        # PostgreSQL may be shared by several replicas of this node: one streams to each peer.
        self.leases = Leases(self.writer, ttl=tuning.lease_s) if self.writer.shared_log else None
        self.fanout = Fanout(
            self_member=self.member,
            key=self.key,
            manifest=self.manifests.current,
            engine=self.engine,
            writer=self.writer,
            clock=self._clock,
            rng=self._rng,
            tuning=tuning,
            tls=self._tls,
            metrics=self.metrics,
            leases=self.leases,
            wait=self._wait,
        )
        # Hellos: ours to every peer on start, and theirs taken by the Exchange service.
        self.greeter = Greeter(
            self_member=self.member,
            key=self.key,
            manifest=self.manifests.current,
            clock=self._clock,
            max_message_bytes=tuning.max_message_bytes,
            tls=self._tls,
            metrics=self.metrics,
        )
        self.hellos = HelloDesk(
            self_member=self.member,
            manifest=self.manifests.current,
            clock=self._clock,
            max_skew=timedelta(seconds=tuning.max_clock_skew_s),
            on_hello=self.fanout.greeted,
            bind_peers=self._tls is not None,
            metrics=self.metrics,
        )

    def _build_partners(self) -> None:
        """Partners (which cases each receives, and their pulls) and the log's checkpointer."""
        settings = self.settings
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
            clock=self._clock,
        )
        self.checkpointer = Checkpointer(
            member=self.member,
            key=self.key,
            writer=self.writer,
            clock=self._clock,
            every=settings.checkpoint_every,
            interval=settings.checkpoint_interval_s,
        )

    def _build_lifecycle(self) -> None:
        """The case lifecycle: the recorder every step goes through, the analysts' commands,
        members' events arriving, and the feed WatchCases streams wait on."""
        self.case_feed = ChangeFeed()
        self.recorder = Recorder(
            self_member=self.member, wake=self.wake, changed=self.case_feed.notify
        )
        self.case_work = CaseWork(
            self_member=self.member,
            manifest=self.manifests.current,
            writer=self.writer,
            clock=self._clock,
            recorder=self.recorder,
            transfers=Outgoing(self_member=self.member, wake=self.wake),
            retrace=retracer(self.engine, self.tracer),
        )
        self.case_views = CaseViews(
            self_member=self.member,
            engine=self.engine,
            clock=self._clock,
            near=CaseNear(self.pdq, self.engine),
        )
        self.inbound = Inbound(
            self_member=self.member,
            manifest=self.manifests.current,
            work=self.case_work,
            recorder=self.recorder,
        )
        self.retention = Retention(
            self_member=self.member,
            writer=self.writer,
            engine=self.engine,
            clock=self._clock,
            retention_days=self.settings.retention_days,
            check_interval=self.settings.lifecycle.retention_check_s,
        )

    def _build_stats(self) -> None:
        """The node's figures (issue 14): rollups folded in the writer every few seconds and
        before each snapshot, off the intake path."""
        st = self.settings.stats
        folder = Folder(member=self.member, lookback=timedelta(seconds=st.lookback_s))
        self.figures = NodeFigures(
            engine=self.engine,
            member=self.member,
            clock=self._clock,
            writer=self.writer,
            folder=folder,
        )
        self._stats_loop = Periodic("ihx-stats", st.fold_interval_s, self.figures.fold)

    def _build_takedown(self) -> None:
        """Takedown automation at the holder: holds on notices (always: partners may hold)."""
        self.holds = Holds(
            writer=self.writer, engine=self.engine, clock=self._clock, self_member=self.member
        )
        self.takedown_views = TakedownViews(engine=self.engine, clock=self._clock)
        self.rechecker: Rechecker | None = None
        self._recheck_loop: Periodic | None = None
        if self.settings.takedown.enabled:
            self._build_rechecks()

    def _build_rechecks(self) -> None:
        """The re-checks: a prober on the node's tracer, a pool of checks, the scheduler."""
        t = self.settings.takedown
        prober = Prober(
            self.tracer,
            self._clock,
            user_agent=t.user_agent,
            connect_timeout_s=t.connect_timeout_s,
            read_timeout_s=t.read_timeout_s,
            max_redirects=t.max_redirects,
            deadline_s=t.deadline_s,
            route=self._route,
            ssl_context=self._recheck_tls,
        )
        self.check_pool = CheckPool(
            prober.check,
            self._clock,
            concurrency=t.concurrency,
            per_host_concurrency=t.per_host_concurrency,
        )
        self.rechecker = Rechecker(
            self_member=self.member,
            manifest=self.manifests.current,
            writer=self.writer,
            clock=self._clock,
            checks=self.check_pool,
            work=self.case_work,
            policy=policy_from(t, self.settings.notices),
            move_checks=t.move_checks,
            batch=t.batch,
            metrics=self.metrics,
            per_host=4 * t.per_host_concurrency,  # a pass: four rounds of one host at most
        )
        self._recheck_loop = Periodic("ihx-recheck", t.tick_s, self.rechecker.run_once)

    # -- takedown notices (exchange/takedown/notices.py) -------------------------------------

    def _build_notices(self, tls: ssl.SSLContext | None) -> Notifier | None:
        """Notices to hosters' abuse contacts, when ``[notices] enabled``: the directory file
        (which must load now), the relay, the hotline as sender, the notice policy."""
        n = self.settings.notices
        if not n.enabled or n.directory is None:
            return None
        password = n.password.get_secret_value() if n.password is not None else ""
        if n.username and not password:
            raise ConfigError("notices.username is set: give its password in IHX_NOTICES_PASSWORD")
        relay = Relay(
            n.relay_host, n.relay_port, n.starttls, n.username, password, timeout=n.timeout_s
        )
        policy = policy_from(self.settings.takedown, n)
        return Notifier(
            self_member=self.member,
            engine=self.engine,
            writer=self.writer,
            work=self.case_work,
            directory=DirectoryFile(n.directory).current,
            mailer=Mailer(relay, ssl_context=tls),
            sender=Sender(n.hotline, n.from_address, n.reply_to),
            policy=policy,
            clock=self._clock,
            retry_max=timedelta(seconds=n.retry_max_s),
            tick=n.tick_s,
        )

    def _build_intake(self) -> None:
        """Intake (reports from this member's hotline) and the receiver (envelopes from peers)."""
        self.intake = Intake(
            self_member=self.member,
            tracer=self.tracer,
            manifest=self.manifests.current,
            writer=self.writer,
            clock=self._clock,
            wake=self.wake,
            seal_early=self.seal_early,
            on_cases=self._on_cases,
            metrics=self.metrics,
            pdq=self.pdq,
            send_quality=self.settings.pdq.send_quality,
        )
        self.receiver = Receiver(
            self_member=self.member,
            key=self.key,
            manifest=self.manifests.current,
            writer=self.writer,
            clock=self._clock,
            limits=self.limits,
            on_cases=self._on_cases,
            bind_peers=self._tls is not None,
            metrics=self.metrics,
            on_heard=self.fanout.heard_from,
            locate=self.tracer.place,
            inbound=self.inbound,
            send_quality=self.settings.pdq.send_quality,
            arrivals=Arrivals(
                self_member=self.member,
                manifest=self.manifests.current,
                recorder=self.recorder,
                max_skew=self.limits.max_clock_skew,
                locate=self.tracer.place,
                on_cases=self._on_cases,
            ),
        )

    def _on_cases(self, tx: Tx, case_ids: set[str], now: datetime) -> None:
        """Cases opened or merged in ``tx``: partners assigned, late origins caught up."""
        self.partners.assign(tx, case_ids, now)
        self.recorder.catch_up(tx, case_ids, now)

    def _build_server_state(self) -> None:
        """The server's state before ``start``: health, ports, admission and access control."""
        self._stop = threading.Event()
        self._server: grpc.Server | None = None
        self._health_server: grpc.Server | None = None
        self._health = health.HealthServicer()
        self.port = 0
        self.metrics_port: int | None = None
        self.health_port: int | None = None
        self.admission = Admission(
            Budgets.from_tuning(self.settings.exchange), metrics=self.metrics
        )
        self.access = AccessInterceptor(self.verifier, self.metrics, self.admission)

    def _check_identity(self, manifest: Manifest) -> None:
        member = manifest.find_member(self.member)
        if member is None:
            raise ConfigError(f"node.member {self.member!r} is not a member of the manifest")
        if member.key(self.key.key_id) is None:
            raise ConfigError(
                f"the signing key {self.key.key_id} is not one of {self.member}'s keys "
                "in the manifest"
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
        if self.wal_checkpoints is not None:
            self.wal_checkpoints.start()
        server, pool = self._build_server()
        self.admission.start()
        names = self._add_services(server)
        self._listen(server)
        server.start()
        self._server = server
        if self.settings.health_listen:
            self._start_health_server(self.settings.health_listen)
        if self.settings.metrics_listen:
            self._start_metrics(self.settings.metrics_listen)
        self._start_workers()
        self.verifier.start()
        self._start_health(names[:6], pool)
        log.info("node %s serving on port %d", self.member, self.port)

    def _start_metrics(self, listen: str) -> None:
        """The database gauges (read every ``[metrics] refresh_s``) and the HTTP endpoint."""
        sources = GaugeSources(
            engine=self.engine,
            clock=self._clock,
            queues=lambda: {str(q): n for q, n in self.case_views.queue_counts().items()},
            takedown=lambda: self.takedown_views.status().watches,
        )
        self.metrics.watch_database(sources, self.settings.metrics.refresh_s)
        self.metrics_port = self.metrics.serve(listen)

    def _build_server(self) -> tuple[grpc.Server, futures.ThreadPoolExecutor]:
        """The gRPC server (not started) and its worker pool, sized from the admission budgets."""
        workers = self.admission.budgets.workers
        # Threads that only wait are cheap: the pool holds every budget at once, so no admitted
        # call ever queues for a worker (admission.py). gRPC's own cap is a last resort only.
        pool = futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ihx-rpc")
        server = grpc.server(
            pool,
            # Call metrics first: they see every call, also those the others refuse.
            interceptors=[
                CallMetricsInterceptor(self.metrics.calls),
                AdmissionInterceptor(self.admission),
                self.access,
                DecodeGuard(),
            ],
            options=server_options(self.settings.exchange.max_message_bytes),
            maximum_concurrent_rpcs=4 * workers,
        )
        return server, pool

    def _add_services(self, server: grpc.Server) -> tuple[str, ...]:
        """Add every servicer, health and reflection; the full names of the services served."""
        exchange = ExchangeServicer(self.receiver, self.member, self._node_info, self.hellos)
        self._exchange_servicer = exchange
        xgrpc.add_ExchangeServicer_to_server(exchange, server)
        igrpc.add_IntakeServicer_to_server(IntakeServicer(self.intake), server)
        pgrpc.add_PartnerServicer_to_server(PartnerServicer(self.partners, self.holds), server)
        lgrpc.add_RoutingLogServicer_to_server(
            RoutingLogServicer(self.engine, self.member, self._clock), server
        )
        cases = CaseServicer(
            self.case_work,
            self.case_views,
            self.case_feed,
            stopping=self._stop,
            max_watch_s=self.settings.exchange.watch_max_s,
        )
        cgrpc.add_CasesServicer_to_server(cases, server)
        sgrpc.add_StatisticsServicer_to_server(self._statistics_servicer(), server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        names = (
            exchange_pb2.DESCRIPTOR.services_by_name["Exchange"].full_name,
            intake_pb2.DESCRIPTOR.services_by_name["Intake"].full_name,
            partner_pb2.DESCRIPTOR.services_by_name["Partner"].full_name,
            routing_log_pb2.DESCRIPTOR.services_by_name["RoutingLog"].full_name,
            cases_pb2.DESCRIPTOR.services_by_name["Cases"].full_name,
            statistics_pb2.DESCRIPTOR.services_by_name["Statistics"].full_name,
            health.SERVICE_NAME,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(names, server)
        return names

    def _statistics_servicer(self) -> StatisticsServicer:
        """``GetStatistics``: the node's own figures (``self.figures``), signed."""
        return StatisticsServicer(
            self.figures.snapshot,
            self.key,
            self.member,
            # Room for the key id and signature beside the body within one gRPC message.
            max_body_bytes=self.settings.exchange.max_message_bytes - 1024,
            clock=self._clock,
        )

    def _listen(self, server: grpc.Server) -> None:
        """Bind ``settings.listen``: mTLS when the node has TLS material, plaintext otherwise.

        An address that cannot be bound is a ``ListenError`` naming it (ops/listen.py), never
        gRPC's bare ``RuntimeError``."""
        listen = self.settings.listen
        check_bindable(listen)
        try:
            if self._tls is not None:
                cert, key, ca = self._tls
                credentials = grpc.ssl_server_credentials(
                    [(key, cert)], root_certificates=ca, require_client_auth=True
                )
                self.port = server.add_secure_port(listen, credentials)
            else:
                self.port = server.add_insecure_port(listen)
        except RuntimeError:
            raise refused(listen) from None
        if self.port == 0:
            raise refused(listen)

    def _start_workers(self) -> None:
        """The senders, the peer leases, the checkpointer, retention, re-checks and the manifest
        watcher."""
        self.fanout.ensure(self.manifests.current())
        self.greeter.start()  # the server listens: peers told we are back, in the background
        if self.leases is not None:
            self.leases.start()
        self.checkpointer.start()
        self.retention.start()
        self._stats_loop.start()
        self._pdq_loop.start()
        if self._recheck_loop is not None:
            self._recheck_loop.start()
        if self.notifier is not None:
            self.notifier.start()
        threading.Thread(target=self._watch_manifest, name="ihx-manifest", daemon=True).start()

    def _start_health(self, services: tuple[str, ...], pool: futures.ThreadPoolExecutor) -> None:
        """Report SERVING (the node and each service) and start the monitor that may revoke it."""
        self._health.set("", health_pb2.HealthCheckResponse.SERVING)
        for name in services:
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._monitor = HealthMonitor(
            self._health,
            services,
            writer=self.writer,
            pool=pool,
            interval=self.settings.exchange.health_probe_s,
            metrics=self.metrics,
        )
        self._monitor.start()

    def _start_health_server(self, listen: str) -> None:
        # Plaintext and health-only: Kubernetes' gRPC probes cannot present a client certificate.
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="ihx-hc"),
            options=[("grpc.so_reuseport", 0)],  # as the main server: two nodes, one port: no
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        check_bindable(listen)
        try:
            self.health_port = server.add_insecure_port(listen)
        except RuntimeError:
            raise refused(listen) from None
        server.start()
        self._health_server = server

    def stop(self, grace: float = 5.0) -> None:
        """Stop within about ``grace`` seconds plus one receipt timeout at worst."""
        self._stop.set()
        self.case_feed.notify()  # WatchCases streams see the stop now, not at their next poll
        if self._monitor is not None:
            self._monitor.stop()
        self.admission.close()  # before NOT_SERVING: whoever sees it is refused new work
        self._health.enter_graceful_shutdown()
        if self._server is not None:
            # Peers keep idle streams open; end them after their in-flight envelopes so the
            # grace period is spent on real work, not on waiting for streams that never end.
            self._exchange_servicer.close_streams()
            self.admission.end_probation()  # those waiting for a first envelope, too
            self._server.stop(grace).wait()
        self.admission.stop()  # also when the server never started (its port was in use)
        self.greeter.stop()
        self.fanout.stop_senders()
        if self.leases is not None:
            self.leases.stop()  # hand our peers to the other replicas now, not at expiry
        self.fanout.close_channels()
        self.checkpointer.stop()
        self.retention.stop()
        self._stats_loop.stop()  # before the writer: a fold is a writer job
        self._pdq_loop.stop()  # so is a trim of pdq_changes
        if self.rechecker is not None and self._recheck_loop is not None:
            self.rechecker.stop()
            self._recheck_loop.stop()
            self.check_pool.close(timeout=2.0)
        if self.notifier is not None:
            self.notifier.stop()  # before the writer: a pass records through it
        self.writer.stop()
        if self.wal_checkpoints is not None:
            self.wal_checkpoints.stop()
        self._save_pdq()
        if self._health_server is not None:
            self._health_server.stop(0)
        self.metrics.stop()
        self.verifier.close()
        self.geoip.close()
        self.engine.dispose()

    def _save_pdq(self) -> None:
        """The PDQ index to its file, so the next start loads it (a failure costs a rebuild),
        then its cursor noted and the feed trimmed: neither failure stops the rest of stop."""
        try:
            self.pdq.save()
        except OSError:
            log.exception("PDQ index not saved; the next start rebuilds it from the sightings")
        except SQLAlchemyError:
            log.exception("PDQ cursor not noted at stop; the feed is trimmed at the next start")

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

    @property
    def senders(self) -> Mapping[str, PeerSender]:
        """The sender of each peer, by member id (tests and tools read their state)."""
        return self.fanout.senders

    def wake(self, members: Iterable[str]) -> None:
        self.fanout.wake(members)

    def seal_early(self, tx: Tx, members: Iterable[str]) -> None:
        self.fanout.seal_early(tx, members)

    def _on_manifest(self, manifest: Manifest) -> None:
        try:
            # The network readers (and their keys) are the manifest's: verify with the new ones.
            # First, so that a revoked key is refused even if the fan-out below fails.
            self.verifier.rebuild(manifest)
        except AuthError as error:
            log.error(
                "tokens: manifest epoch %d unusable, the previous policy stays: %s",
                manifest.epoch,
                error,
            )
        self.fanout.ensure(manifest)

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
