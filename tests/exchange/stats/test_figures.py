"""exchange/stats/figures.py: a node's own figures, on data its real intake and case work made.

us-ncmec (see conftest) takes reports in, holds the US and JP (orphan) ones and works them; the
snapshot must count each fact once, in the bucket of its day, and only what this node holds.
"""

from __future__ import annotations

from datetime import timedelta

from exchange.domain import AgeGroup, Classification, SiteType
from exchange.lifecycle.model import Action, ActionKind, Assessment, Gender, ReasonCode
from exchange.stats.model import (
    SAME_DAY_MS,
    THREE_DAYS_MS,
    Figure,
    Granularity,
    Period,
)
from tests.exchange.factories import T0
from tests.exchange.stats.conftest import World

DAY0 = T0.date()
MONTH = Period(DAY0, DAY0 + timedelta(days=30), Granularity.DAY)


def test_intake_counts_reports_from_this_nodes_analysts_by_hosting_country(world: World) -> None:
    world.report("us-1")
    world.report("us-2")
    world.report("nl-1", country="NL")
    world.later(days=2)
    world.report("jp-1", country="JP")

    snap = world.figures.snapshot(MONTH)

    assert snap.by_key(Figure.INTAKE) == {"US": 2, "JP": 1, "NL": 1}
    assert snap.counts[(Figure.INTAKE, "US")][:3] == (2, 0, 0)
    assert snap.counts[(Figure.INTAKE, "JP")][:3] == (0, 0, 1)
    assert snap.members == ("us-ncmec",)


def test_items_held_here_by_country_orphan_site_type_and_commercial(world: World) -> None:
    world.report("us-1", items=2, site_type=SiteType.FORUM, commercial=True)
    world.report("jp-1", country="JP")
    world.report("nl-1", country="NL", items=3)  # held by nl-eokm: not ours to count

    snap = world.figures.snapshot(MONTH)

    assert snap.by_key(Figure.ITEMS) == {"US": 2, "JP": 1}
    assert snap.by_key(Figure.ITEMS_ORPHAN) == {"in_network": 2, "orphan": 1}
    assert snap.by_key(Figure.SITE_TYPE) == {"forum": 2, "website": 1}
    assert snap.by_key(Figure.COMMERCIAL) == {"yes": 2, "no": 1}
    assert snap.by_key(Figure.CONTENT) == {"new": 3}


def test_known_content_counts_as_known(world: World) -> None:
    world.report("us-1", hashes=["cat-1"])
    world.report("us-2", hashes=["cat-1", "cat-2"])  # another URL, one hash seen before

    snap = world.figures.snapshot(MONTH)

    assert snap.by_key(Figure.CONTENT) == {"new": 2, "known": 1}


def test_assessments_ages_genders_closures_and_disputes(world: World) -> None:
    _, illegal = world.report("us-1", items=2)
    _, legal = world.report("us-2")
    world.work.assess(
        illegal,
        [],
        Assessment(Classification.BASELINE, AgeGroup.PREPUBESCENT, Gender.FEMALE),
    )
    world.work.assess(legal, [], Assessment(Classification.NOT_ILLEGAL))
    world.work.act(legal, [], Action(ActionKind.NOT_ILLEGAL, reason=ReasonCode.ADULT_PORNOGRAPHY))

    snap = world.figures.snapshot(MONTH)

    assert snap.by_key(Figure.ASSESSED) == {"baseline": 2, "not_illegal": 1}
    assert snap.by_key(Figure.AGE_GROUP) == {"prepubescent": 2}  # illegal items only
    assert snap.by_key(Figure.GENDER) == {"female": 2}
    assert snap.by_key(Figure.CLOSED) == {"not_illegal": 1}
    # the legal report's origin classified it baseline: the holder's not_illegal disputes it
    assert snap.by_key(Figure.DISPUTED) == {"": 1}


def test_time_to_law_enforcement_and_removal_split_in_network_and_orphan(world: World) -> None:
    _, us = world.report("us-1")
    _, jp = world.report("jp-1", country="JP")
    world.later(hours=2)
    for case in (us, jp):
        world.work.assess(case, [], Assessment(Classification.BASELINE))
    world.work.act(us, [], Action(ActionKind.REPORTED_TO_LEA, partner="fbi"))
    world.later(days=2)
    world.work.act(us, [], Action(ActionKind.REMOVED))
    world.later(days=3)
    world.work.act(jp, [], Action(ActionKind.REMOVED))

    snap = world.figures.snapshot(MONTH)

    lea = snap.histogram(Figure.TO_LEA, "in_network")
    assert lea.total == 1
    assert lea.share_within(SAME_DAY_MS) == 1.0
    assert snap.histogram(Figure.TO_LEA, "orphan").total == 0
    removal_us = snap.histogram(Figure.TO_REMOVAL, "in_network")
    removal_jp = snap.histogram(Figure.TO_REMOVAL, "orphan")
    assert removal_us.total == removal_jp.total == 1
    assert removal_us.share_within(THREE_DAYS_MS) == 1.0
    assert removal_jp.share_within(THREE_DAYS_MS) == 0.0
    assert snap.by_key(Figure.CLOSED) == {"removed": 2}


def test_items_count_on_the_day_their_clock_started_and_outside_the_period_not_at_all(
    world: World,
) -> None:
    world.report("us-1")
    world.later(days=40)
    world.report("us-2")

    snap = world.figures.snapshot(MONTH)

    assert snap.by_key(Figure.ITEMS) == {"US": 1}
    assert snap.counts[(Figure.ITEMS, "US")][0] == 1


def test_open_work_is_a_gauge_per_queue(world: World) -> None:
    world.report("us-1")
    _, done = world.report("us-2")
    world.work.assess(done, [], Assessment(Classification.BASELINE))

    snap = world.figures.snapshot(MONTH)

    assert snap.gauges[(Figure.OPEN, "unassessed")] == 1
    assert snap.gauges[(Figure.OPEN, "unactioned")] == 1


def test_reports_waiting_for_a_peer_are_its_backlog(world: World) -> None:
    world.report("nl-1", country="NL")
    world.report("nl-2", country="NL")

    snap = world.figures.snapshot(MONTH)

    assert snap.gauges[(Figure.BACKLOG, "nl-eokm")] == 2


def test_open_items_older_than_the_queue_window_are_overdue(world: World) -> None:
    world.report("us-old", items=2)
    world.later(days=31)
    world.report("us-new")

    snap = world.figures.snapshot(MONTH)

    assert snap.gauges[(Figure.OPEN, "overdue")] == 2
    assert snap.gauges[(Figure.OPEN, "unassessed")] == 3  # a gauge: whatever the period
    assert snap.gauges[(Figure.OPEN, "no_contact")] == 0
