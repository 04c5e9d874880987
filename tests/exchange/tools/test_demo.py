"""``ihx demo`` end to end: four real nodes, the day's reports, and a case worked to removal.

The demo must finish with every outbox drained (exit 0), and its summary must show the case
lifecycle as it happened over the network: de-eco took NL-1's case from its unassessed queue,
assessed it and acted on it through its Cases service, and nl-eokm — the origin — saw every
step, in order, with the item's takedown clock, while the coordinator saw the case closed.
"""

from __future__ import annotations

import re

import pytest
from rich.console import Console

from exchange.tools.demo import run_demo

pytestmark = pytest.mark.timeout(120)


def test_the_demo_shows_a_case_from_report_to_removal_at_its_origin() -> None:
    console = Console(record=True, width=200, color_system=None, markup=True, emoji=False)
    assert run_demo(None, console) == 0
    text = console.export_text()
    lines = text.splitlines()

    start = lines.index(next(line for line in lines if line.startswith("Case lifecycle: ")))
    header, seen, *steps = lines[start : start + 6]
    case_id = re.fullmatch(r"Case lifecycle: case (c-[0-9a-f]{32}) at de-eco \(.*\)", header)
    assert case_id is not None, header
    assert re.fullmatch(
        r"   nl-eokm sees its report r-[0-9a-f]{32}: delivered to de-eco \(new-case\), then:", seen
    )
    assert steps == [
        "     de-eco  2 items: assessed baseline, age prepubescent, gender female",
        "     de-eco  2 items: reported to law enforcement (bka), ref BKA-2026-0415",
        "     de-eco  2 items: notice sent to the host (abuse@hetzner.example)",
        "     de-eco  2 items: removed",
    ]
    clock = r"to assessment \S+ s, to law enforcement \S+ s, to host notice \S+ s, to removal \S+ s"
    for index in (0, 1):
        assert re.fullmatch(
            rf"   item {index}: removed; takedown clock: {clock}", lines[start + 6 + index]
        )
    assert lines[start + 8] == (
        f"   the coordinator's view of case {case_id[1]}: closed, every item removed"
    )
    assert "All outboxes drained; demo finished in" in text
