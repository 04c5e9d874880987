"""The routing log as coordinators read it: filters, paging, checkpoints, the CLI, and tampering.

Reports flow through the whole test federation (NL → DE/US/coordinator, DE → NL, a partner pull
at de-eco), so every node has a log of intake, sent, receipted, new-case, announced and pulled
entries. Over real gRPC with ``log:read`` tokens: each ``ListRoutingLog`` filter returns exactly
the entries the database holds for it, pages neither overlap nor skip, and ``GetCheckpoint``
serves signed checkpoints that verify. ``ihx log`` lists one node (table and JSON) and the whole
network as one time-ordered view; ``ihx log verify`` (local database, one node, the network)
passes on intact logs and names the first bad entry after an entry is edited, deleted or
swapped, and after a consistent rewrite of the chain that only a signed checkpoint can expose.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, cast

import grpc
import pytest
from sqlalchemy import text
from typer.testing import CliRunner, Result

from exchange.batch_entries import reports_in
from exchange.checkpoints import verify_checkpoint
from exchange.cli.main import app
from exchange.client.stubs import LogClient, PartnerClient
from exchange.routing_log import compute_hash
from exchange.times import from_micros
from exchange.wire.codec import checkpoint_from_proto, from_timestamp
from ihx.v1 import routing_log_pb2 as lpb
from ihx.v1 import routing_log_pb2_grpc as lgrpc
from tests.exchange.factories import make_submission, url_in
from tests.integration.conftest import MakeCluster
from tests.integration.partner_cluster import (
    DE_BKA,
    log_token,
    new_partner_cluster,
    partner_cluster,
    pull_token,
    stop_senders,
)
from tests.integration.support import (
    COORDINATOR,
    DE,
    NL,
    PLANS,
    UNRESOLVABLE_HOST,
    US,
    Cluster,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)

MEMBERS = tuple(p.id for p in PLANS)


# -- a federation with traffic -------------------------------------------------------------------


def make_traffic(cluster: Cluster, tag: str) -> dict[str, list[str]]:
    """Reports in every direction; returns the report ids nl-eokm assigned, per destination."""
    subs = {
        DE: [
            make_submission(url_in("DE", f"/{tag}/de-{i}.jpg"), hashes=[f"{tag}-de-{i}"])
            for i in range(3)
        ],
        US: [
            make_submission(url_in("US", f"/{tag}/us-{i}.jpg"), hashes=[f"{tag}-us-{i}"])
            for i in range(2)
        ],
        NL: [
            make_submission(url_in("NL", f"/{tag}/nl-{i}.jpg"), hashes=[f"{tag}-nl-{i}"])
            for i in range(2)
        ],
        COORDINATOR: [
            make_submission(f"http://{UNRESOLVABLE_HOST}/{tag}.jpg", hashes=[f"{tag}-gone"])
        ],
    }
    answers = cluster.submit(NL, [s for group in subs.values() for s in group])
    ids: dict[str, list[str]] = {}
    for answer in answers:
        ids.setdefault(answer.decision.member, []).append(answer.report_id)
    # de-eco reports two NL-hosted URLs to nl-eokm.
    cluster.submit(
        DE,
        [
            make_submission(url_in("NL", f"/{tag}/from-de-{i}.jpg"), hashes=[f"{tag}-fde-{i}"])
            for i in range(2)
        ],
    )
    wait_until(
        lambda: all(cluster.drained(m) for m in MEMBERS),
        30,
        what="every node's outbox drained",
        show=lambda: {m: cluster.delivery_state(m) for m in MEMBERS},
    )
    # A partner pull at de-eco, so the log holds "pulled" entries too.
    with PartnerClient(cluster.address(DE), token=pull_token(cluster, DE, DE_BKA)) as client:
        assert len(list(client.pull())) == 3
    return ids


def log_size(cluster: Cluster, member: str) -> int:
    return cluster.count(member, "routing_log")


def checkpointed(cluster: Cluster, member: str) -> bool:
    """A signed checkpoint covers the member's whole log."""
    size = cluster.scalar(member, "SELECT max(size) FROM checkpoints")
    return size is not None and size == log_size(cluster, member)


def wait_checkpointed(cluster: Cluster, *members: str) -> None:
    for member in members:
        wait_until(partial(checkpointed, cluster, member), 10, what=f"{member}'s checkpoint")


@dataclass
class Traffic:
    cluster: Cluster
    ids: dict[str, list[str]]


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traffic]:
    """One federation with traffic for the read-only tests of this module."""
    cluster = new_partner_cluster(tmp_path_factory.mktemp("routing-log"))
    try:
        ids = make_traffic(cluster, "log")
        wait_checkpointed(cluster, *MEMBERS)
        # One more local report at nl-eokm, so that at least two checkpoints cover its log.
        cluster.submit(NL, [make_submission(url_in("NL", "/log/last.jpg"), hashes=["log-last"])])
        wait_until(lambda: all(cluster.drained(m) for m in MEMBERS), 30, what="outboxes drained")
        wait_checkpointed(cluster, *MEMBERS)
        yield Traffic(cluster, ids)
    finally:
        stop_senders(cluster)
        cluster.close()


# -- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    idx: int
    at: datetime
    kind: str
    report_id: str | None
    member: str | None
    country: str | None


def db_rows(cluster: Cluster, member: str, where: str = "", **params: Any) -> list[Row]:
    clause = f" WHERE {where}" if where else ""
    return [
        Row(r.idx, from_micros(r.at), r.kind, r.report_id, r.member, r.country)
        for r in cluster.rows(
            member,
            "SELECT idx, at, kind, report_id, member, country FROM routing_log"
            f"{clause} ORDER BY idx",
            **params,
        )
    ]


def wire_rows(entries: list[lpb.LogEntry]) -> list[Row]:
    return [
        Row(
            e.index,
            from_timestamp(e.at),
            e.kind,
            e.report_id or None,
            e.member or None,
            e.country or None,
        )
        for e in entries
    ]


def listed(cluster: Cluster, node: str, **filters: Any) -> list[Row]:
    with LogClient(cluster.address(node), token=log_token(cluster, node)) as client:
        return wire_rows(list(client.entries(**filters)))


@pytest.mark.timeout(30)
def test_each_filter_returns_exactly_the_matching_entries(traffic: Traffic) -> None:
    cluster = traffic.cluster
    everything = listed(cluster, NL)
    assert everything == db_rows(cluster, NL)
    assert {r.kind for r in everything} >= {"intake", "sent", "receipted", "new-case", "announced"}

    # kind, country, member, report id: each compared with the database.
    assert listed(cluster, NL, kind="sent") == db_rows(cluster, NL, "kind = 'sent'")
    # One per batch, listing 6 reports in all: 3 to DE, 2 to US, 1 to the coordinator.
    assert len(listed(cluster, NL, kind="sent")) == cluster.count(NL, "batches", "kind = 'report'")
    sent = cluster.rows(NL, "SELECT member, detail FROM routing_log WHERE kind = 'sent'")
    forwarded = sorted((r.member, rid) for r in sent for rid in reports_in(r.detail))
    assert forwarded == sorted((m, rid) for m in (DE, US, COORDINATOR) for rid in traffic.ids[m])
    assert listed(cluster, NL, country="DE") == db_rows(cluster, NL, "country = 'DE'")
    assert {r.kind for r in listed(cluster, NL, country="DE")} == {"intake"}
    assert listed(cluster, NL, member=DE) == db_rows(cluster, NL, "member = :m", m=DE)
    assert listed(cluster, DE, kind="pulled") == db_rows(cluster, DE, "kind = 'pulled'")
    assert len(listed(cluster, DE, kind="pulled", member=DE_BKA)) == 3
    report = traffic.ids[DE][0]
    trail = listed(cluster, NL, report_id=report)
    assert [r.kind for r in trail] == ["intake", "sent", "receipted"]
    # The intake entry names the report; the other two are its batch's, which list it.
    assert [(r.report_id, r.member) for r in trail] == [(report, DE), (None, DE), (None, DE)]
    assert listed(cluster, NL, kind="receipted", member=US) == db_rows(
        cluster, NL, "kind = 'receipted' AND member = :m", m=US
    )
    assert listed(cluster, NL, kind="no-such-kind") == []

    # Time range: since is inclusive, until exclusive.
    times = sorted({r.at for r in everything})
    assert len(times) >= 3
    since, until = times[1], times[-1]
    window = listed(cluster, NL, since=since, until=until)
    assert window == [r for r in everything if since <= r.at < until]
    assert window
    assert listed(cluster, NL, since=times[-1] + timedelta(seconds=1)) == []
    assert listed(cluster, NL, until=times[0]) == []


@pytest.mark.timeout(30)
def test_pages_neither_overlap_nor_skip(traffic: Traffic) -> None:
    cluster = traffic.cluster
    token = log_token(cluster, NL)
    with grpc.insecure_channel(cluster.address(NL)) as channel:
        stub = lgrpc.RoutingLogStub(channel)

        def pages(**filters: Any) -> list[list[lpb.LogEntry]]:
            out: list[list[lpb.LogEntry]] = []
            after = 0
            while True:
                page = stub.ListRoutingLog(
                    lpb.ListRoutingLogRequest(after_index=after, page_size=3, **filters),
                    metadata=(("authorization", f"Bearer {token}"),),
                    timeout=10,
                )
                out.append(list(page.entries))
                if not page.next_after_index:
                    return out
                after = page.next_after_index

        everything = db_rows(cluster, NL)
        paged = pages()
        assert all(1 <= len(p) <= 3 for p in paged)
        assert all(len(p) == 3 for p in paged[:-1])
        flat = wire_rows([e for p in paged for e in p])
        assert [r.idx for r in flat] == list(range(len(everything)))
        assert flat == everything
        assert len(paged) == -(-len(everything) // 3)

        # Paging with a filter: still every match once, in order.
        sent = wire_rows([e for p in pages(kind="sent") for e in p])
        assert sent == db_rows(cluster, NL, "kind = 'sent'")


@pytest.mark.timeout(30)
def test_checkpoints_latest_by_size_and_unknown(traffic: Traffic) -> None:
    cluster = traffic.cluster
    manifest = cluster.fed.manifest
    sizes = [r.size for r in cluster.rows(NL, "SELECT size FROM checkpoints ORDER BY size")]
    assert len(sizes) >= 2
    heads = {
        r.idx + 1: bytes(r.entry_hash)
        for r in cluster.rows(NL, "SELECT idx, entry_hash FROM routing_log")
    }
    with LogClient(cluster.address(NL), token=log_token(cluster, NL)) as client:
        latest = client.checkpoint()
        assert latest.size == sizes[-1] == log_size(cluster, NL)
        assert latest.member == NL
        assert latest.head_hash == heads[latest.size]
        verify_checkpoint(checkpoint_from_proto(latest), manifest)

        older = client.checkpoint(sizes[0])
        assert older.size == sizes[0]
        assert older.head_hash == heads[sizes[0]]
        verify_checkpoint(checkpoint_from_proto(older), manifest)

        for unknown in (sizes[-1] + 1, 10**12):
            with pytest.raises(grpc.RpcError) as info:
                client.checkpoint(unknown)
            assert cast(grpc.Call, info.value).code() is grpc.StatusCode.NOT_FOUND


# -- the CLI ------------------------------------------------------------------------------------


def ihx(*args: str) -> Result:
    # Wide enough that no table cell wraps.
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "400"})


def json_lines(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.stdout + result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.timeout(30)
def test_cli_lists_one_nodes_log_as_table_and_json(traffic: Traffic) -> None:
    cluster = traffic.cluster
    node = ["log", "--node", cluster.address(NL), "--token", log_token(cluster, NL)]
    everything = db_rows(cluster, NL)

    docs = json_lines(ihx(*node, "--json"))
    assert [(d["index"], d["kind"], d["report_id"], d["member"], d["country"]) for d in docs] == [
        (r.idx, r.kind, r.report_id, r.member, r.country) for r in everything
    ]
    assert {d["node"] for d in docs} == {cluster.address(NL)}
    assert all(isinstance(d["detail"], dict) and len(d["entry_hash"]) == 64 for d in docs)

    sent = json_lines(ihx(*node, "--json", "--kind", "sent", "--member", DE))
    assert [d["index"] for d in sent] == [
        r.idx for r in db_rows(cluster, NL, "kind = 'sent' AND member = :m", m=DE)
    ]
    assert sorted(rid for d in sent for rid in d["detail"]["reports"]) == sorted(traffic.ids[DE])

    result = ihx(*node)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80  # each entry in lines of 80 columns
    report = traffic.ids[DE][0]
    mine = ihx(*node, "--report-id", report)
    assert mine.exit_code == 0, mine.stderr
    firsts = [line for line in mine.stdout.splitlines() if re.match(r" *\d+  ", line)]
    kinds = [kind for line in firsts for kind in ("intake", "sent", "receipted") if kind in line]
    assert kinds == ["intake", "sent", "receipted"], mine.stdout
    # A batch's entry is shown without its list, with what it says of this report.
    assert "listed=true" in mine.stdout
    assert "outcome=new-case" in mine.stdout
    assert max(len(line) for line in mine.stdout.splitlines()) <= 80

    # Without a token: one error line naming the refusal, exit 2.
    refused = ihx("log", "--node", cluster.address(NL))
    assert refused.exit_code == 2
    assert refused.stderr.startswith("ihx: error: ")
    assert "UNAUTHENTICATED" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1


def network_tokens(cluster: Cluster) -> list[str]:
    return [arg for m in MEMBERS for arg in ("--token", f"{m}={log_token(cluster, m)}")]


@pytest.mark.timeout(30)
def test_cli_network_view_merges_every_members_log_in_time_order(traffic: Traffic) -> None:
    cluster = traffic.cluster
    manifest = str(cluster.fed.root / NL / "manifest.json")
    docs = json_lines(ihx("log", "--network", manifest, *network_tokens(cluster), "--json"))

    per_node = {m: [d for d in docs if d["node"] == m] for m in MEMBERS}
    for member in MEMBERS:
        assert [d["index"] for d in per_node[member]] == [
            r.idx for r in db_rows(cluster, member)
        ], member
        assert per_node[member], member
    assert len(docs) == sum(log_size(cluster, m) for m in MEMBERS)
    times = [datetime.fromisoformat(d["at"]) for d in docs]
    assert times == sorted(times)
    # The nodes' entries are interleaved, not just concatenated.
    assert len({d["node"] for d in docs[: len(docs) // 2]}) > 1

    # Filters apply to every member: the network's "sent" entries towards us-ncmec.
    to_us = json_lines(
        ihx("log", "--network", manifest, *network_tokens(cluster), "--json", "--member", US)
    )
    assert to_us
    assert {d["member"] for d in to_us} == {US}
    assert sum(1 for d in to_us if d["kind"] == "intake") == 2


def verify_output(result: Result) -> str:
    """The verify table's text, whitespace collapsed."""
    return " ".join((result.stdout + result.stderr).split())


@pytest.mark.timeout(30)
def test_cli_verify_passes_on_intact_logs(traffic: Traffic) -> None:
    cluster = traffic.cluster
    manifest = str(cluster.fed.root / NL / "manifest.json")
    for args in (
        ["--config", str(cluster.config(NL))],
        ["--node", cluster.address(NL), "--manifest", manifest, "--token", log_token(cluster, NL)],
        ["--network", manifest, *network_tokens(cluster)],
    ):
        result = ihx("log", "verify", *args)
        assert result.exit_code == 0, verify_output(result)
        assert "intact" in result.stdout
        assert "✗" not in result.stdout
    network = verify_output(ihx("log", "verify", "--network", manifest, *network_tokens(cluster)))
    for member in MEMBERS:
        assert f"│ {member} │ {log_size(cluster, member)} │" in network


# -- tampering ----------------------------------------------------------------------------------


class Tamper:
    """Direct edits of a node's routing log, as someone with access to its database could make.

    Through a connection of its own (``Cluster.engine`` is the node's engine while it runs, a
    separate one once it is stopped), in plain SQL, so it works on SQLite and PostgreSQL alike.
    """

    def __init__(self, cluster: Cluster, member: str) -> None:
        self.cluster = cluster
        self.member = member
        self.pristine: list[dict[str, Any]] = [
            dict(r._mapping)
            for r in cluster.rows(
                member,
                "SELECT idx, at, kind, report_id, member, country, detail, previous_hash,"
                " entry_hash FROM routing_log ORDER BY idx",
            )
        ]

    def _run(self, *statements: tuple[str, dict[str, Any] | list[dict[str, Any]]]) -> None:
        with self.cluster.engine(self.member).begin() as conn:
            for sql, params in statements:
                conn.execute(text(sql), params)

    def restore(self) -> None:
        self._run(
            ("DELETE FROM routing_log", {}),
            (
                "INSERT INTO routing_log (idx, at, kind, report_id, member, country, detail,"
                " previous_hash, entry_hash) VALUES (:idx, :at, :kind, :report_id, :member,"
                " :country, :detail, :previous_hash, :entry_hash)",
                self.pristine,
            ),
        )

    def edit_detail(self, idx: int) -> None:
        self._run(
            ("UPDATE routing_log SET detail = :d WHERE idx = :i", {"d": FORGED, "i": idx}),
        )

    def delete(self, idx: int) -> None:
        self._run(("DELETE FROM routing_log WHERE idx = :i", {"i": idx}))

    def swap(self, idx: int) -> None:
        """Entries ``idx`` and ``idx + 1`` trade places."""
        move = "UPDATE routing_log SET idx = :to WHERE idx = :at"
        self._run(
            (move, {"to": -1, "at": idx}),
            (move, {"to": idx, "at": idx + 1}),
            (move, {"to": idx + 1, "at": -1}),
        )

    def rewrite(self, idx: int) -> None:
        """Edit entry ``idx`` and recompute every hash from there on: a consistent chain."""
        rows = [dict(r) for r in self.pristine[idx:]]
        rows[0]["detail"] = FORGED
        previous = bytes(rows[0]["previous_hash"])
        updates = []
        for row in rows:
            digest = compute_hash(
                previous,
                row["idx"],
                from_micros(row["at"]),
                row["kind"],
                row["report_id"],
                row["member"],
                row["country"],
                row["detail"],
            )
            updates.append({"d": row["detail"], "p": previous, "h": digest, "i": row["idx"]})
            previous = digest
        self._run(
            (
                "UPDATE routing_log SET detail = :d, previous_hash = :p, entry_hash = :h"
                " WHERE idx = :i",
                updates,
            )
        )


FORGED = '{"forged":true}'


def tamper_cases(tamper: Tamper, covering: int) -> list[tuple[str, Callable[[], None], str]]:
    """(name, edit, what the verdict must say) for each kind of tampering at entry 2.

    ``covering``: the size of the signed checkpoint the verifier holds that covers entry 2.
    """
    last = covering - 1
    return [
        ("edit", lambda: tamper.edit_detail(2), "entry 2: entry hash does not match"),
        ("delete", lambda: tamper.delete(2), "entry 3: expected entry 2, found 3"),
        ("swap", lambda: tamper.swap(2), "entry 2: previous hash does not match"),
        (
            "rewrite",
            lambda: tamper.rewrite(2),
            f"entry {last}: entry {last} does not match signed checkpoint {covering}",
        ),
    ]


def small_cluster(make_cluster: MakeCluster) -> Cluster:
    cluster = partner_cluster(make_cluster)
    make_traffic(cluster, "tamper")
    wait_checkpointed(cluster, *MEMBERS)
    return cluster


@pytest.fixture
def cluster(make_cluster: MakeCluster) -> Iterator[Cluster]:
    cluster = small_cluster(make_cluster)
    yield cluster
    stop_senders(cluster)


@pytest.mark.timeout(60)
def test_verify_config_names_the_first_bad_entry(cluster: Cluster) -> None:
    cluster.stop(NL)
    tamper = Tamper(cluster, NL)
    # The first signed checkpoint that covers entry 2 (checkpoints are never rewritten).
    first_covering = cluster.scalar(NL, "SELECT min(size) FROM checkpoints WHERE size > 2")
    config = ["log", "verify", "--config", str(cluster.config(NL))]
    for name, edit, expected in tamper_cases(tamper, first_covering):
        tamper.restore()
        edit()
        result = ihx(*config)
        out = verify_output(result)
        assert result.exit_code == 1, (name, out)
        assert expected in out, (name, out)
        assert "✗" in out
        as_json = ihx(*config, "--json")
        assert as_json.exit_code == 1
        verdict = json.loads(as_json.stdout)
        assert verdict["intact"] is False
        (log,) = verdict["logs"]
        assert (log["node"], log["intact"]) == (NL, False)
        assert expected in f"entry {log['first_bad']['index']}: {log['first_bad']['problem']}"
    tamper.restore()
    assert ihx(*config).exit_code == 0
    intact = json.loads(ihx(*config, "--json").stdout)
    assert intact["intact"] is True
    assert intact["logs"][0]["first_bad"] is None
    assert cluster.log_break(NL) is None


@pytest.mark.timeout(60)
def test_verify_over_grpc_names_the_first_bad_entry(cluster: Cluster) -> None:
    manifest = str(cluster.fed.root / NL / "manifest.json")
    tamper = Tamper(cluster, NL)
    # Over gRPC the node serves its latest checkpoint, which covers the whole log.
    latest = log_size(cluster, NL)
    node = ["log", "verify", "--node", cluster.address(NL), "--manifest", manifest]
    node += ["--token", log_token(cluster, NL)]
    network = ["log", "verify", "--network", manifest, *network_tokens(cluster)]
    for name, edit, expected in tamper_cases(tamper, latest):
        tamper.restore()
        edit()
        for args in (node, network):
            result = ihx(*args)
            out = verify_output(result)
            assert result.exit_code == 1, (name, args[2], out)
            assert f"{NL} │ " in out
            assert expected in out, (name, args[2], out)
        # The other members' logs are intact, and said to be.
        assert verify_output(ihx(*network)).count("intact") == len(MEMBERS) - 1
    tamper.restore()
    assert ihx(*node).exit_code == 0
    assert ihx(*network).exit_code == 0
    assert cluster.log_break(NL) is None
