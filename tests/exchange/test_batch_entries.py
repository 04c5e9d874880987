"""exchange/batch_entries.py: a batch's ``sent`` and ``receipted`` entries, and reading both
their forms (one per batch since 0019, one per report before)."""

from __future__ import annotations

import json

from exchange.batch_entries import (
    count_of,
    described,
    named_in,
    receipted_entry,
    reports_in,
    sent_entry,
)
from exchange.routing_log import GENESIS, LogChain, verify_chain
from tests.exchange.factories import T0

IDS = ["r-" + "a" * 32, "r-" + "b" * 32, "r-" + "c" * 32]


def test_a_batch_is_sent_in_one_entry_that_lists_its_reports() -> None:
    chain = LogChain(0, GENESIS)
    e = sent_entry(chain, T0, "de-eco", 7, IDS)
    assert (e.kind, e.report_id, e.member, e.country) == ("sent", None, "de-eco", None)
    assert json.loads(e.detail) == {"count": 3, "reports": IDS, "sequence": 7}
    assert (count_of(e.detail), reports_in(e.detail)) == (3, IDS)
    assert verify_chain([e]) is None  # the list is in the hashed text


def test_a_receipt_is_one_entry_with_what_the_holder_answered_for_each_report() -> None:
    chain = LogChain(0, GENESIS)
    results = [(IDS[0], "new-case", "c-1"), (IDS[2], "merged", "c-1")]
    e = receipted_entry(chain, T0, "de-eco", 7, T0, results)
    assert (e.kind, e.report_id, e.member) == ("receipted", None, "de-eco")
    assert json.loads(e.detail) == {
        "count": 2,
        "receipt_time": T0.isoformat(),
        "reports": [list(r) for r in results],
        "sequence": 7,
    }
    assert (count_of(e.detail), reports_in(e.detail)) == (2, [IDS[0], IDS[2]])


def test_an_entry_of_one_report_counts_one_and_lists_none() -> None:
    """Entries written before 0019 name their report themselves."""
    assert (count_of('{"sequence":7}'), reports_in('{"sequence":7}')) == (1, [])
    for text in ("not json", "[1, 2]", '{"reports": 3}', '{"reports": [4, [5], []]}'):
        assert reports_in(text) == [], text


def test_a_report_is_named_in_a_detail_only_by_its_whole_id() -> None:
    chain = LogChain(0, GENESIS)
    e = sent_entry(chain, T0, "de-eco", 7, ["r-abc"])
    assert named_in("r-abc") in e.detail
    assert named_in("r-ab") not in e.detail  # a prefix of an id listed is not listed


def test_a_batch_entry_is_described_without_its_list_but_with_the_report_asked_about() -> None:
    chain = LogChain(0, GENESIS)
    sent = sent_entry(chain, T0, "de-eco", 7, IDS[:2])
    receipt = receipted_entry(chain, T0, "de-eco", 7, T0, [(IDS[0], "new-case", "c-1")])
    assert described(sent.detail) == {"count": 2, "sequence": 7}
    assert described(sent.detail, IDS[1]) == {"count": 2, "sequence": 7, "listed": True}
    assert described(sent.detail, IDS[2]) == {"count": 2, "sequence": 7, "listed": False}
    assert described(receipt.detail, IDS[0]) == {
        "count": 1,
        "receipt_time": T0.isoformat(),
        "sequence": 7,
        "listed": True,
        "outcome": "new-case",
        "case": "c-1",
    }
    for other in ('{"sequence":7}', '{"reports":[]}', "not json", "[]"):
        assert described(other, IDS[0]) is None, other
