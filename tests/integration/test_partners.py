"""Law-enforcement pull over real gRPC with real tokens: cases, visibility timeout, ack, the log.

nl-eokm (and us-ncmec, for one URL) submit DE-hosted reports; de-eco receives them, opens cases
and assigns them by its partner rules (de-bka: baseline, de-lka: national). de-bka pulls its
cases with a ``cases:pull`` token issued by de-eco and must see the URL, the hosting trace, the
items with their hashes and classifications, and de-eco's signed delivery receipt, verified.
A case nobody acknowledges comes again after the visibility timeout (0.5 s here); an ack takes
it out for good; one partner can neither pull nor acknowledge another's cases; a subject that
is no configured partner is refused; every case handed out is a ``pulled`` entry in the routing
log. ``ihx cases pull --ack`` writes the same facts as JSON Lines and acknowledges them.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from auth.tokens import Scope
from exchange.cli.main import app
from exchange.client.stubs import LogClient, PartnerClient
from exchange.domain import Classification
from exchange.wire.codec import receipt_key_and_time
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import intake_pb2 as ipb
from ihx.v1 import partner_pb2 as ppb
from ihx.v1 import report_pb2 as pb
from tests.exchange.factories import content_hash, make_submission, make_test_item, url_in
from tests.integration.conftest import MakeCluster
from tests.integration.partner_cluster import (
    DE_BKA,
    DE_LKA,
    NL_POLICE,
    VISIBILITY_TIMEOUT_S,
    log_token,
    partner_cluster,
    pull_token,
    stop_senders,
)
from tests.integration.support import ADDRESS_IN, DE, NL, US, Cluster, wait_until

pytestmark = pytest.mark.timeout(60)


def status_of(call: Callable[[], object]) -> grpc.StatusCode:
    """The status code ``call`` fails with (it must fail)."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    return cast(grpc.Call, info.value).code()


def pull(client: PartnerClient, after: str = "", limit: int = 100) -> list[ppb.Case]:
    return list(client.pull(after, limit))


def ids(cases: list[ppb.Case]) -> list[str]:
    return [c.id for c in cases]


class DeScenario:
    """What was submitted: three baseline and one national DE case, one NL case, one merge."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.baseline = [
            make_submission(url_in("DE", f"/pull/{i}.jpg"), hashes=[f"pull-{i}-a", f"pull-{i}-b"])
            for i in range(3)
        ]
        self.national = make_submission(
            url_in("DE", "/pull/national.jpg"),
            hashes=["pull-national"],
            classification=Classification.NATIONAL,
        )
        self.local = make_submission(url_in("NL", "/pull/local.jpg"), hashes=["pull-local"])
        # us-ncmec reports the first baseline URL too, with an item of its own: a merge at de-eco.
        self.merge = make_submission(url_in("DE", "/pull/0.jpg"), hashes=["pull-0-us"])

        self.nl_answers: list[ipb.SubmitReportResponse] = cluster.submit(
            NL, [*self.baseline, self.national, self.local]
        )
        # The merge is sent once nl-eokm's report opened the case, so the reporters' order is fixed.
        wait_until(lambda: cluster.drained(NL), 30, what="nl-eokm's reports receipted")
        self.us_answer = cluster.submit(US, [self.merge])[0]
        wait_until(
            lambda: (
                cluster.drained(US)
                and cluster.count(DE, "case_reports", "outcome = 'merged'") == 1
                and cluster.count(DE, "partner_cases") == 4
            ),
            30,
            what="de-eco holding every report, the merge done and the cases assigned",
            show=lambda: (cluster.delivery_state(US), cluster.count(DE, "partner_cases")),
        )
        self.case_of_url = {
            row.url: row.id for row in cluster.rows(DE, "SELECT id, url FROM cases")
        }

    def case_id(self, answer: ipb.SubmitReportResponse) -> str:
        return str(self.case_of_url[answer.canonical_url])

    @property
    def baseline_case_ids(self) -> list[str]:
        return [self.case_id(a) for a in self.nl_answers[:3]]

    @property
    def national_case_id(self) -> str:
        return self.case_id(self.nl_answers[3])


@pytest.fixture
def cluster(make_cluster: MakeCluster) -> Iterator[Cluster]:
    cluster = partner_cluster(make_cluster)
    yield cluster
    stop_senders(cluster)


@pytest.fixture
def scenario(cluster: Cluster) -> DeScenario:
    return DeScenario(cluster)


@pytest.fixture
def bka(cluster: Cluster) -> Iterator[PartnerClient]:
    with PartnerClient(cluster.address(DE), token=pull_token(cluster, DE, DE_BKA)) as client:
        yield client


@pytest.fixture
def lka(cluster: Cluster) -> Iterator[PartnerClient]:
    with PartnerClient(cluster.address(DE), token=pull_token(cluster, DE, DE_LKA)) as client:
        yield client


def test_partner_pulls_its_cases_with_trace_items_and_verified_receipt(
    cluster: Cluster, scenario: DeScenario, bka: PartnerClient
) -> None:
    cases = pull(bka)

    # Exactly de-bka's cases (the national one is de-lka's), in cursor order.
    assert sorted(ids(cases)) == sorted(scenario.baseline_case_ids)
    assert [int(c.cursor) for c in cases] == sorted(int(c.cursor) for c in cases)
    by_id = {c.id: c for c in cases}
    manifest = cluster.fed.manifest
    for i, answer in enumerate(scenario.nl_answers[:3]):
        case = by_id[scenario.case_id(answer)]
        assert case.url == answer.canonical_url
        assert case.hosting_country == "DE"
        assert case.HasField("opened_at")
        assert case.HasField("takedown_clock_started")
        expected_members = [NL, US] if i == 0 else [NL]
        assert list(case.reporting_members) == expected_members
        assert [r.reporting_member for r in case.reports] == expected_members

        part = case.reports[0]
        report = part.report
        assert report.id == answer.report_id
        assert report.url == answer.canonical_url
        assert report.origin_member == NL
        # The hosting trace, as nl-eokm recorded it: every address with its country and ASN.
        assert report.trace.country == "DE"
        assert [(a.address, a.country, a.asn) for a in report.trace.addresses] == [
            (ADDRESS_IN["DE"], "DE", 24940)
        ]
        assert report.trace.HasField("traced_at")
        assert report.decision.member == DE
        # Items: hashes and classifications exactly as submitted.
        assert [[(h.algorithm, h.hex) for h in item.hashes] for item in report.items] == [
            [(pb.HASH_ALGORITHM_SHA256, content_hash(f"pull-{i}-{s}").hex)] for s in ("a", "b")
        ]
        assert {item.classification for item in report.items} == {pb.CLASSIFICATION_BASELINE}

        # The delivery receipt de-eco signed for nl-eokm's batch: present, verified, and it
        # really does verify against de-eco's key in the manifest.
        for part in case.reports:
            assert part.receipt_verified is True
            assert part.HasField("receipt")
            key_id, at = receipt_key_and_time(part.receipt.body)
            manifest.verify_member_signature(
                DE, key_id, at, part.receipt.body, part.receipt.signature
            )
            body = xpb.ReceiptBody()
            body.ParseFromString(part.receipt.body)
            assert body.issuer == DE
            assert body.batch_sender == part.reporting_member
        assert case.takedown_clock_started.ToDatetime() == min(
            receipt_key_and_time(p.receipt.body)[1].replace(tzinfo=None) for p in case.reports
        )

    merged = by_id[scenario.baseline_case_ids[0]]
    assert merged.reports[1].report.id == scenario.us_answer.report_id
    assert merged.reports[1].report.origin_member == US
    assert [h.hex for h in merged.reports[1].report.items[0].hashes] == [
        content_hash("pull-0-us").hex
    ]


def test_a_receipt_that_does_not_verify_is_shown_as_such(
    cluster: Cluster, scenario: DeScenario, bka: PartnerClient
) -> None:
    """``receipt_verified`` is checked on every pull, not stored: a damaged receipt says false."""
    # us-ncmec's batch (one report: the merge) is the only one it sent to de-eco.
    with cluster.engine(DE).begin() as conn:
        changed = conn.execute(
            text("UPDATE inbox SET receipt_signature = :s WHERE sender = :m"),
            {"s": bytes(64), "m": US},
        ).rowcount
    assert changed == 1
    merged = next(c for c in pull(bka) if c.id == scenario.baseline_case_ids[0])
    verified = {p.reporting_member: p.receipt_verified for p in merged.reports}
    assert verified == {NL: True, US: False}


def test_unacknowledged_cases_come_again_and_ack_removes_them(
    cluster: Cluster, scenario: DeScenario, bka: PartnerClient
) -> None:
    started = time.monotonic()
    first = pull(bka)
    again_at_once = pull(bka)
    after_cursor = pull(bka, first[-1].cursor)
    elapsed = time.monotonic() - started
    assert sorted(ids(first)) == sorted(scenario.baseline_case_ids)
    # Invisible while leased (the check is only meaningful inside the timeout) …
    if elapsed < VISIBILITY_TIMEOUT_S:
        assert again_at_once == []
    # … and nothing after the last cursor, whatever the time.
    assert after_cursor == []

    # … then back, all of them, with the same ids and cursors.
    second = wait_until(lambda: pull(bka), 10, what="unacknowledged cases to come again")
    assert [(c.id, c.cursor) for c in second] == [(c.id, c.cursor) for c in first]
    pulls = {
        r.case_id: r.pulls
        for r in cluster.rows(
            DE, "SELECT case_id, pulls FROM partner_cases WHERE partner = :p", p=DE_BKA
        )
    }
    assert pulls == dict.fromkeys(scenario.baseline_case_ids, 2)

    keep = scenario.baseline_case_ids[2]
    answer = bka.ack(scenario.baseline_case_ids[:2])
    assert answer.acknowledged == 2
    assert list(answer.unknown) == []
    # Acknowledging again changes nothing and is not "unknown" either.
    again = bka.ack(scenario.baseline_case_ids[:2])
    assert (again.acknowledged, list(again.unknown)) == (0, [])

    third = wait_until(lambda: pull(bka), 10, what="the unacknowledged case to come again")
    assert ids(third) == [keep]
    assert bka.ack([keep]).acknowledged == 1
    time.sleep(VISIBILITY_TIMEOUT_S + 0.2)
    assert pull(bka) == []
    acked = cluster.count(DE, "partner_cases", "partner = :p AND acked_at IS NOT NULL", p=DE_BKA)
    assert acked == 3


def test_a_partner_never_reaches_another_partners_cases(
    cluster: Cluster, scenario: DeScenario, bka: PartnerClient, lka: PartnerClient
) -> None:
    national = scenario.national_case_id
    bka_cases = scenario.baseline_case_ids

    # de-lka sees only its national case.
    assert ids(pull(lka)) == [national]

    # de-bka acknowledging de-lka's case (and ids that exist nowhere): unknown, nothing changes.
    answer = bka.ack([national, "no-such-case", bka_cases[0]])
    assert answer.acknowledged == 1
    assert sorted(answer.unknown) == sorted([national, "no-such-case"])
    # de-lka acknowledging de-bka's cases: unknown too.
    answer = lka.ack(bka_cases[1:])
    assert (answer.acknowledged, sorted(answer.unknown)) == (0, sorted(bka_cases[1:]))

    acked = {
        (r.partner, r.case_id)
        for r in cluster.rows(
            DE, "SELECT partner, case_id FROM partner_cases WHERE acked_at IS NOT NULL"
        )
    }
    assert acked == {(DE_BKA, bka_cases[0])}
    # Both still get their unacknowledged cases back after the timeout.
    assert wait_until(lambda: ids(pull(lka)), 10) == [national]
    assert sorted(wait_until(lambda: ids(pull(bka)), 10)) == sorted(bka_cases[1:])


def test_a_case_of_two_partners_is_acknowledged_by_each_for_itself(
    cluster: Cluster, scenario: DeScenario, bka: PartnerClient, lka: PartnerClient
) -> None:
    both = make_submission(
        url_in("DE", "/pull/both.jpg"),
        items=[
            make_test_item("both-baseline"),
            make_test_item("both-national", classification=Classification.NATIONAL),
        ],
    )
    answer = cluster.submit(NL, [both])[0]
    wait_until(
        lambda: cluster.count(DE, "partner_cases") == 6, 30, what="the case assigned to both"
    )
    shared = str(cluster.scalar(DE, "SELECT id FROM cases WHERE url = :u", u=answer.canonical_url))
    assert shared in ids(pull(bka))
    assert shared in ids(pull(lka))

    assert bka.ack([shared]).acknowledged == 1
    # Still de-lka's to pull and to acknowledge.
    assert shared in ids(wait_until(lambda: pull(lka), 10))
    assert lka.ack([shared]).acknowledged == 1
    assert (
        cluster.count(DE, "partner_cases", "case_id = :c AND acked_at IS NOT NULL", c=shared) == 2
    )


def test_a_subject_that_is_no_partner_is_refused(cluster: Cluster, scenario: DeScenario) -> None:
    # nl-police is a partner of nl-eokm, not of de-eco; an analyst is no partner anywhere.
    for subject in (NL_POLICE, "analyst"):
        token = pull_token(cluster, DE, subject)
        with PartnerClient(cluster.address(DE), token=token) as client:
            assert status_of(partial(pull, client)) is grpc.StatusCode.PERMISSION_DENIED
            assert (
                status_of(partial(client.ack, scenario.baseline_case_ids))
                is grpc.StatusCode.PERMISSION_DENIED
            )
    assert cluster.count(DE, "partner_cases", "pulls > 0 OR acked_at IS NOT NULL") == 0
    assert cluster.count(DE, "routing_log", "kind IN ('pulled', 'acked')") == 0

    # nl-police is served by nl-eokm: its one NL-hosted case.
    with PartnerClient(cluster.address(NL), token=pull_token(cluster, NL, NL_POLICE)) as client:
        cases = pull(client)
    assert [c.url for c in cases] == [scenario.nl_answers[4].canonical_url]
    assert cases[0].hosting_country == "NL"


def test_every_pull_is_in_the_routing_log(
    cluster: Cluster, scenario: DeScenario, bka: PartnerClient, lka: PartnerClient
) -> None:
    first = pull(bka, limit=2)
    rest = pull(bka, first[-1].cursor)
    time.sleep(VISIBILITY_TIMEOUT_S + 0.1)  # both pulls' leases have run out
    redelivered = pull(bka)
    national = pull(lka)
    handed_out = [*first, *rest, *redelivered]
    assert len(handed_out) == 6

    with LogClient(cluster.address(DE), token=log_token(cluster, DE)) as client:
        pulled = list(client.entries(kind="pulled"))
    by_partner: dict[str, list[dict[str, Any]]] = {}
    for entry in pulled:
        by_partner.setdefault(entry.member, []).append(json.loads(entry.detail_json))
        assert entry.country == "DE"
        assert entry.HasField("at")
    assert [(d["case"], str(d["cursor"])) for d in by_partner[DE_BKA]] == [
        (c.id, c.cursor) for c in handed_out
    ]
    assert [d["case"] for d in by_partner[DE_LKA]] == ids(national)
    assert set(by_partner) == {DE_BKA, DE_LKA}
    # Each entry names the case's first report, so a coordinator can follow it.
    first_reports = {c.id: c.reports[0].report.id for c in handed_out}
    assert {e.report_id for e in pulled if e.member == DE_BKA} == set(first_reports.values())
    assert cluster.log_break(DE) is None


def test_cli_cases_pull_writes_json_lines_and_acknowledges(
    cluster: Cluster, scenario: DeScenario, tmp_path: Path
) -> None:
    runner = CliRunner()
    token = pull_token(cluster, DE, DE_BKA)
    out = tmp_path / "cases.jsonl"
    args = ["cases", "pull", "--node", cluster.address(DE), "--token", token]
    # Pages of two, each acknowledged once written.
    result = runner.invoke(app, [*args, "--page-size", "2", "--ack", "--out", str(out)])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "3 case(s) pulled, 3 acknowledged" in result.stderr

    documents = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(d["id"] for d in documents) == sorted(scenario.baseline_case_ids)
    by_url = {d["url"]: d for d in documents}
    for i, answer in enumerate(scenario.nl_answers[:3]):
        doc = by_url[answer.canonical_url]
        assert doc["hosting_country"] == "DE"
        assert doc["reporting_members"] == ([NL, US] if i == 0 else [NL])
        assert doc["takedown_clock_started"] is not None
        part = doc["reports"][0]
        assert part["reporting_member"] == NL
        assert part["receipt_verified"] is True
        body = base64.b64decode(part["receipt"]["body_b64"])
        key_id, at = receipt_key_and_time(body)
        signature = base64.b64decode(part["receipt"]["signature_b64"])
        cluster.fed.manifest.verify_member_signature(DE, key_id, at, body, signature)
        report = part["report"]
        assert report["id"] == answer.report_id
        assert report["url"] == answer.canonical_url
        assert report["trace"]["country"] == "DE"
        assert [(a["address"], a["country"], a["asn"]) for a in report["trace"]["addresses"]] == [
            (ADDRESS_IN["DE"], "DE", 24940)
        ]
        # The words ihx submit takes, not protobuf's enum names.
        assert [item["classification"] for item in report["items"]] == ["baseline"] * 2
        assert [item["hashes"] for item in report["items"]] == [
            [f"sha256:{content_hash(f'pull-{i}-a').hex}"],
            [f"sha256:{content_hash(f'pull-{i}-b').hex}"],
        ]
        assert report["site_type"] == "image_host"
        assert report["decision"]["reason"] == "served-member"

    acked = cluster.count(DE, "partner_cases", "partner = :p AND acked_at IS NOT NULL", p=DE_BKA)
    assert acked == 3
    # Acknowledged: nothing comes again, even after the visibility timeout.
    time.sleep(VISIBILITY_TIMEOUT_S + 0.2)
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert "0 case(s) pulled" in result.stderr

    # Without --ack to stdout: de-lka's case, written, and not acknowledged.
    lka_args = ["cases", "pull", "--node", cluster.address(DE)]
    result = runner.invoke(app, [*lka_args, "--token", pull_token(cluster, DE, DE_LKA)])
    assert result.exit_code == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [scenario.national_case_id]
    assert cluster.count(DE, "partner_cases", "partner = :p AND acked_at IS NULL", p=DE_LKA) == 1

    # A token without cases:pull: one error line, exit 2.
    wrong = cluster.fed.token(DE, Scope.LOG_READ, subject=DE_BKA)
    result = runner.invoke(app, [*lka_args, "--token", wrong])
    assert result.exit_code == 2
    assert result.stderr.startswith("ihx: error: ")
    assert "PERMISSION_DENIED" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_cli_pull_limit_is_a_total_and_the_visibility_timeout_is_said(
    cluster: Cluster, scenario: DeScenario
) -> None:
    runner = CliRunner()
    args = ["cases", "pull", "--node", cluster.address(DE)]
    args += ["--token", pull_token(cluster, DE, DE_BKA)]
    # --limit counts cases in all, across pages of --page-size.
    result = runner.invoke(app, [*args, "--limit", "2", "--page-size", "1", "--visibility", "1h"])
    assert result.exit_code == 0, result.stdout + result.stderr
    documents = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(documents) == 2
    until = {d["invisible_until"] for d in documents}
    assert len(until) == 2
    assert None not in until
    assert "2 case(s) pulled" in result.stderr
    assert "not acknowledged: hidden from every pull until" in result.stderr
    assert documents[-1]["invisible_until"][:19] in result.stderr  # to the second
    # An hour, not the node's 0.5 s: the two stay hidden, the third comes.
    time.sleep(VISIBILITY_TIMEOUT_S + 0.2)
    result = runner.invoke(app, [*args, "--ack"])
    assert result.exit_code == 0, result.stdout + result.stderr
    rest = [json.loads(line)["id"] for line in result.stdout.splitlines()]
    assert len(rest) == 1
    assert rest[0] not in {d["id"] for d in documents}
    assert "not acknowledged" not in result.stderr


def test_cli_pull_refuses_a_visibility_out_of_bounds(
    cluster: Cluster, scenario: DeScenario
) -> None:
    args = ["cases", "pull", "--node", cluster.address(DE)]
    args += ["--token", pull_token(cluster, DE, DE_BKA)]
    result = CliRunner().invoke(app, [*args, "--visibility", "2d"])
    assert result.exit_code == 2
    assert "--visibility: from 1s to 1d" in result.stderr
    # The node holds the bound too, for any client.
    with PartnerClient(cluster.address(DE), token=pull_token(cluster, DE, DE_BKA)) as client:
        code = status_of(lambda: client.pull_page("", 10, visibility_s=86_401))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
