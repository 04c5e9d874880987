"""exchange/ops/regions.py: reports per consented region, counts under five hidden as "<5"."""

from __future__ import annotations

from sqlalchemy import Engine

from exchange.domain import ReportRole
from exchange.ops.regions import MINIMUM, RegionFigure, region_figures, suppress, to_document
from exchange.store import reports
from exchange.store.reports import Incoming
from tests.exchange.factories import T0, make_report, report_wire


def test_counts_under_five_are_hidden() -> None:
    figures = suppress({"NL-UT": 4, "NL-NH": 5, "NL-ZH": 1, "NL-GR": 120})
    assert figures == [
        RegionFigure("NL-GR", 120),
        RegionFigure("NL-NH", 5),
        RegionFigure("NL-UT", None),
        RegionFigure("NL-ZH", None),
    ]
    assert [f.shown for f in figures] == ["120", "5", "<5", "<5"]
    assert to_document(figures) == {
        "minimum_shown": MINIMUM,
        "regions": {"NL-GR": 120, "NL-NH": 5, "NL-UT": "<5", "NL-ZH": "<5"},
    }
    assert suppress({}) == []


def test_figures_come_from_the_reports_entered_here(engine: Engine) -> None:
    batch = []
    for i in range(7):
        report = make_report(hashes=[f"r{i}"])
        region = "NL-NH" if i < 5 else "NL-UT"
        batch.append(
            Incoming(report, report_wire(report), ReportRole.ORIGIN, reporter_region=region)
        )
    with engine.begin() as conn:
        reports.insert(conn, batch, [None] * 7, [(None,)] * 7, T0)
    assert [(f.region, f.shown) for f in region_figures(engine)] == [
        ("NL-NH", "5"),
        ("NL-UT", "<5"),
    ]
