"""A case's PDQ items as people and scripts read them: known content apart from near-known.

``ihx case show`` (80 columns, and ``--json``), the web view's words (``case_text``) and the
GetCase fields (``near_codec``) — pure functions of a ``CaseDetail``, checked on one built here.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

from rich.console import Console

from exchange.cli.casework import case_document, render_case
from exchange.client.case_text import known_text, near_summary, near_text
from exchange.domain import Classification, ItemPdq, NearSighting, Sighting
from exchange.lifecycle.model import CaseDetail
from exchange.wire.case_codec import case_detail_from_proto, case_detail_to_proto

CASE = "c-" + "a" * 32
REPORT = "r-" + "a" * 32
OTHER_CASE = "c-" + "b" * 32
AT = datetime(2026, 11, 3, 9, 15, 42, 123456, tzinfo=UTC)
HEX = "c3" * 32
NEAR_HEX = "c1" * 32

EXACT = Sighting("de-eco", OTHER_CASE, Classification.NATIONAL, AT, "")
NEAR = NearSighting(NEAR_HEX, 20, Sighting("us-ncmec", OTHER_CASE, Classification.BASELINE, AT, ""))


def detail(*pdq: ItemPdq, note: str = "") -> CaseDetail:
    return CaseDetail(
        id=CASE,
        holder="nl-eokm",
        url="",
        hosting_country="NL",
        opened_at=AT,
        closed_at=None,
        reporting_members=("nl-eokm",),
        items=(),
        timeline=(),
        pdq=pdq,
        pdq_note=note,
    )


FLAGGED = ItemPdq(REPORT, 0, HEX, EXACT, (NEAR,))
LOW = ItemPdq(REPORT, 1, NEAR_HEX, None, (), "pdq quality 30 below 50: not matched")
ALONE = ItemPdq(REPORT, 2, HEX, None)


def shown(d: CaseDetail) -> list[str]:
    buf = io.StringIO()
    render_case(d, Console(file=buf, width=200, color_system=None, highlight=False))
    return buf.getvalue().splitlines()


def test_the_words_tell_known_content_from_near_known_content() -> None:
    assert known_text(FLAGGED) == (
        f"de-eco, case {OTHER_CASE}, national, first seen 2026-11-03T09:15:42Z"
    )
    assert known_text(ALONE) == "not sighted in another case"
    assert near_text(NEAR) == (
        f"distance 20: us-ncmec, case {OTHER_CASE}, baseline, first seen 2026-11-03T09:15:42Z"
    )
    assert near_summary(FLAGGED) == "1 sighting(s), nearest first"
    assert near_summary(LOW) == "pdq quality 30 below 50: not matched"
    assert near_summary(ALONE) == "none within the threshold"


def test_case_show_lists_each_pdq_item_in_80_columns() -> None:
    lines = shown(detail(FLAGGED, LOW, ALONE))
    assert all(len(line) <= 80 for line in lines), [x for x in lines if len(x) > 80]
    start = lines.index("PDQ items (3): known content, then near-known content")
    b = "c-" + "b" * 32
    assert lines[start + 1 : start + 17] == [
        f"  {REPORT}#0",
        f"      pdq:{HEX}",
        f"      known content  de-eco, case {b}, national,",
        "                     first seen 2026-11-03T09:15:42Z",
        "      near-known     1 sighting(s), nearest first",
        "      near           distance 20: us-ncmec, case",
        f"                     {b}, baseline, first seen",
        "                     2026-11-03T09:15:42Z",
        f"  {REPORT}#1",
        f"      pdq:{NEAR_HEX}",
        "      known content  not sighted in another case",
        "      near-known     pdq quality 30 below 50: not matched",
        f"  {REPORT}#2",
        f"      pdq:{HEX}",
        "      known content  not sighted in another case",
        "      near-known     none within the threshold",
    ]


def test_case_show_says_when_no_index_can_tell() -> None:
    lines = shown(detail(note="near-known content: the PDQ index is still opening"))
    assert "near-known content: the PDQ index is still opening" in lines
    assert not any(line.startswith("PDQ items") for line in lines)


def test_the_json_document_keeps_known_and_near_apart() -> None:
    doc = json.loads(json.dumps(case_document(detail(FLAGGED, LOW))))
    assert doc["pdq_note"] is None
    first, second = doc["pdq"]
    assert first == {
        "item": f"{REPORT}#0",
        "report_id": REPORT,
        "index": 0,
        "hex": HEX,
        "known": {
            "member": "de-eco",
            "case_id": OTHER_CASE,
            "classification": "national",
            "first_seen": "2026-11-03T09:15:42.123456Z",
        },
        "near": [
            {
                "hex": NEAR_HEX,
                "distance": 20,
                "member": "us-ncmec",
                "case_id": OTHER_CASE,
                "classification": "baseline",
                "first_seen": "2026-11-03T09:15:42.123456Z",
            }
        ],
        "not_matched": None,
    }
    assert (second["known"], second["near"]) == (None, [])
    assert second["not_matched"] == "pdq quality 30 below 50: not matched"


def test_getcase_carries_the_pdq_items_both_ways() -> None:
    sent = detail(FLAGGED, LOW, ALONE, note="")
    msg = case_detail_to_proto(sent)
    assert [p.HasField("known") for p in msg.pdq] == [True, False, False]
    assert msg.pdq[0].known.distance == 0
    assert msg.pdq[0].known.hex == HEX
    back = case_detail_from_proto(msg)
    assert back.pdq == sent.pdq  # report ids of sightings stay at the node ("")
    noted = case_detail_from_proto(case_detail_to_proto(detail(note="opening")))
    assert (noted.pdq, noted.pdq_note) == ((), "opening")
