"""Shared machinery of the integration tests: the test network, polling, and database look-ups.

The network is real in everything but its size: one directory per member with its Ed25519 key,
its settings, its migrated database (a SQLite file; a fresh PostgreSQL database per member when
``IHX_TEST_DATABASE_URL`` is set, dropped when the cluster closes) and the signed manifest,
small GeoIP databases built on the fly (``exchange.tools.provision``), and a static resolver table
with a host in every country the tests route to, plus hosts that cannot be traced. Nodes listen
on 127.0.0.1 and talk real gRPC.

Assertions never rest on a fixed sleep: ``wait_until`` polls a predicate and fails with a message
saying what it was waiting for and what it last saw.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, text

from exchange.batch_entries import reports_in
from exchange.client.stubs import IntakeClient
from exchange.domain import Submission
from exchange.node import Node
from exchange.routing_log import ChainBreak, LogEntry, verify_chain
from exchange.store.engine import open_engine
from exchange.times import from_micros
from exchange.tools.provision import Federation, MemberPlan, provision_federation
from ihx.v1 import intake_pb2 as ipb
from tests.dbs import Databases, configured_url
from tests.exchange.factories import host_in

T = TypeVar("T")

NL, DE, US, COORDINATOR = "nl-eokm", "de-eco", "us-ncmec", "inhope"

PLANS: tuple[MemberPlan, ...] = (
    MemberPlan(NL, "Expertisebureau Online Kindermisbruik", ("NL",)),
    MemberPlan(DE, "eco Beschwerdestelle", ("DE",)),
    MemberPlan(US, "National Center for Missing & Exploited Children", ("US",)),
    MemberPlan(COORDINATOR, "INHOPE", ()),
)
ORPHAN_RULES: Mapping[str, str] = {"JP": US}

COUNTRY_NETWORKS: Mapping[str, str] = {
    "185.107.56.0/22": "NL",
    "5.9.0.0/16": "DE",
    "8.8.8.0/24": "US",
    "203.119.0.0/16": "JP",
    "5.2.0.0/16": "RO",
    "88.99.0.0/16": "DE",  # a second DE hoster (takedown: a notice follows the content)
}
ASN_NETWORKS: Mapping[str, tuple[int, str]] = {
    "185.107.56.0/22": (43350, "NForce Entertainment B.V."),
    "5.9.0.0/16": (24940, "Hetzner Online GmbH"),
    "8.8.8.0/24": (15169, "Google LLC"),
    "88.99.0.0/16": (64501, "Beispiel Rechenzentrum GmbH"),
}
ADDRESS_IN: Mapping[str, str] = {
    "NL": "185.107.56.10",
    "DE": "5.9.1.1",
    "US": "8.8.8.8",
    "JP": "203.119.1.1",
    "RO": "5.2.64.1",
}
# A host only on private addresses (refused as a hosting location) and one nobody can resolve.
PRIVATE_HOST = "intranet.example"
UNRESOLVABLE_HOST = "gone.example"
STATIC_HOSTS: Mapping[str, Sequence[str]] = {
    **{host_in(cc): [address] for cc, address in ADDRESS_IN.items()},
    PRIVATE_HOST: ["10.20.30.40"],
}

# Fast retries and manifest polling, so a test waits milliseconds where production waits seconds.
_FAST: Mapping[str, float | int] = {
    "backoff_initial_s": 0.05,
    "backoff_max_s": 0.5,
    "linger_ms": 2,
    "manifest_poll_s": 0.1,
    "receipt_timeout_s": 5,
}


def tuning(**overrides: float | int) -> str:
    """The ``[exchange]`` settings of the tests, with some values replaced or added."""
    values = {**_FAST, **overrides}
    return "\n[exchange]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())


FAST_TUNING = tuning()


# PostgreSQL databases that provision() created, by federation root: the Cluster over that
# federation drops them when it closes; ``release_databases()`` drops whatever is left.
_DATABASES: dict[Path, Databases] = {}


def release_databases(root: Path | None = None) -> None:
    """Drop the databases provisioned for ``root`` (for every federation if None)."""
    for key in list(_DATABASES) if root is None else [root]:
        dbs = _DATABASES.pop(key, None)
        if dbs is not None:
            dbs.close()


def provision(
    root: Path,
    *,
    plans: Sequence[MemberPlan] = PLANS,
    extra_settings: str = FAST_TUNING,
    tls: bool = False,
) -> Federation:
    databases = Databases(root, configured_url())
    if databases.postgresql:
        _DATABASES[root] = databases
    return provision_federation(
        root,
        plans,
        coordinator=COORDINATOR,
        now=datetime.now(UTC),
        # Rules naming a member this federation leaves out are left out too.
        orphan_rules={cc: m for cc, m in ORPHAN_RULES.items() if m in {p.id for p in plans}},
        country_networks=COUNTRY_NETWORKS,
        asn_networks=ASN_NETWORKS,
        static_hosts=STATIC_HOSTS,
        extra_settings=extra_settings,
        database_url=databases.for_members(),
        tls=tls,
    )


# -- waiting ------------------------------------------------------------------------------------


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    *,
    what: str = "",
    interval: float = 0.02,
    show: Callable[[], object] | None = None,
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    On timeout, fail with ``what`` (or the predicate's name), the last value seen and, if
    ``show`` is given, whatever it returns (e.g. the counts that did not add up).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            context = f"; state: {show()!r}" if show is not None else ""
            name = what or getattr(predicate, "__name__", "condition")
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {name} (last value {value!r}){context}"
            )
        time.sleep(interval)


# -- the federation under test ------------------------------------------------------------------


class Cluster:
    """A provisioned federation and the nodes of it running in this process.

    Nodes can also run elsewhere (a subprocess): ``engine(member)`` then opens the member's
    SQLite file read-side from here. ``close()`` stops every node started here and disposes every
    engine, whatever happened before.
    """

    def __init__(self, fed: Federation) -> None:
        self.fed = fed
        self.nodes: dict[str, Node] = {}
        self._engines: dict[str, Engine] = {}

    # lifecycle
    def start(self, *members: str, **options: Any) -> None:
        """Start members; ``options`` go to each ``Node`` (the re-checks' ``route``, a
        ``resolver``, a ``clock``: the parts not built from settings)."""
        for member in members:
            if member in self.nodes:
                raise RuntimeError(f"{member} is already running")
            node = Node(self.fed.settings[member], **options)
            node.start()
            self.nodes[member] = node

    def stop(self, member: str) -> None:
        self.nodes.pop(member).stop()

    def close(self) -> None:
        # In parallel: a node's stop waits out the grace period of its peers' open streams.
        errors: list[BaseException] = []
        nodes, self.nodes = list(self.nodes.values()), {}

        def stop(node: Node) -> None:
            try:
                node.stop()
            except Exception as error:  # keep stopping the others
                errors.append(error)

        threads = [threading.Thread(target=stop, args=(n,)) for n in nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()
        release_databases(self.fed.root)
        if errors:
            raise errors[0]

    def node(self, member: str) -> Node:
        return self.nodes[member]

    def address(self, member: str) -> str:
        return self.fed.settings[member].listen

    def config(self, member: str) -> Path:
        return self.fed.config_path(member)

    def token(self, member: str) -> str:
        """An analyst's intake token issued by ``member``'s node."""
        return self.fed.token(member)

    # intake
    def submit_mixed(
        self, member: str, submissions: Iterable[Submission]
    ) -> list[ipb.SubmitReportResponse]:
        """Submit through the member's gRPC intake (bulk stream); refusals are answers too."""
        with IntakeClient(self.address(member), token=self.token(member), timeout=60) as client:
            return list(client.submit_many(submissions, deadline=120))

    def submit(
        self, member: str, submissions: Iterable[Submission]
    ) -> list[ipb.SubmitReportResponse]:
        """Submit through the member's gRPC intake (bulk stream); every one must be accepted."""
        responses = self.submit_mixed(member, submissions)
        refused = [r for r in responses if r.error_code]
        assert not refused, f"intake at {member} refused: {refused[:3]}"
        return responses

    def submit_one(self, member: str, submission: Submission) -> ipb.SubmitReportResponse:
        with IntakeClient(self.address(member), token=self.token(member), timeout=60) as client:
            return client.submit(submission)

    # the store
    def engine(self, member: str) -> Engine:
        node = self.nodes.get(member)
        if node is not None:
            return node.engine
        engine = self._engines.get(member)
        if engine is None:
            engine = open_engine(self.fed.settings[member].database_url)
            self._engines[member] = engine
        return engine

    def rows(self, member: str, sql: str, **params: Any) -> list[Any]:
        with self.engine(member).connect() as conn:
            return list(conn.execute(text(sql), params))

    def scalar(self, member: str, sql: str, **params: Any) -> Any:
        with self.engine(member).connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def count(self, member: str, table: str, where: str = "", **params: Any) -> int:
        clause = f" WHERE {where}" if where else ""
        return int(self.scalar(member, f"SELECT count(*) FROM {table}{clause}", **params))

    def batch_listed(self, member: str, kind: str) -> Counter[str]:
        """How many of ``member``'s ``kind`` entries (``sent``/``receipted``: one per batch)
        list each report: once each, for a report sent exactly once."""
        details = self.rows(member, "SELECT detail FROM routing_log WHERE kind = :k", k=kind)
        return Counter(rid for (detail,) in details for rid in reports_in(detail))

    def log_break(self, member: str) -> ChainBreak | None:
        """Where the member's hash-chained routing log is broken, or None when it is intact."""
        rows = self.rows(
            member,
            "SELECT idx, at, kind, report_id, member, country, detail, previous_hash, entry_hash"
            " FROM routing_log ORDER BY idx",
        )
        return verify_chain(LogEntry(r.idx, from_micros(r.at), *r[2:]) for r in rows)

    def drained(self, member: str) -> bool:
        """Nothing left to deliver at ``member``: no outbox row, no batch without a receipt."""
        return (
            self.count(member, "outbox") == 0
            and self.count(member, "batches", "receipted_at IS NULL") == 0
        )

    def delivery_state(self, member: str) -> dict[str, object]:
        """What is still pending at ``member`` (for timeout messages)."""
        senders = self.nodes[member].senders if member in self.nodes else {}
        return {
            "outbox": self.count(member, "outbox"),
            "unreceipted": self.count(member, "batches", "receipted_at IS NULL"),
            "senders": {m: (s.delivered, s.last_error) for m, s in senders.items()},
        }
