"""The statistics' charts: one API for ``ihx stats plot`` and the web view.

``chart_svg(snapshot, Chart.X)`` gives one chart as an SVG document string (what the web view
inlines or serves), ``chart_png`` the same chart as PNG bytes, and ``write_charts`` writes every
chart in each format to a folder (what ``ihx stats plot --out DIR`` does). A snapshot is one
node's ``Snapshot`` or the network's ``Merged`` (whose titles name the members that answered and
those missing).

matplotlib runs with the Agg/SVG renderers only (never pyplot, never a GUI, never the network):
settings are applied per render under one lock, because matplotlib's rcParams are process-wide
and the web view renders from several threads. Output is deterministic for the same input (a
fixed ``svg.hashsalt``, no date in the metadata), carries no script, and keeps text as SVG
``<text>`` so it stays searchable, accessible and checkable (DejaVu Sans, shipped with
matplotlib; a browser falls back to a sans-serif).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure as MplFigure

from exchange.stats import chart_data as cd
from exchange.stats import chart_draw as draw
from exchange.stats.chart_data import Chart
from exchange.stats.model import Figure, Merged, Snapshot

__all__ = [
    "FORMATS",
    "Chart",
    "chart_png",
    "chart_svg",
    "chart_title",
    "figure_for",
    "write_charts",
]

matplotlib.use("Agg")  # no GUI backend, whoever imported matplotlib first

FORMATS = ("png", "svg")
_RC: dict[Any, Any] = {
    "text.parse_math": False,  # keys are members' text: "$" is a dollar, never mathtext
    "svg.hashsalt": "ihx-stats",
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "axes.titlesize": 11,
    "axes.labelsize": 9,
    "path.simplify": True,
}
_LOCK = threading.Lock()


def figure_for(
    source: Snapshot | Merged,
    chart: Chart,
    *,
    member_countries: Collection[str] | None = None,
) -> MplFigure:
    """The matplotlib figure of one chart (an empty figure gives the "no data" chart)."""
    snap, _ = cd.unwrap(source)
    if chart is Chart.COUNTRIES:
        return draw.draw_countries(source, member_countries)
    if chart is Chart.TO_REMOVAL:
        return draw.draw_cdf(
            cd.heading(Chart.TO_REMOVAL, source),
            cd.cdfs(snap, Figure.TO_REMOVAL),
            "time from the item's clock start to its removal (log scale)",
        )
    if chart is Chart.TO_LEA:
        return draw.draw_cdf(
            cd.heading(Chart.TO_LEA, source),
            cd.cdfs(snap, Figure.TO_LEA),
            "time from the item's clock start to its report to law enforcement (log scale)",
        )
    if chart is Chart.VOLUME:
        return draw.draw_volume(source)
    if chart is Chart.HOSTERS:
        return draw.draw_hosters(source)
    figure, axis = _BREAKDOWNS[chart]
    return draw.draw_bars(
        cd.heading(chart, source), cd.bars(snap, figure), x_label="items (count)", y_label=axis
    )


_BREAKDOWNS = {
    Chart.ASSESSED: (Figure.ASSESSED, "classification"),
    Chart.SITE_TYPES: (Figure.SITE_TYPE, "site type"),
    Chart.AGE_GROUPS: (Figure.AGE_GROUP, "age group"),
}


def chart_title(source: Snapshot | Merged, chart: Chart) -> str:
    """A chart's title on one line (what, period, whose figures): a page's alt text or caption."""
    return cd.heading(Chart(chart), source).replace("\n", "; ")


def _render(
    source: Snapshot | Merged, chart: Chart, fmt: str, member_countries: Collection[str] | None
) -> bytes:
    if fmt not in FORMATS:
        raise ValueError(f"unknown chart format {fmt!r}; one of {', '.join(FORMATS)}")
    buf = io.BytesIO()
    with _LOCK, matplotlib.rc_context(_RC):
        fig = figure_for(source, Chart(chart), member_countries=member_countries)
        fig.savefig(buf, format=fmt, dpi=draw.DPI, metadata=_metadata(fmt, fig))
    return buf.getvalue()


def _metadata(fmt: str, fig: MplFigure) -> dict[str, str | None]:
    """No date (deterministic output); the chart's title as the document's (accessibility)."""
    heading = fig.get_suptitle().replace("\n", "; ")
    if fmt == "svg":
        return {"Date": None, "Creator": "ihx", "Title": heading}
    return {"Software": "ihx", "Title": heading}


def chart_svg(
    source: Snapshot | Merged,
    chart: Chart,
    *,
    member_countries: Collection[str] | None = None,
) -> str:
    """One chart as an SVG document (UTF-8 text, no script, the same bytes for the same input).

    ``member_countries``: the countries the network has a member for — given, the hosting
    countries' bars are coloured in-network vs orphan.
    """
    return _render(source, chart, "svg", member_countries).decode("utf-8")


def chart_png(
    source: Snapshot | Merged,
    chart: Chart,
    *,
    member_countries: Collection[str] | None = None,
) -> bytes:
    """One chart as a PNG image (800 x 500 px)."""
    return _render(source, chart, "png", member_countries)


def write_charts(
    source: Snapshot | Merged,
    out_dir: Path,
    formats: Iterable[str] = FORMATS,
    *,
    charts: Iterable[Chart] = tuple(Chart),
    member_countries: Collection[str] | None = None,
) -> list[Path]:
    """Write each chart in each format to ``out_dir`` (``countries.png``, ``countries.svg``, …),
    creating the folder; the paths written, in order."""
    wanted = list(dict.fromkeys(formats))
    for fmt in wanted:
        if fmt not in FORMATS:
            raise ValueError(f"unknown chart format {fmt!r}; one of {', '.join(FORMATS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for chart in charts:
        for fmt in wanted:
            path = out_dir / f"{Chart(chart).value}.{fmt}"
            path.write_bytes(_render(source, chart, fmt, member_countries))
            written.append(path)
    return written
