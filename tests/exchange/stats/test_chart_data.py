"""What the charts show, computed without matplotlib: bars, CDFs, volume, the scorecard, titles."""

from __future__ import annotations

import pytest

from exchange.stats import chart_data as cd
from exchange.stats.model import EDGES_MS, MASK_BELOW, Figure, Histogram
from tests.exchange.stats.chart_snapshots import DAY_MS, countries, network, snapshot, spread


def test_bars_are_the_top_keys_then_the_rest_with_shares() -> None:
    snap = snapshot(countries({"NL": 50, "DE": 30, "JP": 15, "GB": 5, "US": 0}))
    rows = cd.bars(snap, Figure.ITEMS, top=2, member_countries={"NL", "DE"})
    assert [(b.key, b.count, b.in_network) for b in rows] == [
        ("NL", 50, True),
        ("DE", 30, True),
        ("other", 20, None),
    ]
    assert [b.share for b in rows] == pytest.approx([0.5, 0.3, 0.2])
    assert rows[-1].label == "other (2)"  # US counted nothing: not a bar, not in other
    assert cd.bars(snap, Figure.SITE_TYPE) == []


def test_the_cdf_climbs_to_one_at_the_last_bucket_used() -> None:
    hist = Histogram.of([60_000, 2 * DAY_MS, 3 * DAY_MS, 40 * DAY_MS])
    curve = cd.cdf("orphan", hist)
    assert curve is not None
    assert curve.total == 4
    assert curve.shares[EDGES_MS.index(60_000)] == 0.25
    assert curve.shares[EDGES_MS.index(3 * DAY_MS)] == 0.75
    assert curve.shares[EDGES_MS.index(42 * DAY_MS)] == 1.0
    assert curve.shares[EDGES_MS.index(28 * DAY_MS)] == 0.75
    assert dict(curve.at_markers) == {"1d": 0.25, "3d": 0.75, "7d": 0.75, "28d": 0.75}
    assert curve.median_ms == 2 * DAY_MS
    assert curve.xs_ms[-1] == cd.OVERFLOW_MS
    assert cd.cdf("orphan", Histogram()) is None


def test_cdfs_come_in_network_first_and_skip_empty_keys() -> None:
    snap = snapshot(
        histograms={
            (Figure.TO_LEA, "orphan"): Histogram.of([DAY_MS]),
            (Figure.TO_LEA, "in_network"): Histogram.of([DAY_MS]),
            (Figure.TO_LEA, "zz"): Histogram(),
            (Figure.TO_REMOVAL, "in_network"): Histogram.of([DAY_MS]),
        }
    )
    assert [c.key for c in cd.cdfs(snap, Figure.TO_LEA)] == ["in_network", "orphan"]


def test_volume_sums_keys_per_bucket_and_leaves_out_empty_figures() -> None:
    snap = snapshot(
        {
            (Figure.INTAKE, "NL"): (1, 2, 3, 0, 0, 0),
            (Figure.INTAKE, "DE"): (1, 0, 0, 0, 0, 5),
            (Figure.SENT, "de-eco"): (0,) * 6,
        }
    )
    vol = cd.volume(snap)
    assert dict(vol.series) == {Figure.INTAKE: (2, 2, 3, 0, 0, 5)}
    assert len(vol.starts) == 6


def test_the_scorecard_masks_small_counts_and_hides_their_size() -> None:
    snap = snapshot(
        {
            (Figure.HOSTER_ITEMS, "AS1 A"): spread(30),
            (Figure.HOSTER_REMOVED, "AS1 A"): (4, 0, 0, 0, 0, 0),
            (Figure.HOSTER_ITEMS, "AS2 B"): (1, 0, 0, 0, 0, 0),
        },
        {(Figure.HOSTER_REMOVAL, "AS1 A"): Histogram.of([DAY_MS])},
    )
    a, b = cd.hosters(snap)
    # four removals: no median, which would tell one of the four times
    assert (a.key, a.items, a.removed, a.median_ms) == ("AS1 A", 30, 4, None)
    assert a.shown(Figure.HOSTER_REMOVED) == "<5"
    assert a.shown(Figure.HOSTER_ITEMS) == "30"
    assert b.shown(Figure.HOSTER_ITEMS) == "<5"
    assert cd.HosterRow.drawn(1) == cd.HosterRow.drawn(4) == MASK_BELOW
    assert cd.HosterRow.drawn(0) == 0
    assert b.median_ms is None


def test_labels_are_printable_and_short_and_gids_safe_and_unique() -> None:
    assert cd.label("") == "untraced"
    assert cd.label("a\x00b\u202ec") == "a?b?c"
    assert len(cd.label("x" * 200)) == cd.MAX_LABEL
    assert cd.gid("bar", "AS1 Evil <b>") == "bar-AS1_Evil__b_"
    assert cd.unique_gids("bar", ["a b", "a_b", "a b"]) == ["bar-a_b", "bar-a_b.2", "bar-a_b.3"]


def test_titles_say_whose_figures_and_who_is_missing() -> None:
    a = snapshot(member="nl-eokm")
    assert cd.whose(a) == "member: nl-eokm"
    b = snapshot(member="de-eco")
    missing = {f"m{i}": "unreachable" for i in range(6)}
    text = cd.whose(network(a, b, missing=missing))
    assert text.startswith("network: 2 members, missing: m0 (unreachable), m1 (unreachable)")
    assert text.endswith("and 2 more")
    assert cd.title("Volume", a) == "Volume, 2026-01-01 to 2026-06-30, by month\nmember: nl-eokm"


@pytest.mark.parametrize(
    ("ms", "text"),
    [(None, "–"), (250, "250 ms"), (30_000, "30 s"), (3_600_000, "1 h"), (36 * 3_600_000, "1.5 d")],
)
def test_durations_read_as_people_say_them(ms: int | None, text: str) -> None:
    assert cd.duration_text(ms) == text
