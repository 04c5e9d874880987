"""The federated case lifecycle on four real nodes: every step signed, delivered and folded alike.

nl-eokm (and us-ncmec) report DE-hosted URLs; de-eco holds the cases and works them through
``node.case_work`` (what the Cases service calls); each hotline that reported a case and the
coordinator (inhope) must see every step through ``node.case_views``, with its times, in the
order de-eco made them. One partner federation serves the module (de-bka pulls de-eco's
baseline cases); every test uses URLs of its own.

- the full lifecycle (assessed → law enforcement → host notice → removed) seen by the origin
  and the coordinator, the case closing at the holder, a new report of the URL opening a new case;
- a merged case: both origins — the later one included, which joins after the first step —
  get every event, and the case closes only when the items of both reports are closed;
- every rule refused with nothing changed on any node;
- disputes, and an overruled national assessment kept in the timeline;
- withdrawal: the holder closes the report's items, the case closes unless another report keeps
  it open, the partner is offered the case again, the withdrawn report's hash sightings leave
  every node's index (a hash another live report carries stays), and a withdrawal sent before
  the report's receipt follows the report;
- exactly once through restarts of the origin and the holder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from exchange.client.stubs import PartnerClient
from exchange.domain import AgeGroup, Classification
from exchange.errors import NotAssigned, NotFound, TransitionRefused
from exchange.lifecycle.model import (
    Action,
    ActionKind,
    Assessment,
    CaseEvent,
    EventKind,
    Gender,
    Queue,
    ReasonCode,
    Stage,
    Withdrawal,
    WithdrawalReason,
)
from exchange.lifecycle.work import CaseWork
from tests.exchange.factories import content_hash, make_submission, make_test_item, url_in
from tests.integration.case_flow import (
    case_stages,
    deliver,
    expected,
    fold_view,
    hash_rows,
    quiet,
    snapshot,
    stages,
    status,
    stored_events,
    wait_for_events,
)
from tests.integration.partner_cluster import DE_BKA, new_partner_cluster, pull_token, stop_senders
from tests.integration.support import COORDINATOR, DE, NL, US, Cluster, wait_until

pytestmark = pytest.mark.timeout(60)

BASELINE = Assessment(
    Classification.BASELINE,
    age_group=AgeGroup.PREPUBESCENT,
    gender=Gender.FEMALE,
    analyst_ref="an-17",
)
NATIONAL = Assessment(Classification.NATIONAL, analyst_ref="an-17")
NOT_ILLEGAL = Assessment(Classification.NOT_ILLEGAL, analyst_ref="an-17")
LEA = Action(ActionKind.REPORTED_TO_LEA, partner=DE_BKA, reference="bka-2026-0117")
HOST = Action(ActionKind.REPORTED_TO_HOST, recipient="abuse@hosting-de.example")
REMOVED = Action(ActionKind.REMOVED)
RECEIVERS = (NL, COORDINATOR)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = new_partner_cluster(tmp_path_factory.mktemp("lifecycle"))
    try:
        yield cluster
    finally:
        for member in ("nl-eokm", "de-eco", "us-ncmec", "inhope"):
            if member not in cluster.nodes:  # a test that failed with a node stopped
                cluster.start(member)
        stop_senders(cluster)
        cluster.close()


def work(cluster: Cluster, member: str = DE) -> CaseWork:
    return cluster.node(member).case_work


# -- the full lifecycle ---------------------------------------------------------------------


def test_origin_and_coordinator_see_every_step_in_order_with_times(net: Cluster) -> None:
    url = url_in("DE", "/life/full.jpg")
    rid, cid = deliver(net, NL, make_submission(url, hashes=["life-full-1", "life-full-2"]))
    delivered = status(net, NL, rid)
    assert delivered.delivery == "new-case"
    assert delivered.destination == DE
    assert delivered.receipted_at is not None
    assert not delivered.timeline
    assert set(stages(delivered.items).values()) == {Stage.UNASSESSED}

    de = work(net)
    events = [de.assess(cid, [], BASELINE), de.act(cid, [], LEA), de.act(cid, [], HOST)]
    assert net.scalar(DE, "SELECT status FROM cases WHERE id = :c", c=cid) == "open"
    events.append(de.act(cid, [], REMOVED))
    assert [e.sequence for e in events] == [1, 2, 3, 4]
    for member in RECEIVERS:
        wait_for_events(net, member, cid, events)

    seen = status(net, NL, rid)
    assert [e.id for e in seen.timeline] == [e.id for e in events]
    assert [(e.kind, getattr(e.body, "kind", None)) for e in seen.timeline] == [
        (EventKind.ASSESSMENT, None),
        (EventKind.ACTION, ActionKind.REPORTED_TO_LEA),
        (EventKind.ACTION, ActionKind.REPORTED_TO_HOST),
        (EventKind.ACTION, ActionKind.REMOVED),
    ]
    assessed, lea, host, removed = (e.at for e in events)
    for item in seen.items:
        # delivered (the signed receipt starts the clock) → assessed → LEA → host → removed
        assert item.clock_started == seen.receipted_at == delivered.receipted_at
        assert (item.assessed_at, item.lea_at, item.host_notice_at, item.closed_at) == (
            assessed,
            lea,
            host,
            removed,
        )
        assert seen.receipted_at < assessed < lea < host < removed
        assert item.stage is Stage.REMOVED
        assert item.assessment == BASELINE
        assert (item.lea_partner, item.host_recipient) == (DE_BKA, HOST.recipient)

    # The coordinator holds no report of it, yet sees the same case: timeline and every item.
    held = net.node(DE).case_views.case(cid)
    coordinated = net.node(COORDINATOR).case_views.case(cid)
    assert coordinated.holder == DE
    assert coordinated.reporting_members == (NL,)
    assert [e.id for e in coordinated.timeline] == [e.id for e in events]
    assert [fold_view(s) for s in coordinated.items] == [fold_view(s) for s in held.items]
    assert [fold_view(s) for s in seen.items] == [fold_view(s) for s in held.items]
    assert not coordinated.open
    assert coordinated.closed_at == removed

    # All items closed: the case closed at the holder, and the URL is free for a new case.
    assert (
        net.rows(DE, "SELECT status, closed_at FROM cases WHERE id = :c", c=cid)[0][0] == "closed"
    )
    assert held.closed_at == removed
    assert not held.open
    rid2, cid2 = deliver(net, NL, make_submission(url, hashes=["life-full-again"]))
    assert cid2 != cid
    assert status(net, NL, rid2).delivery == "new-case"
    assert net.scalar(DE, "SELECT status FROM cases WHERE id = :c", c=cid2) == "open"

    # Every step is a routing-log entry at the holder, and each node's log still verifies.
    logged = net.rows(
        DE,
        "SELECT kind FROM routing_log WHERE detail LIKE :c AND kind IN ('assessed', 'acted')"
        " ORDER BY idx",
        c=f'%"{cid}"%',
    )
    assert [r.kind for r in logged] == ["assessed", "acted", "acted", "acted"]
    quiet(net)
    for member in net.nodes:
        assert net.log_break(member) is None, member


def test_merged_case_every_origin_gets_every_event(net: Cluster) -> None:
    url = url_in("DE", "/life/merged.jpg")
    nl_rid, cid = deliver(net, NL, make_submission(url, hashes=["life-merged-nl"]))
    de = work(net)
    events = [de.assess(cid, [(nl_rid, 0)], NATIONAL)]  # before us-ncmec's report joins
    us_rid, us_cid = deliver(net, US, make_submission(url, hashes=["life-merged-us"]))
    assert us_cid == cid
    assert status(net, US, us_rid).delivery == "merged"

    events += [de.assess(cid, [(us_rid, 0)], BASELINE), de.act(cid, [], LEA)]
    events.append(de.act(cid, [(nl_rid, 0)], REMOVED))
    assert net.scalar(DE, "SELECT status FROM cases WHERE id = :c", c=cid) == "open"
    unavailable = Action(ActionKind.UNAVAILABLE, reason=ReasonCode.CONTENT_NOT_FOUND)
    events.append(de.act(cid, [(us_rid, 0)], unavailable))
    assert net.scalar(DE, "SELECT status FROM cases WHERE id = :c", c=cid) == "closed"

    # Both origins and the coordinator hold all five, in order: us-ncmec's first event came
    # when its report joined the case, before the ones made after.
    for member in (NL, US, COORDINATOR):
        wait_for_events(net, member, cid, events)
    held = [fold_view(s) for s in net.node(DE).case_views.case(cid).items]
    for member in (NL, US, COORDINATOR):
        assert [fold_view(s) for s in net.node(member).case_views.case(cid).items] == held

    us = status(net, US, us_rid)
    assert [i.stage for i in us.items] == [Stage.UNAVAILABLE]
    assert us.items[0].close_reason is ReasonCode.CONTENT_NOT_FOUND
    assert [e.id for e in us.timeline] == [events[i].id for i in (1, 2, 4)]
    nl = status(net, NL, nl_rid)
    assert [i.stage for i in nl.items] == [Stage.REMOVED]
    assert [e.id for e in nl.timeline] == [events[i].id for i in (0, 2, 3)]
    assert net.node(COORDINATOR).case_views.case(cid).reporting_members == (NL, US)


def test_a_move_names_the_member_the_routing_rules_give(net: Cluster) -> None:
    rid, cid = deliver(net, NL, make_submission(url_in("DE", "/life/moved.jpg"), hashes=["mv"]))
    event = work(net).act(cid, [], Action(ActionKind.MOVED, moved_to_country="JP"))
    body = event.body
    assert isinstance(body, Action)
    assert body.moved_to_member == US
    wait_for_events(net, NL, cid, [event])
    (item,) = status(net, NL, rid).items
    assert (item.stage, item.moved_to_country, item.moved_to_member) == (Stage.MOVED, "JP", US)
    assert net.scalar(DE, "SELECT status FROM cases WHERE id = :c", c=cid) == "closed"


# -- every rule refused, nothing changed ----------------------------------------------------

Step = Callable[[CaseWork, str, str], object]


def assess(a: Assessment, index: int | None = None) -> Step:
    return lambda w, cid, rid: w.assess(cid, [] if index is None else [(rid, index)], a)


def act(a: Action, index: int | None = None) -> Step:
    return lambda w, cid, rid: w.act(cid, [] if index is None else [(rid, index)], a)


RULES: dict[str, tuple[list[Step], Step, str]] = {
    "baseline re-classified national": (
        [assess(BASELINE)],
        assess(NATIONAL),
        "baseline is locked: nobody re-classifies it",
    ),
    "baseline re-classified not illegal": (
        [assess(BASELINE)],
        assess(NOT_ILLEGAL),
        "baseline is locked: nobody re-classifies it",
    ),
    "not illegal re-assessed": (
        [assess(NOT_ILLEGAL)],
        assess(BASELINE),
        "only a national assessment can be overruled",
    ),
    "re-assessment after an action": (
        [assess(NATIONAL), act(LEA)],
        assess(BASELINE),
        "no re-assessment after an action",
    ),
    "action on a removed item": (
        [assess(BASELINE), act(REMOVED)],
        act(HOST, 0),
        "the item is closed (removed); no further action",
    ),
    "action on a case with every item closed": (
        [assess(BASELINE), act(REMOVED)],
        act(HOST),
        "every item is closed",
    ),
    "assessment of a closed item": (
        [act(Action(ActionKind.UNAVAILABLE, reason=ReasonCode.SITE_DOWN))],
        assess(BASELINE, 1),
        "the item is closed (unavailable); no further assessment",
    ),
    "law enforcement unassessed": (
        [],
        act(LEA),
        "reported_to_lea needs the item assessed illegal",
    ),
    "host notice on a not-illegal item": (
        [assess(NOT_ILLEGAL)],
        act(HOST),
        "reported_to_host needs the item assessed illegal",
    ),
    "removed unassessed": ([], act(REMOVED), "removed needs the item assessed illegal"),
    "unavailable with a not-illegal reason": (
        [],
        act(Action(ActionKind.UNAVAILABLE, reason=ReasonCode.ADULT_PORNOGRAPHY)),
        "unavailable takes one of",
    ),
    "unavailable without a reason": (
        [],
        act(Action(ActionKind.UNAVAILABLE)),
        "unavailable takes one of",
    ),
    "not illegal with an unavailable reason": (
        [],
        act(Action(ActionKind.NOT_ILLEGAL, reason=ReasonCode.SITE_DOWN)),
        "not_illegal takes one of",
    ),
    "not illegal without a reason": (
        [],
        act(Action(ActionKind.NOT_ILLEGAL)),
        "not_illegal takes one of",
    ),
    "not illegal on baseline": (
        [assess(BASELINE)],
        act(Action(ActionKind.NOT_ILLEGAL, reason=ReasonCode.ADULT_PORNOGRAPHY)),
        "baseline is locked: it is never declared not illegal",
    ),
    "not illegal on national": (
        [assess(NATIONAL)],
        act(Action(ActionKind.NOT_ILLEGAL, reason=ReasonCode.DOES_NOT_MEET_THRESHOLD)),
        "assessed national: overrule the assessment before not_illegal",
    ),
    "moved naming another member than the rules": (
        [],
        act(Action(ActionKind.MOVED, moved_to_country="US", moved_to_member=NL)),
        "the routing rules assign it to us-ncmec, not nl-eokm",
    ),
    # All or nothing: item 0 may go to law enforcement, item 1 (unassessed) may not.
    "one item of two refused": (
        [assess(BASELINE, 0)],
        act(LEA),
        "#1: reported_to_lea needs the item assessed illegal",
    ),
}


@pytest.fixture(scope="module")
def rule_cases(net: Cluster) -> dict[str, tuple[str, str]]:
    """Rule → (report id, case id): one two-item case per rule, delivered in one go (and the
    federation quiet after, so the snapshots see only what each test does)."""
    slugs = {rule: rule.replace(" ", "-") for rule in RULES}
    answers = net.submit(
        NL,
        [
            make_submission(url_in("DE", f"/rules/{s}.jpg"), hashes=[f"{s}-0", f"{s}-1"])
            for s in slugs.values()
        ],
    )
    views = net.node(NL).case_views
    out = {
        rule: (a.report_id, wait_until(lambda a=a: views.report_status(a.report_id).case_id, 10))
        for rule, a in zip(RULES, answers, strict=True)
    }
    quiet(net)
    return out


@pytest.mark.parametrize("rule", list(RULES))
def test_every_rule_refused_with_nothing_changed(
    net: Cluster, rule_cases: dict[str, tuple[str, str]], rule: str
) -> None:
    setup, forbidden, message = RULES[rule]
    rid, cid = rule_cases[rule]
    de = work(net)
    for step in setup:
        step(de, cid, rid)
    quiet(net)
    before = {m: snapshot(net, m) for m in net.nodes}
    with pytest.raises(TransitionRefused) as refused:
        forbidden(de, cid, rid)
    assert message in refused.value.message
    quiet(net)
    assert {m: snapshot(net, m) for m in net.nodes} == before


def test_only_the_assigned_member_works_a_case(net: Cluster) -> None:
    rid, cid = deliver(net, NL, make_submission(url_in("DE", "/rules/assigned.jpg"), hashes=["as"]))
    quiet(net)
    before = {m: snapshot(net, m) for m in net.nodes}
    # The origin knows the case from de-eco's receipt alone (no event yet) ...
    with pytest.raises(NotAssigned, match="held by de-eco"):
        work(net, NL).assess(cid, [], BASELINE)
    event = work(net).assess(cid, [], BASELINE)
    wait_for_events(net, NL, cid, [event])
    quiet(net)
    before = {m: snapshot(net, m) for m in net.nodes}
    # ... and from its events; the coordinator from the events only; us-ncmec not at all.
    with pytest.raises(NotAssigned, match="held by de-eco"):
        work(net, NL).act(cid, [], REMOVED)
    with pytest.raises(NotAssigned, match="held by de-eco"):
        work(net, COORDINATOR).assess(cid, [], NATIONAL)
    with pytest.raises(NotFound):
        work(net, US).act(cid, [], LEA)
    # Only the origin withdraws its report: de-eco holds it, but did not send it.
    with pytest.raises(NotAssigned, match="only its origin withdraws it"):
        work(net).withdraw(rid, Withdrawal(WithdrawalReason.MISREPORT))
    quiet(net)
    assert {m: snapshot(net, m) for m in net.nodes} == before


# -- disputes -------------------------------------------------------------------------------


def test_a_dispute_is_seen_by_holder_origin_and_coordinator(net: Cluster) -> None:
    national = make_test_item("dispute-national", classification=Classification.NATIONAL)
    rid, cid = deliver(net, NL, make_submission(url_in("DE", "/dispute/a.jpg"), items=[national]))
    event = work(net).assess(cid, [], NOT_ILLEGAL)
    for member in RECEIVERS:
        wait_for_events(net, member, cid, [event])
    views = {
        DE: net.node(DE).case_views.case(cid).items,
        NL: status(net, NL, rid).items,
        COORDINATOR: net.node(COORDINATOR).case_views.case(cid).items,
    }
    for member, (item,) in views.items():
        # Both classifications kept: the origin's on the item, the holder's as its assessment.
        assert item.disputed, member
        assert item.ref.origin_classification is Classification.NATIONAL, member
        assert item.assessment == NOT_ILLEGAL, member
    disputed, _ = net.node(DE).case_views.queue(Queue.DISPUTED)
    assert cid in {c.id for c in disputed}


def test_an_overruled_national_assessment_stays_in_the_history(net: Cluster) -> None:
    _rid, cid = deliver(net, NL, make_submission(url_in("DE", "/dispute/b.jpg"), hashes=["ov"]))
    de = work(net)
    events = [de.assess(cid, [], NATIONAL)]
    (item,) = net.node(DE).case_views.case(cid).items
    assert item.disputed  # nl-eokm said baseline
    events.append(de.assess(cid, [], BASELINE))
    for member in RECEIVERS:
        wait_for_events(net, member, cid, events)
    for member in RECEIVERS:
        detail = net.node(member).case_views.case(cid)
        assert [e.body for e in detail.timeline] == [NATIONAL, BASELINE], member
        (item,) = detail.items
        assert item.assessment == BASELINE, member
        assert not item.disputed, member
        assert item.assessed_at == events[0].at, member  # the clock keeps the first assessment
    with pytest.raises(TransitionRefused, match="baseline is locked"):
        de.assess(cid, [], NATIONAL)


# -- withdrawal -----------------------------------------------------------------------------


def pulled(client: PartnerClient) -> set[str]:
    return {c.id for c in client.pull("", 100)}


def offered(client: PartnerClient, case_id: str, *, not_: str) -> bool:
    """One pull has ``case_id`` and not ``not_`` (a pulled case hides for the visibility
    timeout, so each look is one pull)."""
    cases = pulled(client)
    return case_id in cases and not_ not in cases


def test_withdrawal_reaches_holder_partner_and_every_hash_index(net: Cluster) -> None:
    x_url, y_url, z_url = (url_in("DE", f"/withdraw/{n}.jpg") for n in "xyz")
    rx, cx = deliver(net, NL, make_submission(x_url, hashes=["wd-x-only", "wd-cross"]))
    _, cz = deliver(net, NL, make_submission(z_url, hashes=["wd-cross"]))  # another case
    ry1, cy = deliver(net, NL, make_submission(y_url, hashes=["wd-y-only", "wd-shared"]))
    ry2, _ = deliver(net, US, make_submission(y_url, hashes=["wd-shared"]))
    hexes = {s: content_hash(s).hex for s in ("wd-x-only", "wd-cross", "wd-y-only", "wd-shared")}
    everywhere = dict.fromkeys(hexes.values(), 1)  # de-eco's sighting, announced to all
    for member in net.nodes:
        wait_until(lambda m=member: hash_rows(net, m, list(hexes.values())) == everywhere, 10)

    first = work(net).assess(cx, [], BASELINE)
    # de-bka pulled case X and acknowledged it: it does not come again ...
    with PartnerClient(net.address(DE), token=pull_token(net, DE, DE_BKA)) as bka:
        assert {cx, cy, cz} <= pulled(bka)
        assert bka.ack([cx]).acknowledged == 1
        wait_until(lambda: offered(bka, cy, not_=cx), 5)

        withdrawn = work(net, NL).withdraw(rx, Withdrawal(WithdrawalReason.MISREPORT, "typo"))
        assert withdrawn is not None
        assert withdrawn.kind is EventKind.WITHDRAWAL
        assert status(net, NL, rx).withdrawn
        assert work(net, NL).withdraw(rx, Withdrawal(WithdrawalReason.OTHER)) is None
        wait_until(lambda: status(net, NL, rx).items[0].stage is Stage.WITHDRAWN, 10)
        # ... until the withdrawal moved it on: the partner's next pull has it again.
        wait_until(lambda: cx in pulled(bka), 5)

    # At the holder: the report's items closed as withdrawn, the case with them.
    assert set(stages(net.node(DE).case_views.case(cx).items).values()) == {Stage.WITHDRAWN}
    assert net.scalar(DE, "SELECT status FROM cases WHERE id = :c", c=cx) == "closed"
    assert net.scalar(DE, "SELECT withdrawn_at FROM reports WHERE id = :r", r=rx) is not None
    (confirmed,) = [
        e for e in net.node(DE).case_views.case(cx).timeline if e.kind is EventKind.WITHDRAWN
    ]
    wait_for_events(net, NL, cx, [first, withdrawn, confirmed])  # its own request too
    wait_for_events(net, COORDINATOR, cx, [first, confirmed])
    seen = status(net, NL, rx)
    assert [e.kind for e in seen.timeline] == [
        EventKind.ASSESSMENT,
        EventKind.WITHDRAWAL,
        EventKind.WITHDRAWN,
    ]

    # Case Y: us-ncmec's report keeps it open; us-ncmec sees nl-eokm's items leave.
    assert work(net, NL).withdraw(ry1, Withdrawal(WithdrawalReason.DUPLICATE)) is not None
    left = {(ry1, 0): Stage.WITHDRAWN, (ry1, 1): Stage.WITHDRAWN}
    wait_until(
        lambda: case_stages(net, US, cy) == left,
        10,
        what="nl-eokm's items withdrawn, at us-ncmec",
        show=lambda: case_stages(net, US, cy),
    )
    assert stages(status(net, US, ry2).items) == {(ry2, 0): Stage.UNASSESSED}
    assert net.scalar(DE, "SELECT status FROM cases WHERE id = :c", c=cy) == "open"

    # The withdrawn reports' own hashes leave every index; hashes a live report carries stay.
    gone = {hexes["wd-x-only"]: 0, hexes["wd-y-only"]: 0}
    kept = {hexes["wd-cross"]: 1, hexes["wd-shared"]: 1}
    for member in net.nodes:
        wait_until(
            lambda m=member: hash_rows(net, m, list(hexes.values())) == {**gone, **kept},
            10,
            what=f"the retractions at {member}",
            show=lambda m=member: hash_rows(net, m, list(hexes.values())),
        )


def test_a_withdrawn_report_loses_its_sightings_even_once_its_items_are_closed(
    net: Cluster,
) -> None:
    rid, cid = deliver(net, NL, make_submission(url_in("DE", "/withdraw/late.jpg"), hashes=["wl"]))
    hexes = [content_hash("wl").hex]
    for member in net.nodes:
        wait_until(lambda m=member: hash_rows(net, m, hexes) == {hexes[0]: 1}, 10)
    de = work(net)
    events = [de.assess(cid, [], BASELINE), de.act(cid, [], REMOVED)]
    wait_for_events(net, NL, cid, events)
    assert work(net, NL).withdraw(rid, Withdrawal(WithdrawalReason.MISREPORT)) is not None
    for member in net.nodes:
        wait_until(
            lambda m=member: hash_rows(net, m, hexes) == {hexes[0]: 0},
            10,
            what=f"the retraction at {member}",
        )
    # Nothing was left to close: the item keeps its outcome, the case stays closed.
    assert net.scalar(DE, "SELECT withdrawn_at FROM reports WHERE id = :r", r=rid) is not None
    assert [i.stage for i in status(net, NL, rid).items] == [Stage.REMOVED]
    assert net.scalar(DE, "SELECT status FROM cases WHERE id = :c", c=cid) == "closed"


def test_withdrawal_before_the_receipt_follows_the_report(net: Cluster) -> None:
    net.stop(DE)
    try:
        (answer,) = net.submit(NL, [make_submission(url_in("DE", "/withdraw/early.jpg"))])
        rid = answer.report_id
        event = work(net, NL).withdraw(rid, Withdrawal(WithdrawalReason.WRONG_URL))
        assert event is not None
        assert event.case_id == ""
        early = status(net, NL, rid)
        assert early.withdrawn
        assert early.delivery in ("queued", "sent")
        assert not early.case_id
    finally:
        net.start(DE)
    wait_until(lambda: status(net, NL, rid).items[0].stage is Stage.WITHDRAWN, 15)
    seen = status(net, NL, rid)
    assert seen.delivery == "new-case"
    assert seen.case_id
    assert net.scalar(DE, "SELECT withdrawn_at FROM reports WHERE id = :r", r=rid) is not None
    assert net.scalar(DE, "SELECT status FROM cases WHERE id = :c", c=seen.case_id) == "closed"
    assert [e.kind for e in seen.timeline] == [EventKind.WITHDRAWAL, EventKind.WITHDRAWN]


# -- exactly once through restarts ------------------------------------------------------------


def test_events_arrive_once_and_in_order_through_restarts(net: Cluster) -> None:
    rid, cid = deliver(
        net, NL, make_submission(url_in("DE", "/restart/a.jpg"), hashes=["r0", "r1"])
    )
    net.stop(NL)
    try:
        de = work(net)
        events: list[CaseEvent] = [
            de.assess(cid, [(rid, 0)], BASELINE),
            de.assess(cid, [(rid, 1)], NATIONAL),
            de.act(cid, [], LEA),
            de.act(cid, [], HOST),
            de.act(cid, [(rid, 0)], REMOVED),
        ]
        wait_for_events(net, COORDINATOR, cid, events)
        assert net.count(DE, "outbox", "destination = :m AND kind = 'event'", m=NL) == 5
        net.stop(DE)  # the holder goes down too, with nl-eokm's events still queued
        net.start(NL)
    finally:
        for member in (NL, DE):
            if member not in net.nodes:
                net.start(member)
    wait_for_events(net, NL, cid, events, timeout=15)
    quiet(net)
    for member in RECEIVERS:
        assert stored_events(net, member, cid) == expected(events)
        dupes = net.rows(
            member,
            "SELECT id, count(*) AS n FROM case_events WHERE case_id = :c GROUP BY id"
            " HAVING count(*) > 1",
            c=cid,
        )
        assert not dupes, member
    assert stages(status(net, NL, rid).items) == {
        (rid, 0): Stage.REMOVED,
        (rid, 1): Stage.ACTIONED,
    }
