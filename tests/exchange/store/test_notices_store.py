"""exchange/store/notices.py on hand-built rows: who is due for a notice, and the scorecard.

Cases, item states, watches and notices are written straight to a migrated database (SQLite, or
PostgreSQL when the suite runs on it), so every figure below is worked out by hand from the rows
the test shows.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from exchange.domain import Classification
from exchange.lifecycle.model import ItemState, Stage
from exchange.store import notices as store
from exchange.takedown.notice_model import Candidate, percentile
from tests.exchange.factories import T0
from tests.exchange.takedown import factories
from tests.exchange.takedown.factories import notice_case_row, notice_row

NL = "nl-eokm"
H = timedelta(hours=1)
NOW = T0 + 49 * H
DUE = store.DueBy(now=NOW, last_notice=NOW - 24 * H, lea=NOW - 6 * H)


def item(seed: str, index: int = 0, **changes: object) -> ItemState:
    return factories.item(seed, index, holder=changes.pop("holder", NL), **changes)  # type: ignore[arg-type]


put = factories.put_case
notices = factories.put_notices


def due(engine: Engine) -> list[Candidate]:
    with engine.connect() as conn:
        return list(store.due_in_hoster_order(conn, holder=NL, due=DUE))


def due_ids(engine: Engine) -> list[str]:
    return [c.case_id for c in due(engine)]


# -- candidates ---------------------------------------------------------------------------------


def test_only_watched_online_cases_with_open_illegal_items_here_are_due(engine: Engine) -> None:
    put(engine, "c-due", [item("due", 0), item("due", 1, classification=Classification.NATIONAL)])
    put(engine, "c-national", [item("nat", classification=Classification.NATIONAL)])
    put(engine, "c-not-illegal", [item("ni", classification=Classification.NOT_ILLEGAL)])
    put(engine, "c-unassessed", [item("un", classification=None)])
    put(engine, "c-closed", [item("cl", stage=Stage.REMOVED, closed_at=T0 + H)])
    put(engine, "c-elsewhere", [item("el", holder="de-eco")])
    put(engine, "c-gone", [item("go")], last_outcome="gone")
    put(engine, "c-unreachable", [item("ur")], last_outcome="unreachable")
    put(engine, "c-suggested", [item("su")], state="suggested")
    put(engine, "c-done", [item("do")], state="done")
    found = {c.case_id: c for c in due(engine)}
    assert set(found) == {"c-due", "c-national"}
    one = found["c-due"]
    assert (one.items, one.category, one.notices, one.no_contact) == (2, "baseline", 0, False)
    assert one.url == "https://hosting-nl.example/c-due.jpg"
    assert (one.hoster.asn, one.hoster.organisation, one.country) == (
        64500,
        "Example Hosting B.V.",
        "NL",
    )
    assert one.online_since == T0
    assert one.lea_at is None
    assert found["c-national"].category == "national"


def test_interval_holds_and_law_enforcement_first(engine: Engine) -> None:
    put(engine, "c-fresh", [item("a")])
    put(engine, "c-noticed-recently", [item("b")], notices=1, last_notice_at=NOW - 23 * H)
    put(engine, "c-noticed-long-ago", [item("c")], notices=1, last_notice_at=NOW - 24 * H)
    put(engine, "c-held", [item("d")], hold_until=NOW + H)
    put(engine, "c-hold-over", [item("e")], hold_until=NOW - H)
    put(engine, "c-lea-recent", [item("f", stage=Stage.ACTIONED, lea_at=NOW - 5 * H)])
    put(engine, "c-lea-long-ago", [item("g", stage=Stage.ACTIONED, lea_at=NOW - 6 * H)])
    # the latest reported_to_lea of its open items counts
    put(
        engine,
        "c-lea-mixed",
        [
            item("h", 0, stage=Stage.ACTIONED, lea_at=NOW - 9 * H),
            item("h", 1, stage=Stage.ACTIONED, lea_at=NOW - H),
        ],
    )
    assert sorted(due_ids(engine)) == [
        "c-fresh",
        "c-hold-over",
        "c-lea-long-ago",
        "c-noticed-long-ago",
    ]


def test_a_case_in_a_pending_notice_is_not_due_again(engine: Engine) -> None:
    for case_id in ("c-pending", "c-sent", "c-failed"):
        put(engine, case_id, [item(case_id)])
    notices(
        engine,
        (notice_row("n-p", status="pending"), [notice_case_row("n-p", "c-pending")]),
        (notice_row("n-s", sent_at=T0), [notice_case_row("n-s", "c-sent")]),
        (notice_row("n-f", status="failed"), [notice_case_row("n-f", "c-failed")]),
    )
    assert sorted(due_ids(engine)) == ["c-failed", "c-sent"]


def test_due_cases_come_in_hoster_order(engine: Engine) -> None:
    put(engine, "c-5", [item("5")], asn=64501, organisation="B")
    put(engine, "c-4", [item("4")], asn=None, organisation="Reseller")
    put(engine, "c-3", [item("3")], asn=64500, organisation="A")
    put(engine, "c-2", [item("2")], asn=None, organisation=None)
    put(engine, "c-1", [item("1")], asn=64500, organisation="A")
    put(engine, "c-0", [item("0")], last_outcome="gone")
    in_order = due(engine)
    assert [c.case_id for c in in_order] == ["c-2", "c-4", "c-1", "c-3", "c-5"]
    assert in_order[0].hoster.organisation == ""
    with engine.connect() as conn:
        chosen = store.candidates(conn, holder=NL, due=DUE, case_ids=["c-5", "c-1", "c-0"])
    assert [c.case_id for c in chosen] == ["c-1", "c-5"]  # the due ones named, in hoster order


def test_failed_recipients_count_since_the_last_notice_sent(engine: Engine) -> None:
    put(engine, "c-1", [item("1")], notices=1, last_notice_at=T0 + 10 * H)
    put(engine, "c-2", [item("2")])
    notices(
        engine,
        (
            notice_row("n-old", status="failed", recipient="old@x.example", created_at=T0 + H),
            [notice_case_row("n-old", "c-1")],
        ),
        (
            notice_row("n-new", status="failed", recipient="New@x.example", created_at=T0 + 11 * H),
            [notice_case_row("n-new", "c-1")],
        ),
        (
            notice_row("n-2", status="failed", recipient="two@x.example", created_at=T0),
            [notice_case_row("n-2", "c-2")],
        ),
        (
            notice_row("n-ok", sent_at=T0, recipient="ok@x.example"),
            [notice_case_row("n-ok", "c-2")],
        ),
    )
    with engine.connect() as conn:
        failed = store.failed_recipients(conn, ["c-1", "c-2"])
    assert failed == {"c-1": frozenset({"new@x.example"}), "c-2": frozenset({"two@x.example"})}


# -- the scorecard ------------------------------------------------------------------------------

A = {"asn": 64500, "organisation": "Example Hosting B.V."}
B = {"asn": 64501, "organisation": "Beispiel GmbH"}


def hours(value: float | None) -> float | None:
    return None if value is None else value / 3600


def test_the_scorecard_per_hoster(engine: Engine) -> None:
    # c-1 at A: two items noticed at T0+1h (n-1) and again at T0+25h (n-2), removed at
    # T0+3h and T0+11h: 2h and 10h after the first notice to A.
    put(
        engine,
        "c-1",
        [
            item("1", 0, stage=Stage.REMOVED, closed_at=T0 + 3 * H),
            item("1", 1, stage=Stage.REMOVED, closed_at=T0 + 11 * H),
            item(
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
    # c-2 at A: one item still online since the notice at T0+1h (48h at NOW); another closed
    # unavailable, which is neither removed nor online.
    put(
        engine,
        "c-2",
        [
            item("2", 0, stage=Stage.ACTIONED),
            item("2", 1, stage=Stage.UNAVAILABLE, closed_at=T0 + 5 * H),
        ],
    )
    # c-3 moved from A (noticed with c-1 and c-2) to B (noticed at T0+30h), removed at T0+40h:
    # its removal is B's, 10h after B's first notice.
    put(engine, "c-3", [item("3", stage=Stage.REMOVED, closed_at=T0 + 40 * H)], **B)
    # c-4: only in a pending and a failed notice — not on the scorecard.
    put(engine, "c-4", [item("4")])
    notices(
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
    with engine.connect() as conn:
        a, b = store.scorecard(conn, NL, NOW)
    assert (a.asn, a.organisation, a.notices, a.cases, a.items) == (
        64500,
        "Example Hosting B.V.",
        2,
        3,
        5,
    )
    assert a.removed == 2
    assert hours(a.removal_median_s) == pytest.approx(6.0)
    assert hours(a.removal_p90_s) == pytest.approx(9.2)  # 2 + 0.9 × (10 − 2)
    assert (a.still_online, hours(a.online_median_s), hours(a.online_max_s)) == (1, 48.0, 48.0)
    assert (b.asn, b.notices, b.cases, b.items, b.removed) == (64501, 1, 1, 1, 1)
    assert hours(b.removal_median_s) == hours(b.removal_p90_s) == pytest.approx(10.0)
    assert (b.still_online, b.online_median_s, b.online_max_s) == (0, None, None)


def test_an_empty_scorecard(engine: Engine) -> None:
    with engine.connect() as conn:
        assert store.scorecard(conn, NL, NOW) == []


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([], 0.5, None),
        ([7.0], 0.9, 7.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.5),
        ([0.0, 10.0], 0.9, 9.0),
        ([float(v) for v in range(1, 11)], 0.9, 9.1),
    ],
)
def test_percentiles_interpolate_between_ranks(
    values: list[float], fraction: float, expected: float | None
) -> None:
    assert percentile(values, fraction) == (
        pytest.approx(expected) if expected is not None else None
    )


def test_times_are_seconds_from_the_first_notice_not_negative(engine: Engine) -> None:
    # removed between the notice being written and the relay taking it: counted as 0
    put(engine, "c-1", [item("1", stage=Stage.REMOVED, closed_at=T0)])
    notices(engine, (notice_row("n-1", sent_at=T0 + H), [notice_case_row("n-1", "c-1")]))
    with engine.connect() as conn:
        (score,) = store.scorecard(conn, NL, NOW)
    assert score.removal_median_s == 0.0
