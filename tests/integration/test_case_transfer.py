"""A moved case re-assigned to the new country's member, on four real nodes over real gRPC.

nl-eokm (and us-ncmec) report DE-hosted URLs; de-eco holds the cases, assesses them and then
records a ``moved`` action (``node.case_work``, what the Cases service and the takedown
scheduler call). The member serving the new country must receive the case — linked to
de-eco's, its items unassessed with a fresh takedown clock, de-eco's steps kept as history —
and every origin and the coordinator must see the move and then the new holder's steps:

- a move to us-ncmec: the new case, its history, the new holder's steps seen by the origin and
  the coordinator, ``verify-report`` at the new holder, the old holder's link to the new case;
- a move to the origin's own country: nl-eokm holds its own report now (and its partner
  nl-police gets the case by its rules);
- a merged case of two origins moves as one: one case at the new holder, each origin told;
- a withdrawal after the move reaches the new holder.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from exchange.client.case_text import move_text
from exchange.domain import Classification
from exchange.lifecycle.model import (
    Action,
    ActionKind,
    Assessment,
    EventKind,
    Move,
    Stage,
    TakeOver,
    Withdrawal,
    WithdrawalReason,
)
from exchange.ops.verify import verify_report
from routing.canonical import canonicalize
from tests.exchange.factories import make_submission, url_in
from tests.integration.case_flow import deliver, quiet, stages, status, wait_for_events
from tests.integration.partner_cluster import NL_POLICE, new_partner_cluster, stop_senders
from tests.integration.support import COORDINATOR, DE, NL, US, Cluster, wait_until

pytestmark = pytest.mark.timeout(90)

BASELINE = Assessment(Classification.BASELINE, analyst_ref="an-7")
LEA = Action(ActionKind.REPORTED_TO_LEA, partner="de-bka")
REMOVED = Action(ActionKind.REMOVED)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = new_partner_cluster(tmp_path_factory.mktemp("transfer"))
    try:
        yield cluster
    finally:
        stop_senders(cluster)
        cluster.close()


def moved(country: str) -> Action:
    return Action(ActionKind.MOVED, moved_to_country=country)


def taken_over(net: Cluster, member: str, report_id: str) -> Move:
    """The report's move as ``member`` sees it, once the new holder's take-over arrived."""

    def found() -> Move | None:
        return next((m for m in status(net, member, report_id).moves if m.to_case), None)

    move = wait_until(found, 15, what=f"the take-over of {report_id} at {member}")
    assert move is not None
    return move


def test_a_move_re_assigns_the_case_with_its_history(net: Cluster) -> None:
    url = url_in("DE", "/transfer/full.jpg")
    rid, cid = deliver(net, NL, make_submission(url, hashes=["tr-full-1", "tr-full-2"]))
    de = net.node(DE).case_work
    before = [de.assess(cid, [], BASELINE), de.act(cid, [], LEA)]
    move = de.act(cid, [], moved("US"))

    seen = taken_over(net, NL, rid)
    new_case = seen.to_case
    assert (seen.from_member, seen.from_case, seen.to_member) == (DE, cid, US)
    assert (seen.from_country, seen.country) == ("DE", "US")
    assert move_text(seen) == f"moved DE→US, now held by us-ncmec as case {new_case}"

    # At the new holder: its own case, linked to de-eco's, unassessed, de-eco's steps as history.
    held = net.node(US).case_views.case(new_case)
    assert held.holder == US
    assert held.url == canonicalize(url).url
    assert held.hosting_country == "US"
    assert held.reporting_members == (NL,)
    assert held.moved_from is not None
    assert (held.moved_from.from_member, held.moved_from.from_case) == (DE, cid)
    assert [e.id for e in held.history] == [e.id for e in (*before, move)]
    assert {s.stage for s in held.items} == {Stage.UNASSESSED}
    assert all(s.holder == US and s.assessment is None for s in held.items)
    receipt_at = held.items[0].clock_started
    assert receipt_at is not None
    assert receipt_at >= move.at
    (take_over,) = held.timeline
    assert take_over.kind is EventKind.TAKEN_OVER
    assert take_over.body == TakeOver(DE, cid, move.id, "US")

    # The new holder assesses under its own law and acts; the origin and coordinator see it.
    us = net.node(US).case_work
    steps = [take_over, us.assess(new_case, [], BASELINE), us.act(new_case, [], REMOVED)]
    assert [e.sequence for e in steps] == [1, 1, 2]  # a take-over stands outside the sequence
    for member in (NL, COORDINATOR):
        wait_for_events(net, member, new_case, steps)
    seen = taken_over(net, NL, rid)
    assert [e.id for e in seen.timeline] == [e.id for e in steps]
    assert {s.stage for s in seen.items} == {Stage.REMOVED}
    assert all(s.holder == US and s.clock_started == receipt_at for s in seen.items)
    at_origin = status(net, NL, rid)
    assert set(stages(at_origin.items).values()) == {Stage.MOVED}  # de-eco's case stays moved
    assert [e.id for e in at_origin.timeline] == [e.id for e in (*before, move)]
    coordinated = net.node(COORDINATOR).case_views.case(new_case)
    assert coordinated.holder == US
    assert not coordinated.open
    assert coordinated.moved_from is not None
    assert coordinated.moved_from.from_case == cid

    # The old holder links its case to the new one (from the new holder's signed receipt).
    wait_until(
        lambda: net.node(DE).case_views.case(cid).moved_to,
        10,
        what="the receipt of the transfer at de-eco",
    )
    (out,) = net.node(DE).case_views.case(cid).moved_to
    assert (out.to_member, out.to_case, out.country) == (US, new_case, "US")

    # The report verifies at the new holder against its origin's own envelope.
    node = net.node(US)
    result = verify_report(node.engine, rid, manifest=node.manifests.current(), self_member=US)
    assert result.ok, result.checks
    assert [c.name for c in result.checks][1:] == [
        "leaf of the old holder's transfer envelope (Merkle inclusion proof)",
        "transfer envelope signature by the old holder's key",
        "the origin's signed report names the old holder",
        "the origin's own envelope (its signature, the report a leaf of it)",
        "our receipt is signed by us and names the transfer",
    ]

    # us-ncmec placed de-eco's fresh trace itself: still in DE by its GeoIP, flagged.
    assert net.rows(
        US, "SELECT geo_country, geo_agrees FROM case_transfers WHERE to_case = :c", c=new_case
    ) == [("DE", False)]
    assert net.count(US, "routing_log", "kind = 'geo-disagreement' AND report_id = :r", r=rid) == 1
    for member in (NL, DE, US, COORDINATOR):
        assert net.log_break(member) is None


def test_a_move_to_the_origins_country_hands_it_its_own_report(net: Cluster) -> None:
    url = url_in("DE", "/transfer/home.jpg")
    rid, cid = deliver(net, NL, make_submission(url, hashes=["tr-home-1"]))
    net.node(DE).case_work.assess(cid, [], BASELINE)
    move = net.node(DE).case_work.act(cid, [], moved("NL"))

    seen = taken_over(net, NL, rid)
    assert (seen.to_member, seen.from_case) == (NL, cid)
    held = net.node(NL).case_views.case(seen.to_case)
    assert held.holder == NL
    assert held.hosting_country == "NL"
    assert held.moved_from is not None
    assert held.moved_from.from_case == cid
    assert [e.id for e in held.history][-1] == move.id
    assert net.scalar(NL, "SELECT role FROM reports WHERE id = :r", r=rid) == "origin"
    # nl-eokm's own partner rule (NL-hosted baseline cases) assigns the case it now holds.
    assert (
        net.count(NL, "partner_cases", "partner = :p AND case_id = :c", p=NL_POLICE, c=seen.to_case)
        == 1
    )

    nl = net.node(NL).case_work
    steps = [
        held.timeline[0],
        nl.assess(seen.to_case, [], BASELINE),
        nl.act(seen.to_case, [], REMOVED),
    ]
    wait_for_events(net, COORDINATOR, seen.to_case, steps)
    assert {s.stage for s in net.node(COORDINATOR).case_views.case(seen.to_case).items} == {
        Stage.REMOVED
    }


def test_a_merged_case_moves_as_one_and_every_origin_is_told(net: Cluster) -> None:
    url = url_in("DE", "/transfer/merged.jpg")
    nl_rid, cid = deliver(net, NL, make_submission(url, hashes=["tr-m-nl"]))
    us_rid, us_cid = deliver(net, US, make_submission(url, hashes=["tr-m-us"]))
    assert us_cid == cid
    move = net.node(DE).case_work.act(cid, [], moved("JP"))  # JP is us-ncmec's by orphan rule
    assert isinstance(move.body, Action)
    assert move.body.moved_to_member == US

    seen = taken_over(net, NL, nl_rid)
    own = taken_over(net, US, us_rid)
    assert seen.to_case == own.to_case  # both reports' items in one case at us-ncmec
    held = net.node(US).case_views.case(seen.to_case)
    assert set(held.reporting_members) == {NL, US}
    assert {s.ref.report_id for s in held.items} == {nl_rid, us_rid}
    assert net.scalar(US, "SELECT role FROM reports WHERE id = :r", r=us_rid) == "origin"
    assert [e.id for e in held.history] == [move.id]
    # The case is orphaned at us-ncmec: it serves JP only by the orphan rule.
    assert net.count(US, "item_states", "case_id = :c AND orphaned", c=seen.to_case) == 2

    us = net.node(US).case_work
    assessed = us.assess(seen.to_case, [], BASELINE)
    quiet(net)
    for member in (NL, COORDINATOR):
        view = net.node(member).case_views.case(seen.to_case)
        assert assessed.id in [e.id for e in view.timeline]
    assert {s.stage for s in taken_over(net, NL, nl_rid).items} == {Stage.ASSESSED}


def test_a_withdrawal_after_the_move_reaches_the_new_holder(net: Cluster) -> None:
    rid, cid = deliver(
        net, NL, make_submission(url_in("DE", "/transfer/withdrawn.jpg"), hashes=["tr-w-1"])
    )
    net.node(DE).case_work.act(cid, [], moved("US"))
    seen = taken_over(net, NL, rid)
    net.node(NL).case_work.withdraw(rid, Withdrawal(WithdrawalReason.MISREPORT))
    wait_until(
        lambda: (
            {s.stage for s in net.node(US).case_views.case(seen.to_case).items} == {Stage.WITHDRAWN}
        ),
        10,
        what="the withdrawal at us-ncmec",
    )
    wait_until(
        lambda: {s.stage for s in taken_over(net, NL, rid).items} == {Stage.WITHDRAWN},
        10,
        what="the new holder's confirmation at nl-eokm",
    )
    assert net.scalar(US, "SELECT status FROM cases WHERE id = :c", c=seen.to_case) == "closed"


def test_a_case_the_holder_reported_itself_moves_on_its_own_signature(net: Cluster) -> None:
    (answer,) = net.submit(DE, [make_submission(url_in("DE", "/transfer/own.jpg"), hashes=["o"])])
    rid = answer.report_id
    cid = status(net, DE, rid).case_id  # a local decision: de-eco's own case
    net.node(DE).case_work.assess(cid, [], BASELINE)
    net.node(DE).case_work.act(cid, [], moved("US"))

    seen = taken_over(net, DE, rid)  # de-eco is the origin: us-ncmec's take-over reaches it
    assert (seen.to_member, seen.from_case) == (US, cid)
    node = net.node(US)
    result = verify_report(node.engine, rid, manifest=node.manifests.current(), self_member=US)
    assert result.ok, result.checks
    origin_check = result.checks[4]
    assert origin_check.name == "the origin's own envelope (its signature, the report a leaf of it)"
    assert origin_check.detail == "de-eco made it and held it (its signature is the transfer's)"
    wait_for_events(
        net, COORDINATOR, seen.to_case, [net.node(US).case_views.case(seen.to_case).timeline[0]]
    )
