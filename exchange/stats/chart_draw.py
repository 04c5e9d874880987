"""Drawing the charts with matplotlib's object API — no pyplot, no global figure state.

Each ``draw_*`` fills a fresh ``matplotlib.figure.Figure`` from what ``chart_data`` computed and
names its series with gids (``bar-NL``, ``series-in_network``, ``marker-7d``, ``no-data``) so the
SVG can be checked by tests and found by the browser. A chart without data draws the "no data
for this period" figure with the same title instead of failing.

Sizes are fixed — 800 x 500 px: the PNG at 96 dpi, the SVG 600 x 375 pt — so a chart is
readable at 800 px and a PNG has a known size; text is DejaVu Sans (shipped with matplotlib,
never downloaded).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure as MplFigure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, PercentFormatter

from exchange.stats import chart_data as cd
from exchange.stats.model import Figure, Merged, Snapshot

DPI = 96  # CSS pixels per inch: the SVG (in points) and the PNG are both 800 x 500 px
WIDTH_IN, HEIGHT_IN = 800 / DPI, 500 / DPI
IN_NETWORK_COLOUR = "#1f5f99"
ORPHAN_COLOUR = "#c8553d"
NEUTRAL_COLOUR = "#4a6f8a"
OTHER_COLOUR = "#9aa5ad"
SERIES_COLOURS = {"in_network": IN_NETWORK_COLOUR, "orphan": ORPHAN_COLOUR}
VOLUME_COLOURS = {
    Figure.INTAKE: "#1f5f99",
    Figure.SENT: "#2a9d8f",
    Figure.RECEIVED: "#e9a03b",
    Figure.ITEMS: "#c8553d",
}
VOLUME_NAMES = {
    Figure.INTAKE: "reports from analysts",
    Figure.SENT: "reports sent",
    Figure.RECEIVED: "reports received",
    Figure.ITEMS: "items held",
}
SERIES_NAMES = {"in_network": "in-network countries", "orphan": "countries without a member"}


def new_figure(heading: str) -> tuple[MplFigure, Axes]:
    fig = MplFigure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    fig.suptitle(heading, fontsize=12, gid="title", wrap=True)
    return fig, ax


def no_data(fig: MplFigure, ax: Axes) -> MplFigure:
    """The chart of an empty figure: the title, and a clear "no data" in place of the data."""
    ax.set_axis_off()
    ax.text(
        0.5,
        0.5,
        "no data for this period",
        ha="center",
        va="center",
        fontsize=16,
        color="#555555",
        transform=ax.transAxes,
        gid="no-data",
    )
    return fig


def draw_bars(
    heading: str,
    rows: Sequence[cd.Bar],
    *,
    x_label: str,
    y_label: str,
    prefix: str = "bar",
    legend: bool = False,
) -> MplFigure:
    """Horizontal bars, largest on top, each labelled with its count and share."""
    fig, ax = new_figure(heading)
    if not rows:
        return no_data(fig, ax)
    ys = list(range(len(rows)))
    container = ax.barh(ys, [b.count for b in rows], color=[_bar_colour(b) for b in rows])
    for rect, name in zip(
        container.patches, cd.unique_gids(prefix, [b.key for b in rows]), strict=True
    ):
        rect.set_gid(name)
    top = max(b.count for b in rows)
    for y, b in zip(ys, rows, strict=True):
        ax.text(
            b.count + top * 0.01,
            y,
            f"{b.count:,} ({b.share:.1%})",
            va="center",
            fontsize=8,
            gid=cd.gid("value", b.key),
        )
    ax.set_yticks(ys, [b.label for b in rows], fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.25)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.grid(axis="x", alpha=0.3)
    if legend and any(b.in_network is not None for b in rows):
        _network_legend(ax)
    return fig


def _bar_colour(b: cd.Bar) -> str:
    if b.key in (cd.OTHER, ""):
        return OTHER_COLOUR
    if b.in_network is None:
        return NEUTRAL_COLOUR
    return IN_NETWORK_COLOUR if b.in_network else ORPHAN_COLOUR


def _network_legend(ax: Axes) -> None:
    ax.legend(
        handles=[
            Patch(color=IN_NETWORK_COLOUR, label=SERIES_NAMES["in_network"]),
            Patch(color=ORPHAN_COLOUR, label=SERIES_NAMES["orphan"]),
        ],
        loc="lower right",
        fontsize=8,
    )


def draw_countries(
    source: Snapshot | Merged, member_countries: Collection[str] | None
) -> MplFigure:
    snap, _ = cd.unwrap(source)
    rows = cd.bars(snap, Figure.ITEMS, member_countries=member_countries)
    heading = cd.heading(cd.Chart.COUNTRIES, source)
    split = snap.by_key(Figure.ITEMS_ORPHAN)
    if sum(split.values()):
        share = split.get("in_network", 0) / sum(split.values())
        heading += f"; in-network {share:.0%}, without a member {1 - share:.0%}"
    return draw_bars(heading, rows, x_label="items (count)", y_label="hosting country", legend=True)


def draw_cdf(heading: str, curves: Sequence[cd.Cdf], x_label: str) -> MplFigure:
    """Cumulative share by duration, one line per key, with the published limits marked."""
    fig, ax = new_figure(heading)
    if not curves:
        return no_data(fig, ax)
    right = cd.OVERFLOW_MS / cd.DAY_MS * 1.2
    for curve in curves:
        # Held at its last share up to the right edge, so a curve done early still shows.
        days = [x / cd.DAY_MS for x in curve.xs_ms] + [right]
        ax.step(
            days,
            [*curve.shares, curve.shares[-1]],
            where="post",
            color=SERIES_COLOURS.get(curve.key, NEUTRAL_COLOUR),
            label=_cdf_legend(curve),
            gid=cd.gid("series", curve.key),
        )
    for mid, limit, _ in cd.MARKERS:
        ax.axvline(limit / cd.DAY_MS, color="#777777", linestyle=":", lw=1, gid=f"marker-{mid}")
    ax.set_xscale("log")
    # From a minute, or from a second when something took less (the demo's automated steps).
    quick = any(x < 60_000 for curve in curves for x in curve.xs_ms)
    ax.set_xlim((1_000 if quick else 60_000) / cd.DAY_MS, right)
    ax.set_xticks(*_duration_ticks(quick))
    ax.minorticks_off()
    ax.set_ylim(0, 1.0)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel(x_label)
    ax.set_ylabel("share of items (cumulative)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def _cdf_legend(curve: cd.Cdf) -> str:
    """A line's name with the figures INHOPE publishes: median, p90 and the shares."""
    name = SERIES_NAMES.get(curve.key, cd.label(curve.key))
    at = curve.at_markers
    return (
        f"{name} (n={curve.total:,}): median ≤ {cd.duration_text(curve.median_ms)}, "
        f"p90 ≤ {cd.duration_text(curve.p90_ms)}\n"
        f"same day {at['1d']:.0%} · ≤ 3 d {at['3d']:.0%} · ≤ 7 d {at['7d']:.0%} · "
        f"> 28 d {1 - at['28d']:.0%}"
    )


def _duration_ticks(quick: bool) -> tuple[list[float], list[str]]:
    """Ticks people read: the published limits (1, 3, 7, 28 days) among round durations."""
    ms = [60_000, 3_600_000, cd.DAY_MS, 3 * cd.DAY_MS, 7 * cd.DAY_MS, 28 * cd.DAY_MS]
    names = ["1 min", "1 h", "1 d", "3 d", "7 d", "28 d", "90 d", "> 1 y"]
    ms += [90 * cd.DAY_MS, cd.OVERFLOW_MS]
    if quick:
        ms, names = [1_000, *ms], ["1 s", *names]
    return [m / cd.DAY_MS for m in ms], names


def draw_volume(source: Snapshot | Merged) -> MplFigure:
    snap, _ = cd.unwrap(source)
    fig, ax = new_figure(cd.heading(cd.Chart.VOLUME, source))
    vol = cd.volume(snap)
    if not vol.series:
        return no_data(fig, ax)
    days: list[Any] = list(vol.starts)  # matplotlib's date units (its stubs say floats)
    for figure, row in vol.series.items():
        ax.plot(
            days,
            row,
            marker="o",
            markersize=3,
            color=VOLUME_COLOURS[figure],
            label=VOLUME_NAMES[figure],
            gid=cd.gid("series", figure.value),
        )
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlabel(f"{snap.period.granularity.value} (UTC, first day of each)")
    ax.set_ylabel("count per " + snap.period.granularity.value)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return fig


def draw_hosters(source: Snapshot | Merged) -> MplFigure:
    """The scorecard: items, notices and removals per hoster; masked counts drawn as "<5"."""
    snap, _ = cd.unwrap(source)
    fig, ax = new_figure(cd.heading(cd.Chart.HOSTERS, source))
    rows = cd.hosters(snap)
    if not rows:
        return no_data(fig, ax)
    height = 0.27
    gids = cd.unique_gids("hoster", [r.key for r in rows])
    columns = (
        (Figure.HOSTER_ITEMS, "items", "#4a6f8a"),
        (Figure.HOSTER_NOTICES, "notices", "#e9a03b"),
        (Figure.HOSTER_REMOVED, "removed", "#2a9d8f"),
    )
    for n, (figure, name, colour) in enumerate(columns):
        _hoster_column(ax, rows, gids, figure, name, colour, (n - 1) * height, height)
    ax.set_yticks(
        range(len(rows)),
        [f"{r.label}\n{_median_text(r)}" for r in rows],
        fontsize=7,
    )
    ax.invert_yaxis()
    ax.set_xlabel('count (counts under 5 shown as "<5")')
    ax.set_ylabel("hoster (AS number and organisation)")
    ax.grid(axis="x", alpha=0.3)
    handles = [Patch(color=colour, label=name) for _, name, colour in columns]
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", label="under 5"))
    ax.legend(handles=handles, fontsize=8, loc="lower right")
    return fig


def _median_text(row: cd.HosterRow) -> str:
    if row.median_ms is not None:
        return f"median to removal ≤ {cd.duration_text(row.median_ms)}"
    return "no removal yet" if row.removed == 0 else "under 5 removals: no median"


def _hoster_column(
    ax: Axes,
    rows: Sequence[cd.HosterRow],
    gids: Sequence[str],
    figure: Figure,
    name: str,
    colour: str,
    offset: float,
    height: float,
) -> None:
    values: list[int] = [getattr(r, name) for r in rows]
    lengths = [cd.HosterRow.drawn(v) for v in values]
    ys = [i + offset for i in range(len(rows))]
    container = ax.barh(ys, lengths, height=height, color=colour, label=name)
    for rect, row, base, value in zip(container.patches, rows, gids, values, strict=True):
        rect.set_gid(f"{base}-{name}")
        if row.shown(figure) != str(value):
            rect.set_hatch("//")
        ax.text(
            rect.get_width(),
            rect.get_y() + height / 2,
            " " + row.shown(figure),
            fontsize=7,
            va="center",
            gid=f"{base}-{name}-value",
        )
