"""docs/cli.md's import examples are what ``ihx import`` reads (and refuses) — checked, so the
documented format cannot drift from the parser."""

from __future__ import annotations

import io
import re
from pathlib import Path

from exchange.client.report_files import iter_csv, iter_jsonl
from exchange.domain import Submission

DOC = Path(__file__).resolve().parents[3] / "docs" / "cli.md"


def blocks(language: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Import file format") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)


def test_the_json_lines_examples_are_valid_reports() -> None:
    (example,) = blocks("json")
    parsed = list(iter_jsonl(io.BytesIO(example.encode())))
    assert len(parsed) == 2
    assert all(isinstance(p, Submission) for _, p in parsed), parsed
    region = parsed[1][1]
    assert isinstance(region, Submission)
    assert region.reporter_region == "NL-NH"


def test_the_csv_examples_read_as_documented() -> None:
    commas, semicolons = blocks("csv")
    parsed = list(iter_csv(io.BytesIO(commas.encode())))
    assert [n for n, _ in parsed] == [2, 3]
    assert all(isinstance(p, Submission) for _, p in parsed), parsed
    two = parsed[1][1]
    assert isinstance(two, Submission)
    assert len(two.items[0].hashes) == 2
    assert two.facts.notes == "seen twice, same host"
    ((line, refusal),) = list(iter_csv(io.BytesIO(semicolons.encode())))
    assert (line, refusal) == (2, "commercial: 'ja' is not true or false")
