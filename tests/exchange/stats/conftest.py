"""A node's world for the statistics tests: us-ncmec's real intake, case work and writer.

us-ncmec serves US and, by the test network's orphan rule, JP: a US-hosted report opens a case
held here in-network, a JP-hosted one an orphan case; an NL-hosted one goes to nl-eokm (intake
here, items there). The clock is fake and moves only when a test says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from exchange.domain import Classification, ReportFacts, SiteType
from exchange.intake import Intake
from exchange.lifecycle.record import Recorder
from exchange.lifecycle.work import CaseWork
from exchange.stats.figures import NodeFigures
from exchange.store.writer import Writer
from tests.exchange.factories import FakeClock, case_here, make_submission, url_in

US = "us-ncmec"


@dataclass
class World:
    engine: Engine
    writer: Writer
    clock: FakeClock
    intake: Intake
    work: CaseWork
    figures: NodeFigures

    def report(
        self,
        seed: str,
        *,
        country: str = "US",
        items: int = 1,
        site_type: SiteType = SiteType.WEBSITE,
        commercial: bool = False,
        hashes: Sequence[str] | None = None,
        classification: Classification = Classification.BASELINE,
    ) -> tuple[str, str]:
        """A report submitted here now: (its id, the id of the case it opened here, or "" when
        it went to its holder)."""
        result = self.intake.submit(
            make_submission(
                url_in(country, f"/{seed}.jpg"),
                hashes=list(hashes or [f"{seed}-{i}" for i in range(items)]),
                facts=ReportFacts(site_type=site_type, commercial=commercial),
                classification=classification,
            )
        )
        return result.report_id, case_here(self.engine, result.report_id) or ""

    def later(self, **delta: float) -> None:
        self.clock.advance(timedelta(**delta).total_seconds())


@pytest.fixture
def world(
    engine: Engine,
    writer: Writer,
    clock: FakeClock,
    make_intake: Callable[..., Intake],
    manifest: object,
) -> World:
    work = CaseWork(
        self_member=US,
        manifest=lambda: manifest,  # type: ignore[arg-type,return-value]
        writer=writer,
        clock=clock,
        recorder=Recorder(self_member=US),
    )
    figures = NodeFigures(engine=engine, member=US, clock=clock, writer=writer)
    return World(engine, writer, clock, make_intake(US), work, figures)
