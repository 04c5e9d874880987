"""The routing log's hash chain: any edit, removal or reordering is detected."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import timedelta

import pytest

from exchange.routing_log import (
    GENESIS,
    LogChain,
    LogEntry,
    compute_hash,
    detail_json,
    verify_chain,
)
from tests.exchange.factories import T0


def build(n: int = 6) -> list[LogEntry]:
    chain = LogChain(0, GENESIS)
    entries = []
    for i in range(n):
        entries.append(
            chain.append(
                T0 + timedelta(seconds=i),
                "intake" if i % 2 else "new-case",
                report_id=None if i % 4 == 0 else f"r-{i:032x}",
                member="de-eco",
                country="DE" if i % 3 else None,
                detail={"reason": "served-member", "n": i},
            )
        )
    return entries


def test_chain_links_every_entry_to_the_one_before() -> None:
    entries = build()
    assert [e.idx for e in entries] == list(range(len(entries)))
    assert entries[0].previous_hash == GENESIS
    for before, after in itertools.pairwise(entries):
        assert after.previous_hash == before.entry_hash
    for e in entries:
        assert e.entry_hash == compute_hash(
            e.previous_hash, e.idx, e.at, e.kind, e.report_id, e.member, e.country, e.detail
        )
    assert len({e.entry_hash for e in entries}) == len(entries)
    assert verify_chain(entries) is None


def test_detail_is_canonical_json() -> None:
    chain = LogChain(0, GENESIS)
    a = chain.append(T0, "intake", detail={"b": 1, "a": "é"})
    assert a.detail == '{"a":"é","b":1}'
    other = LogChain(0, GENESIS).append(T0, "intake", detail={"a": "é", "b": 1})
    assert other.entry_hash == a.entry_hash


def test_a_detail_made_beforehand_is_the_entry_the_mapping_makes() -> None:
    # Intake makes its entries' detail text before the writer runs, the sealer one per batch:
    # the chain must not tell them from a mapping handed to append.
    detail = {"b": 1, "a": "é"}
    given = LogChain(0, GENESIS).append(T0, "sent", report_id="r-1", detail=detail_json(detail))
    made = LogChain(0, GENESIS).append(T0, "sent", report_id="r-1", detail=detail)
    assert given == made
    assert given.detail == '{"a":"é","b":1}'


def test_row_form_holds_every_field() -> None:
    e = build(1)[0]
    assert e.as_row() == {f.name: getattr(e, f.name) for f in dataclasses.fields(e)}


EDITS = {
    "at": lambda e: dataclasses.replace(e, at=e.at + timedelta(microseconds=1)),
    "kind": lambda e: dataclasses.replace(e, kind="rejected"),
    "report_id": lambda e: dataclasses.replace(e, report_id="r-" + "f" * 32),
    "report_id None→''": lambda e: dataclasses.replace(e, report_id=""),
    "member": lambda e: dataclasses.replace(e, member="us-ncmec"),
    "country": lambda e: dataclasses.replace(e, country="NL"),
    "country None": lambda e: dataclasses.replace(e, country=None),
    "country ''": lambda e: dataclasses.replace(e, country=""),
    "detail": lambda e: dataclasses.replace(e, detail=e.detail.replace("served", "orphan")),
}


@pytest.mark.parametrize("field", list(EDITS))
def test_edited_content_field_is_detected(field: str) -> None:
    entries = build()
    # Entry 4 has report_id None and country "DE".
    entries[4] = EDITS[field](entries[4])
    found = verify_chain(entries)
    assert found is not None
    assert found.idx == 4
    assert "entry hash" in found.problem


def test_edit_with_recomputed_hash_breaks_the_next_link() -> None:
    entries = build()
    e = dataclasses.replace(entries[2], member="us-ncmec")
    digest = compute_hash(
        e.previous_hash, e.idx, e.at, e.kind, e.report_id, e.member, e.country, e.detail
    )
    entries[2] = dataclasses.replace(e, entry_hash=digest)
    found = verify_chain(entries)
    assert found is not None
    assert found.idx == 3
    assert "previous hash" in found.problem


def test_edited_entry_hash_is_detected() -> None:
    entries = build()
    entries[4] = dataclasses.replace(entries[4], entry_hash=bytes(32))
    found = verify_chain(entries)
    assert found is not None
    assert found.idx == 4


def test_edited_previous_hash_is_detected() -> None:
    entries = build()
    entries[1] = dataclasses.replace(entries[1], previous_hash=bytes([1]) * 32)
    found = verify_chain(entries)
    assert found is not None
    assert found.idx == 1
    assert "previous hash" in found.problem


def test_edited_index_is_detected() -> None:
    entries = build()
    entries[2] = dataclasses.replace(entries[2], idx=7)
    found = verify_chain(entries)
    assert found is not None
    assert found.idx == 7
    assert "expected entry 2" in found.problem


def test_edited_genesis_entry_is_detected() -> None:
    entries = build()
    entries[0] = dataclasses.replace(entries[0], kind="forged")
    found = verify_chain(entries)
    assert found is not None
    assert found.idx == 0


@pytest.mark.parametrize("gone", [0, 1, 3, 4])
def test_deleted_entry_is_detected(gone: int) -> None:
    entries = build()
    del entries[gone]
    found = verify_chain(entries)
    assert found is not None
    assert found.idx == gone + 1
    assert "missing" in found.problem


def test_deleted_last_entry_leaves_a_consistent_prefix() -> None:
    # The chain alone cannot see a truncated tail; signed checkpoints carry the size for that.
    entries = build()
    assert verify_chain(entries[:-1]) is None


def test_two_swapped_entries_are_detected() -> None:
    entries = build()
    entries[2], entries[3] = entries[3], entries[2]
    found = verify_chain(entries)
    assert found is not None
    assert found.idx == 3
    assert "reordered" in found.problem


def test_swapped_entries_with_swapped_indexes_are_detected() -> None:
    entries = build()
    a, b = entries[2], entries[3]
    entries[2] = dataclasses.replace(b, idx=2)
    entries[3] = dataclasses.replace(a, idx=3)
    found = verify_chain(entries)
    assert found is not None
    assert found.idx == 2


def test_verifying_from_the_middle_needs_the_right_start() -> None:
    entries = build()
    tail = entries[3:]
    assert verify_chain(tail, start_index=3, start_hash=entries[2].entry_hash) is None
    wrong_hash = verify_chain(tail, start_index=3, start_hash=entries[1].entry_hash)
    assert wrong_hash is not None
    assert wrong_hash.idx == 3
    wrong_index = verify_chain(tail, start_index=2, start_hash=entries[2].entry_hash)
    assert wrong_index is not None
    genesis = verify_chain(tail)
    assert genesis is not None
    assert genesis.idx == 3


def test_empty_chain_is_intact() -> None:
    assert verify_chain([]) is None


def test_mark_and_reset_undo_appends() -> None:
    chain = LogChain(0, GENESIS)
    first = chain.append(T0, "intake")
    mark = chain.mark()
    assert mark == (1, first.entry_hash)
    chain.append(T0, "discarded")
    chain.append(T0, "discarded")
    chain.reset(mark)
    assert chain.mark() == mark
    second = chain.append(T0 + timedelta(seconds=1), "intake")
    assert second.idx == 1
    assert second.previous_hash == first.entry_hash
    assert verify_chain([first, second]) is None


def test_chain_resumes_from_a_stored_head() -> None:
    entries = build(4)
    resumed = LogChain(entries[-1].idx + 1, entries[-1].entry_hash)
    nxt = resumed.append(T0 + timedelta(hours=1), "intake")
    assert verify_chain([*entries, nxt]) is None
