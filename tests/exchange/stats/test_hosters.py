"""The hoster scorecard in a snapshot: the same rows as ``ihx hosts``, counted per period.

Hand-built notices and cases (the scorecard's own test scenario, tests/exchange/store/
test_notices_store.py): notices count on the day sent; items notified, items removed and the
time to removal on the day of the first notice to that hoster about the case; the items still
online are a gauge.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from exchange.domain import Classification
from exchange.lifecycle.model import ItemState, Stage
from exchange.stats.figures import NodeFigures, hoster_key
from exchange.stats.model import Figure, Granularity, Histogram, Period
from exchange.store import notices as notices_store
from tests.exchange.factories import T0, FakeClock
from tests.exchange.takedown import factories
from tests.exchange.takedown.factories import notice_case_row, notice_row

NL = "nl-eokm"
H = timedelta(hours=1)
A = {"asn": 64500, "organisation": "Example Hosting B.V."}
B = {"asn": 64501, "organisation": "Beispiel GmbH"}
KEY_A, KEY_B = hoster_key(64500, "Example Hosting B.V."), hoster_key(64501, "Beispiel GmbH")
DAYS = Period(T0.date(), T0.date() + timedelta(days=3), Granularity.DAY)


def _item(seed: str, index: int = 0, **changes: object) -> ItemState:
    return factories.item(seed, index, holder=NL, **changes)  # type: ignore[arg-type]


def _scenario(engine: Engine) -> None:
    put = factories.put_case
    put(
        engine,
        "c-1",
        [
            _item("1", 0, stage=Stage.REMOVED, closed_at=T0 + 3 * H),
            _item("1", 1, stage=Stage.REMOVED, closed_at=T0 + 11 * H),
            _item(
                "1",
                2,
                classification=Classification.NOT_ILLEGAL,
                stage=Stage.NOT_ILLEGAL,
                closed_at=T0,
            ),
        ],
        state="done",
        last_outcome="gone",
    )
    put(
        engine,
        "c-2",
        [
            _item("2", 0, stage=Stage.ACTIONED),
            _item("2", 1, stage=Stage.UNAVAILABLE, closed_at=T0 + 5 * H),
        ],
    )
    put(engine, "c-3", [_item("3", stage=Stage.REMOVED, closed_at=T0 + 40 * H)], **B)
    put(engine, "c-4", [_item("4")])
    factories.put_notices(
        engine,
        (
            notice_row("n-1", sent_at=T0 + H),
            [
                notice_case_row("n-1", "c-1", items=2),
                notice_case_row("n-1", "c-2", items=2),
                notice_case_row("n-1", "c-3"),
            ],
        ),
        (notice_row("n-2", sent_at=T0 + 25 * H), [notice_case_row("n-2", "c-1", items=2)]),
        (
            notice_row("n-3", sent_at=T0 + 30 * H, recipient="abuse@beispiel.example"),
            [notice_case_row("n-3", "c-3", **B)],
        ),
        (notice_row("n-4", status="pending"), [notice_case_row("n-4", "c-4")]),
        (notice_row("n-5", status="failed"), [notice_case_row("n-5", "c-4")]),
    )


def test_the_scorecard_per_hoster_and_day(engine: Engine) -> None:
    _scenario(engine)
    figures = NodeFigures(engine=engine, member=NL, clock=FakeClock(T0 + 49 * H))

    snap = figures.snapshot(DAYS)

    assert snap.counts[(Figure.HOSTER_NOTICES, KEY_A)] == (1, 1, 0, 0)
    assert snap.counts[(Figure.HOSTER_NOTICES, KEY_B)] == (0, 1, 0, 0)
    assert snap.counts[(Figure.HOSTER_ITEMS, KEY_A)] == (5, 0, 0, 0)
    assert snap.counts[(Figure.HOSTER_ITEMS, KEY_B)] == (0, 1, 0, 0)
    # c-3 was removed after it moved to B: B's removal, not A's
    assert snap.counts[(Figure.HOSTER_REMOVED, KEY_A)] == (2, 0, 0, 0)
    assert snap.counts[(Figure.HOSTER_REMOVED, KEY_B)] == (0, 1, 0, 0)
    hours = 3_600_000
    assert snap.histograms[(Figure.HOSTER_REMOVAL, KEY_A)] == Histogram.of([2 * hours, 10 * hours])
    assert snap.histograms[(Figure.HOSTER_REMOVAL, KEY_B)] == Histogram.of([10 * hours])
    assert snap.gauges[(Figure.HOSTER_ONLINE, KEY_A)] == 1
    assert (Figure.HOSTER_ONLINE, KEY_B) not in snap.gauges


def test_a_period_before_the_first_notice_has_no_hoster_counts(engine: Engine) -> None:
    _scenario(engine)
    figures = NodeFigures(engine=engine, member=NL, clock=FakeClock(T0 + 49 * H))
    before = Period(T0.date() - timedelta(days=9), T0.date() - timedelta(days=1))

    snap = figures.snapshot(before)

    assert snap.total(Figure.HOSTER_ITEMS) == snap.total(Figure.HOSTER_NOTICES) == 0
    assert snap.histogram(Figure.HOSTER_REMOVAL).total == 0
    assert snap.gauges[(Figure.HOSTER_ONLINE, KEY_A)] == 1  # a gauge: now, whatever the period


def test_a_hoster_key_is_bounded_and_names_an_unknown_asn() -> None:
    assert hoster_key(None, "Somewhere") == "AS? Somewhere"
    assert len(hoster_key(1, "x" * 500)) == 128


def test_the_snapshot_agrees_with_the_scorecard_ihx_hosts_prints(engine: Engine) -> None:
    _scenario(engine)
    now = T0 + 49 * H
    figures = NodeFigures(engine=engine, member=NL, clock=FakeClock(now))
    snap = figures.snapshot(DAYS)
    with engine.connect() as conn:
        scores = notices_store.scorecard(conn, NL, now)

    for s in scores:
        key = hoster_key(s.asn, s.organisation)
        assert snap.total(Figure.HOSTER_NOTICES, key) == s.notices
        assert snap.total(Figure.HOSTER_ITEMS, key) == s.items
        assert snap.total(Figure.HOSTER_REMOVED, key) == s.removed
        assert snap.histogram(Figure.HOSTER_REMOVAL, key).total == s.removed
        assert snap.gauges.get((Figure.HOSTER_ONLINE, key), 0) == s.still_online
