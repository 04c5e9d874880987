"""``ihx demo``: a real federation on loopback, a realistic day of reports, and what happened.

Four nodes — the Dutch, German and US hotlines and the INHOPE coordinator — each with its own
key, SQLite file and gRPC server, a signed manifest, small GeoIP databases built on the fly and
a static resolver (no network needed). The analysts' submissions cover the cases that matter:
reports forwarded to the hosting country, local cases, the same URL reported by two hotlines
(merged into one case), content already known elsewhere in the network (via hash
announcements), an orphan country (routed by the manifest's orphan rule), an untraceable host
(to the coordinator), a resubmission (the same report back), and a malformed URL (refused,
nothing stored). Then the German hotline works the Dutch report it holds to removal through its
Cases service, and the Dutch node sees every step (``demo_cases.py``). It waits until every
outbox is drained and prints, per node, what arrived, what merged, the routing decisions and
the case's lifecycle as its origin saw it.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from auth.tokens import Scope
from common.clock import Clock, system_clock
from exchange.client.stubs import IntakeClient
from exchange.domain import (
    AgeGroup,
    Classification,
    MediaType,
    SiteType,
    Submission,
    make_facts,
    make_item,
    parse_hash,
)
from exchange.node import Node, build_node
from exchange.store.overview import node_summary, pending_work
from exchange.tools.demo_cases import Worked, print_worked, work_a_case
from exchange.tools.provision import MemberPlan, provision_federation
from ihx.v1 import intake_pb2 as ipb

PLANS = (
    MemberPlan("nl-eokm", "Expertisebureau Online Kindermisbruik (NL)", ("NL",)),
    MemberPlan("de-eco", "eco Beschwerdestelle (DE)", ("DE",)),
    MemberPlan("us-ncmec", "NCMEC CyberTipline (US)", ("US",)),
    MemberPlan("inhope", "INHOPE secretariat (coordinator)", ()),
)
COUNTRY_NETWORKS = {
    "185.107.56.0/22": "NL",
    "91.198.174.0/24": "NL",
    "5.9.0.0/16": "DE",
    "2a01:4f8::/32": "DE",
    "8.8.8.0/24": "US",
    "2606:4700::/32": "US",
    "200.147.0.0/16": "BR",
}
ASN_NETWORKS = {
    "185.107.56.0/22": (43350, "NForce Entertainment B.V."),
    "5.9.0.0/16": (24940, "Hetzner Online GmbH"),
    "2a01:4f8::/32": (24940, "Hetzner Online GmbH"),
    "8.8.8.0/24": (15169, "Google LLC"),
    "2606:4700::/32": (13335, "Cloudflare, Inc."),
    "200.147.0.0/16": (7162, "Universo Online S.A."),
}
STATIC_HOSTS = {
    "imgshare.example.nl": ["185.107.56.10", "185.107.56.11"],
    "forum.example.de": ["5.9.10.20", "2a01:4f8::20"],
    "files.example.de": ["5.9.30.40"],
    "cdn.example.com": ["8.8.8.80", "2606:4700::80"],
    "board.example.com": ["8.8.8.81"],
    "galeria.example.com.br": ["200.147.3.4"],
    "intranet.example.org": ["10.20.30.40"],  # only a private address: untraceable
}


def _hash(label: str) -> str:
    # Demo content hashes are hashes of labels: ihx never sees media bytes.
    return "sha256:" + hashlib.sha256(f"ihx-demo:{label}".encode()).hexdigest()


def _report(
    url: str,
    *labels: str,
    cls: Classification = Classification.BASELINE,
    site: SiteType = SiteType.IMAGE_HOST,
    commercial: bool = False,
    ref: str = "",
) -> Submission:
    items = tuple(
        make_item(
            [parse_hash("sha256", _hash(label).split(":", 1)[1])],
            cls,
            MediaType.VIDEO if label.startswith("video") else MediaType.IMAGE,
            AgeGroup.PREPUBESCENT,
        )
        for label in labels
    )
    return Submission(url, make_facts(site, commercial), items, ref)


@dataclass
class _Outcome:
    member: str
    ref: str
    response: ipb.SubmitReportResponse | None
    error: str | None = None


def run_demo(keep: Path | None, console: Console, *, clock: Clock | None = None) -> int:
    # The demo prints its own story: the nodes' warnings (a peer not up yet) would only clutter
    # it. The level is put back after, for whoever runs the demo in their own process.
    quiet = logging.getLogger("exchange")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return _run_demo(keep, console, clock)
    finally:
        quiet.setLevel(level)


def _run_demo(keep: Path | None, console: Console, clock: Clock | None) -> int:
    started = time.monotonic()
    root = keep if keep is not None else Path(tempfile.mkdtemp(prefix="ihx-demo-"))
    try:
        console.print(f"[bold]ihx demo[/]: a federation of {len(PLANS)} nodes in {root}")
        fed = provision_federation(
            root,
            PLANS,
            coordinator="inhope",
            now=system_clock(),
            orphan_rules={"BR": "us-ncmec"},
            country_networks=COUNTRY_NETWORKS,
            asn_networks=ASN_NETWORKS,
            static_hosts=STATIC_HOSTS,
            extra_settings="\n[exchange]\nbackoff_initial_s = 0.2\nbackoff_max_s = 2.0\n",
        )
        with _running(fed.settings, clock) as nodes:
            outcomes = _submit_all(nodes, console)
            drained = _wait_for_drain(nodes, timeout=20.0)
            worked = _work_case(nodes, outcomes, console) if drained else None
            drained = drained and _wait_for_drain(nodes, timeout=20.0)
            _print_outcomes(outcomes, console)
            for node in nodes.values():
                _print_node(node, console)
            if worked is not None:
                print_worked(worked, console)
        elapsed = time.monotonic() - started
        if not drained:
            console.print("[red]not every outbox drained in time[/]")
            return 1
        if worked is None or worked.seen is None or not worked.coordinator_closed:
            return 1
        console.print(f"\nAll outboxes drained; demo finished in {elapsed:.1f} s.")
        if keep is not None:
            console.print(
                f"Node directories kept in {root}: try "
                f"`ihx status --config {root}/de-eco/node.toml`"
            )
        return 0
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)


@contextmanager
def _running(settings: dict, clock: Clock | None) -> Iterator[dict[str, Node]]:  # type: ignore[type-arg]
    nodes: dict[str, Node] = {}
    try:
        for member, s in settings.items():
            node = build_node(s, clock=clock) if clock else build_node(s)
            node.start()
            nodes[member] = node
        yield nodes
    finally:
        for node in nodes.values():
            node.stop(grace=0.5)


def _submit_all(nodes: dict[str, Node], console: Console) -> list[_Outcome]:
    outcomes: list[_Outcome] = []

    def submit(member: str, sub: Submission) -> _Outcome:
        token = nodes[member].issue_token(f"analyst@{member}", Scope.REPORTS_SUBMIT)
        with IntakeClient(nodes[member].address, token=token) as client:
            try:
                response = client.submit(sub)
            except Exception as error:  # a refusal is part of the demo
                details = getattr(error, "details", None)
                text = details() if callable(details) else str(error)
                outcome = _Outcome(member, sub.client_ref, None, text)
            else:
                outcome = _Outcome(member, sub.client_ref, response)
        outcomes.append(outcome)
        return outcome

    console.print("\n[bold]1.[/] Analysts submit reports to their own hotline's node")
    batch_nl = [
        _report("https://Forum.Example.DE:443/t/8812/../8813#p4", "img-a", "img-b", ref="NL-1"),
        _report(
            "http://files.example.de/dl/archive-77", "video-c", site=SiteType.FILE_HOST, ref="NL-2"
        ),
        _report("https://cdn.example.com/u/19/a.jpg", "img-d", commercial=True, ref="NL-3"),
        _report("https://imgshare.example.nl/v/abc", "img-e", ref="NL-4 (local)"),
        _report("https://galeria.example.com.br/fotos/22", "img-f", ref="NL-5 (orphan BR)"),
        _report("http://intranet.example.org/x", "img-g", ref="NL-6 (untraceable)"),
        _report("javascript:alert(1)", "img-h", ref="NL-7 (bad URL)"),
    ]
    for sub in batch_nl:
        submit("nl-eokm", sub)
    # The German hotline reports the same US URL with the same item: one case, two members.
    submit("de-eco", _report("https://cdn.example.com/u/19/a.jpg", "img-d", ref="DE-1 (same URL)"))
    # A resubmission at NL gets the same report back, marked duplicate.
    submit(
        "nl-eokm",
        _report("https://cdn.example.com/u/19/a.jpg", "img-d", commercial=True, ref="NL-3 again"),
    )

    console.print("[bold]2.[/] Waiting for hash announcements to reach every node …")
    _wait_for_drain(nodes, timeout=15.0)
    # Content the German case already holds, now found by the US hotline at another URL.
    submit(
        "us-ncmec", _report("https://board.example.com/t/5", "img-a", "img-z", ref="US-1 (known)")
    )
    # And bulk intake: a crawler's burst streamed to the Dutch node.
    crawler = nodes["nl-eokm"].issue_token("crawler@nl-eokm", Scope.REPORTS_SUBMIT)
    with IntakeClient(nodes["nl-eokm"].address, token=crawler) as client:
        burst = [
            _report(f"https://board.example.com/p/{i}", f"burst-{i}", ref=f"NL-bulk-{i}")
            for i in range(200)
        ]
        refused = sum(1 for r in client.submit_many(burst) if r.error_code)
    console.print(f"   bulk stream: {len(burst)} reports submitted to nl-eokm, {refused} refused")
    return outcomes


def _work_case(nodes: dict[str, Node], outcomes: list[_Outcome], console: Console) -> Worked:
    """The lifecycle of the first Dutch report, which the German hotline holds."""
    first = next(o for o in outcomes if o.ref == "NL-1")
    assert first.response is not None
    return work_a_case(nodes, first.response.report_id, "inhope", console)


def _wait_for_drain(nodes: dict[str, Node], *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(pending_work(n.engine) == 0 for n in nodes.values()):
            return True
        time.sleep(0.1)
    return False


_REASONS = {
    1: "served-member",
    2: "local",
    3: "orphan-rule",
    4: "coordinator-fallback",
    5: "untraceable",
}


def _print_outcomes(outcomes: list[_Outcome], console: Console) -> None:
    table = Table(title="Submissions and routing decisions", show_lines=False)
    for col in ("node", "ref", "canonical URL", "→ member", "reason", "notes"):
        table.add_column(col)
    for o in outcomes:
        if o.response is None:
            table.add_row(o.member, o.ref, "—", "—", "[red]refused[/]", o.error or "")
            continue
        r = o.response
        notes = []
        if r.duplicate:
            notes.append("duplicate: same report returned")
        for item in r.items:
            if item.known_content:
                notes.append(
                    f"item {item.index}: known content, first seen at "
                    f"{item.first_seen_member} ({item.first_seen_case})"
                )
        table.add_row(
            o.member,
            o.ref,
            r.canonical_url,
            r.decision.member,
            _REASONS.get(r.decision.reason, "?"),
            "; ".join(notes),
        )
    console.print(table)


def _print_node(node: Node, console: Console) -> None:
    summary = node_summary(node.engine)
    s = summary
    console.print(
        f"\n[bold]{node.member}[/]: submitted here {s.origin}, arrived from peers {s.received}, "
        f"cases {s.cases}, network hash index {s.hash_index_size} hashes, "
        f"routing log {s.routing_log_size} entries"
    )
    if s.delivered:
        console.print(
            "   delivered (signed receipts): " + ", ".join(f"{d}: {n}" for d, n in s.delivered)
        )
    for case_id, member in summary.merged:
        console.print(f"   merged: a report from {member} joined case {case_id}")
