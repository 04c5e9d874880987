"""The node's own reporter-region statistics: reports per consented region, small counts hidden.

EOKM's practice: a reporter may agree to give a coarse region (an ISO 3166-2 subdivision),
which this node keeps beside the report and never sends anywhere (it is no field of the wire
report). The figures are for this node's own statistics only, and a region with fewer than
``MINIMUM`` reports is shown as ``"<5"``, never as its count, so a rare region cannot point at
a person. No total is given: with one hidden region it would give that region away.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from exchange.store.reports import region_counts

MINIMUM = 5


@dataclass(frozen=True, slots=True)
class RegionFigure:
    region: str
    reports: int | None  # None: fewer than MINIMUM, shown as "<5"

    @property
    def shown(self) -> str:
        return str(self.reports) if self.reports is not None else f"<{MINIMUM}"


def suppress(counts: dict[str, int], minimum: int = MINIMUM) -> list[RegionFigure]:
    """Each region's figure in region order; counts under ``minimum`` hidden."""
    return [
        RegionFigure(region, n if n >= minimum else None) for region, n in sorted(counts.items())
    ]


def region_figures(engine: Engine) -> list[RegionFigure]:
    with engine.connect() as conn:
        return suppress(region_counts(conn))


def to_document(figures: list[RegionFigure]) -> dict[str, object]:
    """The JSON form: region → count, or the string ``"<5"``."""
    return {
        "minimum_shown": MINIMUM,
        "regions": {f.region: f.reports if f.reports is not None else f.shown for f in figures},
    }
