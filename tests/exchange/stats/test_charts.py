"""The charts hold the series they claim: parsed back from their SVG, checked against the data."""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from exchange.stats import chart_draw
from exchange.stats.charts import Chart, chart_png, chart_svg, chart_title, write_charts
from exchange.stats.model import Figure, Histogram
from tests.exchange.stats import chart_svg_read as svg
from tests.exchange.stats.chart_snapshots import (
    DAY_MS,
    countries,
    network,
    removal,
    snapshot,
    spread,
)


def test_one_bar_per_country_largest_first_with_count_and_share() -> None:
    snap = snapshot(countries({"NL": 30, "US": 60, "JP": 10}))
    root = svg.parse(chart_svg(snap, Chart.COUNTRIES))
    assert svg.ids(root, "bar-") == ["bar-US", "bar-NL", "bar-JP"]
    assert svg.text(svg.by_id(root, "value-US")) == "60 (60.0%)"
    assert svg.text(svg.by_id(root, "value-JP")) == "10 (10.0%)"
    # the y axis names the countries, and the bars' lengths follow the counts
    assert {"US", "NL", "JP"} <= set(svg.all_text(root))
    us, nl = svg.width(svg.by_id(root, "bar-US")), svg.width(svg.by_id(root, "bar-NL"))
    assert us == pytest.approx(2 * nl, rel=1e-3)


def test_countries_beyond_the_top_fifteen_are_one_other_bar() -> None:
    totals = {f"C{i:02d}": 100 - i for i in range(20)}
    root = svg.parse(chart_svg(snapshot(countries(totals)), Chart.COUNTRIES))
    bars = svg.ids(root, "bar-")
    assert len(bars) == 16
    assert bars[:15] == [f"bar-C{i:02d}" for i in range(15)]
    assert bars[15] == "bar-other"
    rest = sum(100 - i for i in range(15, 20))
    assert svg.text(svg.by_id(root, "value-other")).startswith(f"{rest} (")
    assert "other (5)" in svg.all_text(root)


def test_bars_are_coloured_in_network_or_orphan_when_the_members_countries_are_known() -> None:
    snap = snapshot(countries({"NL": 30, "JP": 10, "": 2}))
    root = svg.parse(chart_svg(snap, Chart.COUNTRIES, member_countries={"NL", "DE"}))
    assert svg.fill(svg.by_id(root, "bar-NL")) == chart_draw.IN_NETWORK_COLOUR
    assert svg.fill(svg.by_id(root, "bar-JP")) == chart_draw.ORPHAN_COLOUR
    assert svg.fill(svg.by_id(root, "bar-untraced")) == chart_draw.OTHER_COLOUR
    assert "countries without a member" in svg.all_text(root)
    plain = svg.parse(chart_svg(snap, Chart.COUNTRIES))
    assert svg.fill(svg.by_id(plain, "bar-JP")) == svg.fill(svg.by_id(plain, "bar-NL"))


def _reaches_one_at(root: svg.ET.Element, series: str) -> float:
    """The x where a CDF line first reaches its top (1.0): the smallest y on the path."""
    pts = svg.points(svg.by_id(root, series))
    top = min(y for _, y in pts)
    return min(x for x, y in pts if y == top)


def _marker_x(root: svg.ET.Element, marker: str) -> float:
    return svg.points(svg.by_id(root, marker))[0][0]


def test_time_to_removal_cdf_reaches_one_at_the_last_duration_bucket() -> None:
    # in-network: all removed within 3 days (the last one after 2.5 days); orphan: within 28
    snap = snapshot(histograms=removal([0.01, 1.5, 2.5], [10, 27.5]))
    root = svg.parse(chart_svg(snap, Chart.TO_REMOVAL))
    assert svg.ids(root, "series-") == ["series-in_network", "series-orphan"]
    assert _reaches_one_at(root, "series-in_network") == pytest.approx(
        _marker_x(root, "marker-3d"), abs=0.01
    )
    assert _reaches_one_at(root, "series-orphan") == pytest.approx(
        _marker_x(root, "marker-28d"), abs=0.01
    )
    # and the published shares are in the legend
    legend = " ".join(svg.all_text(root))
    assert "same day 33% · ≤ 3 d 100%" in legend
    assert "same day 0% · ≤ 3 d 0% · ≤ 7 d 0% · > 28 d 0%" in legend


def test_removals_within_seconds_still_draw_a_line_held_to_the_right_edge() -> None:
    # the demo's automated removals: seconds, left of the usual one-minute start
    snap = snapshot(histograms=removal([3 / 86_400, 8 / 86_400], []))
    root = svg.parse(chart_svg(snap, Chart.TO_REMOVAL))
    assert "1 s" in svg.all_text(root)
    pts = svg.points(svg.by_id(root, "series-in_network"))
    assert max(x for x, _ in pts) > _marker_x(root, "marker-28d")
    assert _reaches_one_at(root, "series-in_network") < _marker_x(root, "marker-1d")


def test_one_series_only_when_one_side_has_durations() -> None:
    snap = snapshot(histograms={(Figure.TO_LEA, "orphan"): Histogram.of([5 * DAY_MS])})
    root = svg.parse(chart_svg(snap, Chart.TO_LEA))
    assert svg.ids(root, "series-") == ["series-orphan"]
    assert "Time to law enforcement" in svg.text(svg.by_id(root, "title"))


def test_title_names_the_period_and_the_missing_members() -> None:
    a = snapshot(countries({"NL": 3}), member="nl-eokm")
    b = snapshot(countries({"DE": 4}), member="de-eco")
    merged = network(a, b, missing={"us-ncmec": "unreachable"})
    root = svg.parse(chart_svg(merged, Chart.COUNTRIES))
    heading = svg.text(svg.by_id(root, "title"))
    assert "2026-01-01 to 2026-06-30, by month" in heading
    assert "network: 2 members, missing: us-ncmec (unreachable)" in heading
    assert svg.text(root.find(f"{svg.SVG}title")) == heading.replace("\n", "; ")
    single = svg.parse(chart_svg(a, Chart.COUNTRIES))
    assert "member: nl-eokm" in svg.text(svg.by_id(single, "title"))
    whole = svg.parse(chart_svg(network(a, b), Chart.VOLUME))
    assert "network: 2 members, none missing" in svg.text(svg.by_id(whole, "title"))


@pytest.mark.parametrize("chart", list(Chart))
def test_a_chart_without_data_says_so(chart: Chart) -> None:
    root = svg.parse(chart_svg(snapshot(), chart))
    assert svg.text(svg.by_id(root, "no-data")) == "no data for this period"
    assert svg.ids(root, "bar-") == svg.ids(root, "series-") == svg.ids(root, "hoster-") == []
    assert "2026-01-01 to 2026-06-30" in svg.text(svg.by_id(root, "title"))


def test_volume_has_one_point_per_bucket_for_each_figure_counted() -> None:
    snap = snapshot(
        {
            (Figure.INTAKE, "NL"): (1, 2, 3, 4, 5, 6),
            (Figure.INTAKE, ""): (1, 0, 0, 0, 0, 0),
            (Figure.RECEIVED, "de-eco"): spread(12),
        }
    )
    root = svg.parse(chart_svg(snap, Chart.VOLUME))
    assert svg.ids(root, "series-") == ["series-intake", "series-received"]
    intake = svg.points(svg.by_id(root, "series-intake"))
    assert len(intake) == 6
    # buckets run left to right; intake grows, so its line climbs (SVG y falls)
    assert [x for x, _ in intake] == sorted(x for x, _ in intake)
    assert [y for _, y in intake][1:] == sorted((y for _, y in intake[1:]), reverse=True)
    assert {"2026-01", "2026-06"} <= set(svg.all_text(root))


@pytest.mark.parametrize(
    ("chart", "figure", "keys"),
    [
        (Chart.ASSESSED, Figure.ASSESSED, ["baseline", "national", "not_illegal"]),
        (Chart.SITE_TYPES, Figure.SITE_TYPE, ["image_host", "forum"]),
        (Chart.AGE_GROUPS, Figure.AGE_GROUP, ["pre_pubescent", "pubescent", "infant"]),
    ],
)
def test_breakdowns_have_a_bar_per_key(chart: Chart, figure: Figure, keys: list[str]) -> None:
    snap = snapshot({(figure, k): spread(60 - 10 * i) for i, k in enumerate(keys)})
    root = svg.parse(chart_svg(snap, chart))
    assert svg.ids(root, "bar-") == [f"bar-{k}" for k in keys]


def test_hoster_scorecard_masks_counts_under_five() -> None:
    big, small = "AS64500 Example Hosting", "AS64501 Tiny"
    snap = snapshot(
        {
            (Figure.HOSTER_ITEMS, big): spread(40),
            (Figure.HOSTER_NOTICES, big): spread(12),
            (Figure.HOSTER_REMOVED, big): (3, 0, 0, 0, 0, 0),
            (Figure.HOSTER_ITEMS, small): (2, 0, 0, 0, 0, 0),
        },
        {(Figure.HOSTER_REMOVAL, big): Histogram.of([2 * DAY_MS, 2 * DAY_MS, 6 * DAY_MS])},
    )
    root = svg.parse(chart_svg(snap, Chart.HOSTERS))
    assert svg.text(svg.by_id(root, "hoster-AS64500_Example_Hosting-items-value")) == "40"
    assert svg.text(svg.by_id(root, "hoster-AS64500_Example_Hosting-notices-value")) == "12"
    assert svg.text(svg.by_id(root, "hoster-AS64500_Example_Hosting-removed-value")) == "<5"
    assert svg.text(svg.by_id(root, "hoster-AS64501_Tiny-items-value")) == "<5"
    # a masked bar's length does not tell the count: 3 removed and 2 items draw alike
    removed = svg.width(svg.by_id(root, "hoster-AS64500_Example_Hosting-removed"))
    tiny = svg.width(svg.by_id(root, "hoster-AS64501_Tiny-items"))
    assert removed == pytest.approx(tiny)
    # three removal times: their median would tell one of them, so none is shown
    text = " ".join(svg.all_text(root))
    assert "median to removal" not in text
    assert "under 5 removals: no median" in text


def test_hoster_scorecard_shows_the_median_from_five_removals() -> None:
    big = "AS64500 Example Hosting"
    times = [2 * DAY_MS, 2 * DAY_MS, 2 * DAY_MS, 6 * DAY_MS, 6 * DAY_MS]
    snap = snapshot(
        {(Figure.HOSTER_ITEMS, big): spread(40), (Figure.HOSTER_REMOVED, big): spread(5)},
        {(Figure.HOSTER_REMOVAL, big): Histogram.of(times)},
    )
    root = svg.parse(chart_svg(snap, Chart.HOSTERS))
    assert "median to removal ≤ 2 d" in " ".join(svg.all_text(root))


def test_hostile_keys_stay_text() -> None:
    key = "$\\frac{1}{0}$ <script>alert(1)</script>\x00\u202e"
    snap = snapshot({(Figure.ITEMS, key): spread(9), (Figure.HOSTER_ITEMS, key): spread(9)})
    for chart in (Chart.COUNTRIES, Chart.HOSTERS):
        doc = chart_svg(snap, chart)
        root = svg.parse(doc)
        assert not [e for e in root.iter() if e.tag.endswith("script")]
        assert "<script" not in doc
        assert any("<script>alert" in t for t in svg.all_text(root))


def test_output_is_deterministic_and_has_no_script() -> None:
    snap = snapshot(countries({"NL": 30}), removal([1], [2]))
    for chart in Chart:
        doc = chart_svg(snap, chart)
        assert doc == chart_svg(snap, chart)
        assert doc.startswith("<?xml")
        lowered = doc.lower()
        for needle in ("<script", "javascript:", " onload=", " onclick="):
            assert needle not in lowered


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_png_is_800_by_500() -> None:
    snap = snapshot(countries({"NL": 30}))
    assert _png_size(chart_png(snap, Chart.COUNTRIES)) == (800, 500)
    assert _png_size(chart_png(snapshot(), Chart.HOSTERS)) == (800, 500)


def test_write_charts_writes_one_file_per_chart_and_format(tmp_path: Path) -> None:
    snap = snapshot(countries({"NL": 30}))
    out = tmp_path / "plots"
    paths = write_charts(snap, out)
    assert sorted(p.name for p in paths) == sorted(
        f"{c.value}.{fmt}" for c in Chart for fmt in ("png", "svg")
    )
    assert _png_size((out / "countries.png").read_bytes()) == (800, 500)
    assert svg.ids(svg.parse((out / "countries.svg").read_text()), "bar-") == ["bar-NL"]
    only = write_charts(snap, tmp_path / "svg", ("svg",), charts=[Chart.VOLUME])
    assert [p.name for p in only] == ["volume.svg"]


def test_an_unknown_format_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown chart format 'gif'; one of png, svg"):
        write_charts(snapshot(), tmp_path / "x", ("svg", "gif"))
    assert not (tmp_path / "x").exists()


def test_the_title_on_one_line_for_captions() -> None:
    merged = network(snapshot(), missing={"de-eco": "refused"})
    assert chart_title(merged, Chart.TO_LEA) == (
        "Time to law enforcement, 2026-01-01 to 2026-06-30, by month; "
        "network: 1 member, missing: de-eco (refused)"
    )


def test_charts_rendered_at_once_from_threads_are_those_rendered_alone() -> None:
    # matplotlib's settings are process-wide: renders from the web view's threads must not mix
    snaps = [snapshot(countries({"NL": 10 * (i + 1), "DE": 5})) for i in range(4)]
    jobs = [(s, c) for s in snaps for c in (Chart.COUNTRIES, Chart.VOLUME)]
    alone = [chart_svg(s, c) for s, c in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda job: chart_svg(*job), jobs))
    assert together == alone
