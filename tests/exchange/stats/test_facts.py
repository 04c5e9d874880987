"""exchange/stats/facts.py: an item's facts, what they contribute, and the difference a change
makes — pure."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.stats.facts import (
    COUNT,
    ItemFacts,
    ItemRow,
    LogRow,
    day_number,
    item_contributions,
    item_delta,
    item_facts,
    log_contributions,
)
from exchange.stats.figures import bucket_index
from exchange.stats.model import Figure, Granularity, Histogram, Period
from exchange.times import to_micros
from tests.exchange.factories import T0

_TEXT = st.sampled_from(["", "NL", "baseline", "removed", "image_host", "not_determined"])
FACTS = st.builds(
    ItemFacts,
    day=st.integers(0, 40_000),
    country=_TEXT,
    orphaned=st.booleans(),
    known=st.booleans(),
    site_type=_TEXT,
    commercial=st.booleans(),
    classification=_TEXT,
    age_group=_TEXT,
    gender=_TEXT,
    stage=_TEXT,
    moved_to=_TEXT,
    disputed=st.booleans(),
    lea_bucket=st.integers(-1, 35),
    removal_bucket=st.integers(-1, 35),
)


@given(FACTS)
def test_facts_survive_their_encoding(f: ItemFacts) -> None:
    assert ItemFacts.decode(f.encode()) == f


def test_a_stored_encoding_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="14"):
        ItemFacts.decode("1\x1fNL")


@given(FACTS, FACTS)
def test_the_delta_is_new_minus_old(old: ItemFacts, new: ItemFacts) -> None:
    delta = item_delta(old, new)
    for c in set(item_contributions(old)) | set(item_contributions(new)):
        assert delta.get(c, 0) == item_contributions(new).count(c) - item_contributions(old).count(
            c
        )
    assert item_delta(new, new) == {}


def _row(**changes: object) -> ItemRow:
    base: dict[str, object] = {
        "clock_started": T0, "country": "NL", "orphaned": False, "known_member": None,
        "site_type": "forum", "commercial": True, "classification": "baseline",
        "age_group": "infant", "gender": "male", "stage": "removed", "moved_to_country": None,
        "disputed": False, "lea_at": T0 + timedelta(hours=1),
        "closed_at": T0 + timedelta(days=2),
    }  # fmt: skip
    return ItemRow(**{**base, **changes})  # type: ignore[arg-type]


def test_a_removed_illegal_item_contributes_every_figure_once() -> None:
    f = item_facts(_row())
    day = f.day if f else 0
    got = sorted((str(fig), key, b) for fig, key, d, b in item_contributions(f) if d == day)
    assert got == sorted(
        [
            ("items", "NL", COUNT), ("items.orphan", "in_network", COUNT),
            ("content", "new", COUNT), ("site_type", "forum", COUNT),
            ("commercial", "yes", COUNT), ("assessed", "baseline", COUNT),
            ("age_group", "infant", COUNT), ("gender", "male", COUNT),
            ("closed", "removed", COUNT),
            ("to_lea", "in_network", Histogram.bucket(3_600_000)),
            ("to_removal", "in_network", Histogram.bucket(2 * 86_400_000)),
        ]
    )  # fmt: skip


def test_a_not_illegal_item_has_no_age_gender_or_removal() -> None:
    f = item_facts(_row(classification="not_illegal", stage="not_illegal", lea_at=None))
    figures = {c[0] for c in item_contributions(f)}
    assert Figure.AGE_GROUP not in figures
    assert Figure.GENDER not in figures
    assert Figure.TO_REMOVAL not in figures
    assert Figure.TO_LEA not in figures


def test_log_entries_contribute_by_kind() -> None:
    def one(kind: str, **fields: object) -> list[tuple[Figure, str, int, int]]:
        base: dict[str, object] = {
            "at_us": to_micros(T0), "kind": kind, "member": "de-eco", "country": "DE",
            "detail": "{}", "intake_us": None,
        }  # fmt: skip
        return log_contributions(LogRow(**{**base, **fields}))  # type: ignore[arg-type]

    assert [c[:2] for c in one("intake")] == [(Figure.INTAKE, "DE")]
    assert [c[:2] for c in one("intake", country=None)] == [(Figure.INTAKE, "")]
    assert [c[:2] for c in one("sent")] == [(Figure.SENT, "de-eco")]
    assert [c[:2] for c in one("new-case", detail='{"via":"us-ncmec"}')] == [
        (Figure.RECEIVED, "us-ncmec")
    ]
    assert one("merged", detail='{"via":"intake"}') == []  # this node's own intake
    assert one("new-case", detail="not json") == []
    assert one("receipted") == []  # not a report that came in here: no latency to tell
    latency = one("receipted", intake_us=to_micros(T0 - timedelta(seconds=2)))
    assert [(c[0], c[3]) for c in latency] == [(Figure.DELIVERY, Histogram.bucket(2000))]
    assert one("receipted", intake_us=to_micros(T0), detail='{"transfer":true}') == []
    # The word as a value, not as the key: still a delivery.
    assert len(one("receipted", intake_us=to_micros(T0), detail='{"reason":"transfer"}')) == 1
    assert one("announced") == []


def test_days_map_to_the_buckets_of_the_period() -> None:
    period = Period(date(2024, 1, 30), date(2024, 3, 2), Granularity.MONTH)
    of = bucket_index(period)
    for d in (date(2024, 1, 30), date(2024, 1, 31), date(2024, 2, 1), date(2024, 2, 29),
              date(2024, 3, 1), date(2024, 3, 2)):  # fmt: skip
        assert of(day_number(d)) == period.bucket_of(d)
    assert of(day_number(date(2024, 1, 29))) is None
    assert of(day_number(date(2024, 3, 3))) is None
    weeks = Period(date(2024, 1, 3), date(2024, 1, 20), Granularity.WEEK)
    wof = bucket_index(weeks)
    assert [wof(day_number(date(2024, 1, d))) for d in (3, 7, 8, 14, 15, 20)] == [
        0, 0, 1, 1, 2, 2,
    ]  # fmt: skip


def test_a_moved_item_counts_at_its_old_holder_only_as_moved() -> None:
    """The new holder counts the item from its take-over: here it is closed as moved, where it
    went, and the law-enforcement report made here before the move — nothing the new holder
    counts again."""
    f = item_facts(_row(stage="moved", moved_to_country="DE", closed_at=T0 + timedelta(days=1)))
    day = f.day if f else 0
    got = sorted((str(fig), key, b) for fig, key, d, b in item_contributions(f) if d == day)
    assert got == sorted(
        [
            ("closed", "moved", COUNT), ("moved", "DE", COUNT),
            ("to_lea", "in_network", Histogram.bucket(3_600_000)),
        ]
    )  # fmt: skip
    unreported = item_facts(_row(stage="moved", moved_to_country="DE", lea_at=None))
    assert {c[0] for c in item_contributions(unreported)} == {Figure.CLOSED, Figure.MOVED}
