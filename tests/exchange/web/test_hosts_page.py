"""The scorecard page is bounded and cheap to reload: kept a minute and computed once for all
who ask meanwhile, the most-noticed hosters first, a hundred a page (red-team F2: every request
read every noticed item, 10–16 s at 500 000 items, eight at once starving the rest)."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta

import pytest

from auth.tokens import Scope
from exchange.kept import Kept
from exchange.takedown.notice_model import HosterScore
from exchange.web.errors import BadQuery
from exchange.web.pages.hosts import masked, page_number, ranked
from tests.exchange.factories import FakeClock
from tests.exchange.web.conftest import Scene
from tests.exchange.web.test_http import logged_in

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def score(asn: int | None, organisation: str, notices: int) -> HosterScore:
    return HosterScore(
        asn=asn,
        organisation=organisation,
        notices=notices,
        cases=notices,
        items=notices,
        removed=0,
        removal_median_s=None,
        removal_p90_s=None,
        still_online=0,
        online_median_s=None,
        online_max_s=None,
    )


def test_hosters_with_the_most_notices_come_first() -> None:
    scores = [score(3, "c", 1), score(None, "z", 9), score(1, "a", 9), score(2, "B", 5)]
    assert [(h.asn, h.notices) for h in ranked(scores)] == [(1, 9), (None, 9), (2, 5), (3, 1)]


def test_small_counts_are_masked_and_few_removal_times_not_summarised() -> None:
    few = HosterScore(
        asn=64500,
        organisation="Tiny",
        notices=7,
        cases=2,
        items=3,
        removed=4,
        removal_median_s=3600.0,
        removal_p90_s=7200.0,
        still_online=1,
        online_median_s=60.0,
        online_max_s=60.0,
    )
    line = masked(few)
    assert (line.notices, line.cases, line.items, line.removed, line.still_online) == (
        "7",
        "<5",
        "<5",
        "<5",
        "<5",
    )
    assert (line.removal_median_s, line.removal_p90_s, line.online_max_s) == (None, None, None)
    many = masked(dataclasses.replace(few, removed=5, still_online=5))
    assert (many.removed, many.removal_median_s, many.removal_p90_s) == ("5", 3600.0, 7200.0)
    assert (many.still_online, many.online_max_s) == ("5", 60.0)


@pytest.mark.parametrize("bad", ["0", "-1", "x", "10001", "1.5", "99999999999999999999"])
def test_a_bad_page_number_is_refused(bad: str) -> None:
    with pytest.raises(BadQuery, match="page"):
        page_number(bad)


def test_concurrent_askers_share_one_computation() -> None:
    kept: Kept[str, int] = Kept(FakeClock(T0), ttl=timedelta(minutes=1), most=1)
    entered, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        entered.set()
        release.wait(30)
        return 42

    answers: list[int] = []
    threads = [
        threading.Thread(target=lambda: answers.append(kept.get("all", compute))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    assert entered.wait(30)
    threading.Event().wait(0.3)  # let the others reach the flight's lock
    release.set()
    for t in threads:
        t.join(30)
    assert answers == [42] * 8
    assert len(calls) == 1


def test_the_scorecard_page_refuses_a_bad_page_and_pages(scene: Scene) -> None:
    http = logged_in(scene, scene.token("hosts-reader", Scope.STATS_READ))
    assert http.get("/hosts").status == 200
    assert http.get("/hosts?page=2").status == 200
    refused = http.get("/hosts?page=0")
    assert refused.status == 400
    assert "page" in refused.body
