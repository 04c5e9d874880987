"""Statistics across real nodes: each member counts only what it is the source of.

nl-eokm submits reports hosted in DE, US, JP (orphan rule → us-ncmec) and NL; they travel in
signed batches and come back receipted. nl-eokm's snapshot counts the intake, the reports sent
per member and each delivery's latency; de-eco's and us-ncmec's count the reports received
from nl-eokm and the items they hold; the sum of the snapshots counts every item exactly once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from exchange.domain import Classification
from exchange.lifecycle.model import Action, ActionKind, Assessment
from exchange.stats.model import Figure, Granularity, Period, merge
from tests.exchange.factories import make_submission, url_in
from tests.integration.case_flow import deliver
from tests.integration.support import DE, NL, US, Cluster, wait_until

pytestmark = pytest.mark.timeout(120)


def _today() -> Period:
    today = datetime.now(UTC).date()
    return Period(today - timedelta(days=1), today + timedelta(days=1), Granularity.DAY)


def test_each_member_counts_what_it_is_the_source_of(cluster: Cluster) -> None:
    plan = {"DE": 4, "US": 3, "JP": 2, "NL": 1}
    cluster.submit(
        NL,
        [
            make_submission(
                url_in(cc, f"/stats/{i}.jpg"), hashes=[f"st-{cc}-{i}-a", f"st-{cc}-{i}-b"]
            )
            for cc, n in plan.items()
            for i in range(n)
        ],
    )
    wait_until(lambda: cluster.drained(NL), what="nl-eokm's reports receipted")
    period = _today()

    nl = cluster.node(NL).figures.snapshot(period)
    de = cluster.node(DE).figures.snapshot(period)
    us = cluster.node(US).figures.snapshot(period)

    assert nl.by_key(Figure.INTAKE) == plan
    assert nl.by_key(Figure.SENT) == {US: 5, DE: 4}
    assert nl.histogram(Figure.DELIVERY).total == 9
    assert not nl.by_key(Figure.BACKLOG)
    assert de.by_key(Figure.RECEIVED) == {NL: 4}
    assert us.by_key(Figure.RECEIVED) == {NL: 5}
    assert de.by_key(Figure.ITEMS) == {"DE": 8}
    assert us.by_key(Figure.ITEMS_ORPHAN) == {"in_network": 6, "orphan": 4}
    assert nl.by_key(Figure.ITEMS) == {"NL": 2}  # its own case: held, so counted, once

    network = merge(period, [nl, de, us], {}, datetime.now(UTC)).snapshot
    assert network.total(Figure.ITEMS) == 2 * sum(plan.values())
    assert network.total(Figure.SENT) == network.total(Figure.RECEIVED) == 9


def test_a_moved_item_is_one_item_across_the_network(cluster: Cluster) -> None:
    """de-eco reports a DE-hosted URL to law enforcement, then finds it hosted in the US and
    moves it: us-ncmec holds it now and counts it as its item; de-eco counts only the move and
    its law-enforcement report. The network counts the URL once, under the US."""
    _, cid = deliver(cluster, NL, make_submission(url_in("DE", "/stats/moved.jpg"), hashes=["mv"]))
    de_work = cluster.node(DE).case_work
    de_work.assess(cid, [], Assessment(Classification.BASELINE, analyst_ref="an-7"))
    de_work.act(cid, [], Action(ActionKind.REPORTED_TO_LEA, partner="de-bka"))
    de_work.act(cid, [], Action(ActionKind.MOVED, moved_to_country="US"))
    period = _today()
    us_figures = cluster.node(US).figures
    wait_until(
        lambda: us_figures.snapshot(period).by_key(Figure.ITEMS), what="us-ncmec's take-over"
    )

    snaps = [cluster.node(m).figures.snapshot(period) for m in (NL, DE, US)]
    _, de, us = snaps
    assert us.by_key(Figure.ITEMS) == {"US": 1}
    assert not de.by_key(Figure.ITEMS)
    assert not de.by_key(Figure.ASSESSED)
    assert de.by_key(Figure.CLOSED) == {"moved": 1}
    assert de.by_key(Figure.MOVED) == {"US": 1}
    assert de.histogram(Figure.TO_LEA).total == 1  # reported before the move, at de-eco
    network = merge(period, snaps, {}, datetime.now(UTC)).snapshot
    assert network.total(Figure.ITEMS) == 1
    assert network.by_key(Figure.ITEMS) == {"US": 1}
    assert network.total(Figure.ITEMS_ORPHAN) == network.total(Figure.CONTENT) == 1
    assert network.total(Figure.MOVED) == 1
