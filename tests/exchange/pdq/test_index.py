"""The PDQ index: exact range search at the threshold's edges, against brute force (faiss's
``IndexBinaryFlat``), incremental adds, withdrawal, the delta merged, the larger layout."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.pdq import index as pdq_index
from exchange.pdq.codes import WORDS, Codes, hex_distance, to_codes, to_hex
from exchange.pdq.index import LARGE, SMALL, PdqIndex, build_table, layout_for, merge_table


def _flip(code: Codes, bits: list[int]) -> Codes:
    out = code.copy()
    for b in bits:
        out[0, b // 64] ^= np.uint64(1) << np.uint64(b % 64)
    return out


def _random(rng: np.random.Generator, n: int) -> Codes:
    return rng.integers(0, 2**64, size=(n, WORDS), dtype=np.uint64)


def _brute(codes: Codes, queries: Codes, radius: int) -> set[tuple[int, int, int]]:
    flat = faiss.IndexBinaryFlat(256)
    flat.add(np.ascontiguousarray(codes).view(np.uint8))
    lims, dist, ids = flat.range_search(np.ascontiguousarray(queries).view(np.uint8), radius + 1)
    return {
        (q, int(ids[j]), int(dist[j]))
        for q in range(len(queries))
        for j in range(lims[q], lims[q + 1])
    }


def _found(index: PdqIndex, queries: Codes, radius: int) -> set[tuple[int, int, int]]:
    m = index.search(queries, radius)
    listed = list(zip(m.query.tolist(), m.ids.tolist(), m.distance.tolist(), strict=True))
    # a code reached through several sub-codes (an exact copy is reached through every one)
    # is one match
    assert len(listed) == len(set(listed)), "a match listed twice"
    return set(listed)


@pytest.mark.parametrize(("distance", "found"), [(30, True), (31, True), (32, False)])
def test_threshold_is_inclusive_at_31(distance: int, found: bool) -> None:
    rng = np.random.default_rng(distance)
    stored = _random(rng, 200)
    index = PdqIndex.from_codes(stored)
    # the spread bits cross every sub-code boundary
    query = _flip(stored[7:8], list(range(0, 256, 8))[:distance] if distance <= 32 else [])
    m = index.search(query, 31)
    hits = {int(i) for i in m.ids}
    target = int(np.flatnonzero((index.state.codes[: index.state.n] == stored[7]).all(axis=1))[0])
    assert (target in hits) is found
    if found:
        assert int(m.distance[list(m.ids).index(target)]) == distance


def test_hex_round_trip_and_distance() -> None:
    a = "f" * 64
    b = "0" + "f" * 63
    assert to_hex(to_codes([a, b])) == [a, b]
    assert hex_distance(a, b) == 4


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    radius=st.integers(0, 40),
    flips=st.lists(st.integers(0, 40), min_size=1, max_size=12),
)
def test_agrees_with_brute_force(seed: int, radius: int, flips: list[int]) -> None:
    rng = np.random.default_rng(seed)
    stored = _random(rng, 300)
    queries = np.concatenate(
        [
            _flip(stored[i : i + 1], rng.choice(256, size=d, replace=False).tolist())
            for i, d in enumerate(flips)
        ]
    )
    index = PdqIndex.from_codes(stored)
    assert _found(index, queries, radius) == _brute(
        index.state.codes[: index.state.n], queries, radius
    )


def test_incremental_adds_merge_and_stay_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdq_index, "DELTA_CAP", 64)
    rng = np.random.default_rng(3)
    index = PdqIndex()
    batches = [_random(rng, 50) for _ in range(5)]
    for b in batches:
        assert index.add(b) == 50
    assert index.add(batches[0]) == 0  # held already: a set, not a bag
    state = index.state
    assert state.n == 250
    assert 0 < state.main_n <= 250
    queries = np.concatenate([_flip(b[:3], [1, 70, 140, 200]) for b in batches])
    assert _found(index, queries, 31) == _brute(state.codes[: state.n], queries, 31)
    assert len(_found(index, queries, 31)) == 15


def test_mid_merge_a_code_in_the_delta_and_in_merged_tables_is_one_match() -> None:
    """A reader may search while the delta is merged table by table: the first tables then
    hold the delta's codes too, which the delta's brute force also finds."""
    rng = np.random.default_rng(5)
    indexed, delta = _random(rng, 100), _random(rng, 40)
    tables = [build_table(indexed, SMALL, t) for t in range(SMALL.substrings)]
    for t in range(6):  # six of sixteen tables merged so far
        tables[t] = merge_table(tables[t], delta, 100, SMALL, t)
    codes = np.concatenate([indexed, delta])
    index = PdqIndex.from_state(codes, np.ones(140, dtype=np.bool_), 100, SMALL, tables)
    queries = np.concatenate([delta[:10], _flip(delta[10:20], [3, 90, 170]), indexed[:5]])
    assert _found(index, queries, 31) == _brute(codes, queries, 31)
    assert len(_found(index, queries, 31)) == 25


def test_withdrawn_codes_are_never_matched_and_come_back_when_added() -> None:
    rng = np.random.default_rng(4)
    stored = _random(rng, 100)
    index = PdqIndex.from_codes(stored)
    assert index.remove(stored[:10]) == 10
    assert index.remove(stored[:10]) == 0
    assert len(index) == 90
    assert len(index.search(_flip(stored[:10], [5]), 31)) == 0
    assert len(index.search(stored[10:20], 31)) == 10
    assert index.add(stored[:1]) == 1
    assert len(index.search(stored[:1], 0)) == 1


def test_many_withdrawals_compact_the_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdq_index, "DELTA_CAP", 16)
    rng = np.random.default_rng(5)
    stored = _random(rng, 160)
    index = PdqIndex.from_codes(stored)
    index.remove(stored[:30])  # over an eighth dead: rebuilt from the live codes
    assert index.dead == 0
    assert index.state.n == 130
    assert _found(index, stored[25:35], 0) == _brute(index.state.codes[:130], stored[25:35], 0)
    assert len(_found(index, stored[25:35], 0)) == 5


def test_large_layout_is_exact_and_chosen_by_size(monkeypatch: pytest.MonkeyPatch) -> None:
    assert layout_for(10) == SMALL
    assert layout_for(pdq_index.LARGE_FROM) == LARGE
    monkeypatch.setattr(pdq_index, "LARGE_FROM", 100)
    rng = np.random.default_rng(6)
    stored = _random(rng, 400)
    index = PdqIndex.from_codes(stored)
    assert index.state.layout == LARGE
    queries = np.concatenate([_flip(stored[i : i + 1], list(range(i, 256, 9))) for i in range(20)])
    assert _found(index, queries, 31) == _brute(index.state.codes[:400], queries, 31)


def test_distance_past_the_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="max_distance"):
        PdqIndex().search(np.zeros((1, WORDS), np.uint64), 41)
