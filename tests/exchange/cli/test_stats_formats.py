"""The shapes ``ihx stats`` prints, on hand-built snapshots whose every number is known."""

from __future__ import annotations

import io

from rich.console import Console

from exchange.cli.stats_formats import Figures, json_document, summarise
from exchange.cli.stats_table import duration_text, print_table
from exchange.stats.model import EDGES_MS, Figure, Histogram, Snapshot, merge
from tests.exchange.factories import T0
from tests.exchange.stats.hand_snapshots import PERIOD, hand_snapshot

DAY = 86_400_000
NL, DE, US = "nl-eokm", "de-eco", "us-ncmec"


def _network() -> Figures:
    merged = merge(
        PERIOD, [hand_snapshot(NL), hand_snapshot(DE, seed=2)], {US: "unreachable: down"}, T0
    )
    return Figures(merged.snapshot, network=True, missing=merged.missing)


def _with(snapshot: Snapshot, **changes: object) -> Snapshot:
    fields = {
        "members": snapshot.members,
        "period": snapshot.period,
        "generated_at": snapshot.generated_at,
        "counts": dict(snapshot.counts),
        "histograms": dict(snapshot.histograms),
        "gauges": dict(snapshot.gauges),
    }
    for name, extra in changes.items():
        fields[name] = {**fields[name], **extra}  # type: ignore[dict-item]
    return Snapshot(**fields)  # type: ignore[arg-type]


def test_a_duration_summary_is_exact_on_the_published_limits() -> None:
    h = Histogram.of([DAY // 2, 2 * DAY, 3 * DAY, 6 * DAY, 10 * DAY, 30 * DAY, 400 * DAY])
    s = summarise(h)
    assert (s.n, s.median_ms, s.median_beyond) == (7, 7 * DAY, False)
    assert (s.p90_ms, s.p90_beyond) == (EDGES_MS[-1], True)  # beyond a year: "more than"
    assert (s.same_day, s.within_3d, s.within_7d) == (1 / 7, 3 / 7, 4 / 7)
    assert s.beyond_28d == 2 / 7
    assert duration_text(s.median_ms) == "≤7 d"
    assert duration_text(s.p90_ms, s.p90_beyond) == ">365 d"
    assert summarise(Histogram()).median_ms is None


def test_json_names_who_answered_and_who_did_not() -> None:
    doc = json_document(_network())
    assert doc["scope"] == "network"
    assert doc["members"] == {"answered": [DE, NL], "missing": {US: "unreachable: down"}}
    assert doc["period"]["buckets"] == ["2026-01-01", "2026-02-01", "2026-03-01"]
    intake = {c["key"]: c for c in doc["counts"] if c["figure"] == "intake"}
    assert intake["NL"]["counts"] == [30, 36, 42]  # 10 + 20, 13 + 23, 16 + 26
    assert intake["NL"]["total"] == 108


def test_json_masks_small_counts_finer_than_a_country_only() -> None:
    doc = json_document(Figures(hand_snapshot(NL)))
    hoster = next(c for c in doc["counts"] if c["figure"] == "hoster.items")
    # 2, 5, 8: per-bucket counts would give the masked 2 away (15 - 5 - 8); the total only
    assert hoster == {"figure": "hoster.items", "key": "AS1 Hoster 1 B.V.", "total": 15}
    jp = next(c for c in doc["counts"] if c["figure"] == "intake" and c["key"] == "JP")
    assert jp["counts"] == [1, 4, 7]  # a country's counts are never masked


def test_json_masks_a_hosters_small_total_and_gives_no_buckets() -> None:
    few = _with(hand_snapshot(NL), counts={(Figure.HOSTER_ITEMS, "AS9 Tiny"): (1, 0, 2)})
    doc = json_document(Figures(few))
    tiny = next(c for c in doc["counts"] if c["key"] == "AS9 Tiny")
    assert tiny == {"figure": "hoster.items", "key": "AS9 Tiny", "total": "<5"}


def test_the_moved_share_is_moved_items_of_those_held() -> None:
    counts = {(Figure.ITEMS, "NL"): (10, 20, 10), (Figure.MOVED, "DE"): (1, 0, 9)}
    snap = _with(hand_snapshot(NL), counts=counts)
    assert json_document(Figures(snap))["moved"] == {"moved": 10, "items": 40, "share": 0.25}
    assert "moved: 10 of 40 items (25.0%)" in _table(Figures(snap))


def test_the_table_gives_no_sum_that_includes_a_masked_count() -> None:
    counts = {
        (Figure.HOSTER_ITEMS, "AS2 Big"): (6, 0, 0),
        (Figure.HOSTER_ITEMS, "AS3 Small"): (3, 0, 0),
    }
    two = _with(hand_snapshot(NL), counts=counts)
    text = _table(Figures(two))
    section = text[text.index("[hoster.items]") :].split("\n\n")[0]
    assert "<5" in section
    assert " 6" in section
    assert "total" not in section  # 6 of 9 (67%) would tell the 3
    assert "%" not in section
    more = _with(
        hand_snapshot(NL),
        counts={(Figure.HOSTER_ITEMS, f"AS{n} H"): (6 + n, 0, 0) for n in range(10, 21)}
        | {(Figure.HOSTER_ITEMS, "AS9 Small"): (2, 0, 0)},
    )
    section = _table(Figures(more))
    section = section[section.index("[hoster.items]") :].split("\n\n")[0]
    assert [line.split() for line in section.splitlines() if "more" in line] == [
        ["…", "3", "more"]
    ]  # no count


def test_a_hosters_few_durations_show_only_a_masked_count() -> None:
    few = _with(
        hand_snapshot(NL),
        histograms={(Figure.HOSTER_REMOVAL, "AS9 Tiny"): Histogram.of([DAY, 2 * DAY])},
    )
    doc = json_document(Figures(few))
    tiny = next(d for d in doc["durations"] if d["key"] == "AS9 Tiny")
    assert tiny == {"figure": "hoster.removal", "key": "AS9 Tiny", "n": "<5"}


def _table(figures: Figures) -> str:
    console = Console(
        width=80, file=io.StringIO(), highlight=False, markup=False, emoji=False, soft_wrap=True
    )
    print_table(figures, console)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_the_table_names_the_missing_member_and_fits_80_columns() -> None:
    long_key = "AS64500 " + "Very Long Hosting Organisation Name GmbH & Co. KG " * 2
    figures = _network()
    wide = _with(figures.snapshot, counts={(Figure.HOSTER_ITEMS, long_key[:128]): (9, 9, 9)})
    text = _table(Figures(wide, network=True, missing=figures.missing))
    assert "Statistics of the network: 2 answered, 1 missing" in text
    assert f"MISSING {US}: unreachable: down" in text
    assert "Time to removal [to_removal]" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_the_table_hides_the_share_of_a_masked_count() -> None:
    one = _with(hand_snapshot(NL), counts={(Figure.HOSTER_ITEMS, "AS1 Hoster 1 B.V."): (1, 1, 1)})
    lines = [line for line in _table(Figures(one)).splitlines() if "AS1 Hoster 1" in line]
    assert [line.split() for line in lines] == [["AS1", "Hoster", "1", "B.V.", "<5"]]
