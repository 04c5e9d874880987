"""Exact Hamming range search over PDQ codes: multi-index hashing on flat numpy arrays.

Why not faiss's ``IndexBinaryMultiHash``: its tables are ``std::unordered_map``s of vectors of
8-byte ids, and every query collects its candidates in an ``unordered_set`` — at 10 M hashes that
is either over 2 GiB (long sub-codes) or ~40,000 candidates a query (16-bit sub-codes), far under
5,000 queries/s (bench/pdq.py measures both). This is the same method (Norouzi, Punjani and
Fleet, *Fast exact search in Hamming space with multi-index hashing*, 2014) laid out flat:

- the 256 bits are cut into 11 sub-codes of 23 bits (253 bits; the last 3 are only verified),
  or, while the index holds fewer than ``LARGE_FROM`` codes, 16 of 16 bits (``Layout``: the
  tables' offsets then take 4 MB, not 369 MB). Pigeonhole (the paper's Proposition 1): if
  two codes are within r = mq + a (m sub-codes, 0 <= a < m), one of the first a+1 sub-codes
  is within q, or one of the others within q-1 — else the distance would be at least r+1.
  For r = 31 and m = 11: ten tables probed at radius 2 (277 keys each), one at radius 1
  (24 keys): 2,794 probes. Every candidate is then verified on all 256 bits, so there is no
  false match and, by the argument, no miss. The probing and verifying loops are compiled
  (``probe``: numba, the GIL released); this module keeps the arrays and their changes.
- each table is a sorted array: the ids ordered by sub-code and ``offsets[v] .. offsets[v+1]``
  the run of sub-code v (2^23 + 1 ``uint32`` offsets, one ``uint32`` id per code): about
  113 bytes a hash with the code itself, 1.1 GiB at 10 M;
- new codes go to a small delta searched by (compiled) brute force and are merged into the
  tables when it holds ``DELTA_CAP`` codes (``np.insert`` per table: a linear copy, no
  re-sort), one table at a time so memory peaks one table (74 MB at 10 M) above the index;
- a withdrawn code is only marked dead (a ``live`` mask): results skip it, and the index is
  rebuilt from the live codes once more than an eighth of it is dead;
- readers never lock: every change publishes a new ``_State`` (the code and mask buffers are
  append-only, the tables replaced whole), writers take one lock among themselves.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

from exchange.pdq.codes import WORDS, Codes, empty
from exchange.pdq.probe import Found, brute, fill, probe

MAX_DISTANCE = 40  # probes grow combinatorially past it (~19,000 at 40); no use for PDQ beyond
DELTA_CAP = 4096  # brute force over the delta costs ~4 µs a query per 1,000 codes
LARGE_FROM = 1 << 19

Ids = npt.NDArray[np.int64]
Table = tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32]]  # (offsets, ids)


@dataclass(frozen=True, slots=True)
class Matches:
    """A batch's matches, ordered by query, then distance, then id: ``query[i]`` (its position
    in the batch) is within ``distance[i]`` of the indexed code ``ids[i]``."""

    query: Ids
    ids: Ids
    distance: npt.NDArray[np.int32]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, slots=True)
class Layout:
    """How the 256 bits are cut: ``substrings`` sub-codes of ``bits`` bits, one table each."""

    substrings: int
    bits: int

    @property
    def buckets(self) -> int:
        return 1 << self.bits

    def probe_radii(self, max_distance: int) -> tuple[int, ...]:
        """The radius each table is probed at for an exact search within ``max_distance``."""
        q, a = divmod(max_distance, self.substrings)
        return tuple(q if t <= a else q - 1 for t in range(self.substrings))


SMALL = Layout(16, 16)
LARGE = Layout(11, 23)


def layout_for(n: int) -> Layout:
    return LARGE if n >= LARGE_FROM else SMALL


@dataclass(frozen=True, slots=True)
class _State:
    codes: Codes  # append-only buffer; rows [0, n) are the index's codes
    live: npt.NDArray[np.bool_]  # same rows; False once withdrawn
    n: int
    main_n: int  # rows [0, main_n) are in the tables, [main_n, n) the delta
    layout: Layout
    tables: tuple[Table, ...]


def sub_codes(codes: Codes, layout: Layout, table: int) -> npt.NDArray[np.uint32]:
    """Sub-code ``table`` (bits ``bits``·table onwards) of each code."""
    word, shift = divmod(layout.bits * table, 64)
    value = codes[:, word] >> np.uint64(shift)
    if shift + layout.bits > 64:
        value |= codes[:, word + 1] << np.uint64(64 - shift)
    return (value & np.uint64(layout.buckets - 1)).astype(np.uint32)


@cache
def flip_masks(bits: int, radius: int) -> npt.NDArray[np.uint32]:
    """Every XOR mask of at most ``radius`` of ``bits`` bits."""
    masks = [0]
    for k in range(1, radius + 1):
        masks.extend(sum(1 << b for b in c) for c in itertools.combinations(range(bits), k))
    return np.array(masks, dtype=np.uint32)


def build_table(codes: Codes, layout: Layout, table: int) -> Table:
    """The sorted table of one sub-code over ``codes`` (ids are row numbers)."""
    sub = sub_codes(codes, layout, table)
    offsets = np.zeros(layout.buckets + 1, dtype=np.uint32)
    np.cumsum(np.bincount(sub, minlength=layout.buckets), out=offsets[1:])
    return offsets, fill(sub, offsets)


def merge_table(table: Table, delta: Codes, first_id: int, layout: Layout, number: int) -> Table:
    """``table`` with the delta's codes (ids from ``first_id``) added, each at its run's end."""
    offsets, ids = table
    sub = sub_codes(delta, layout, number)
    order = np.argsort(sub, kind="stable")
    at = offsets[sub[order].astype(np.int64) + 1].astype(np.int64)
    merged = np.insert(ids, at, (order + first_id).astype(np.uint32))
    grown = offsets.copy()
    grown[1:] += np.cumsum(np.bincount(sub, minlength=layout.buckets)).astype(np.uint32)
    return grown, merged


_NO_MASKS = np.zeros(0, dtype=np.uint32)


def _mix(codes: Codes) -> npt.NDArray[np.uint64]:
    """A 64-bit mix of each code's words: equal codes mix equal (collisions are verified)."""
    mixed = codes[:, 0] ^ (codes[:, 1] * np.uint64(0x9E3779B97F4A7C15))
    mixed ^= codes[:, 2] * np.uint64(0xC2B2AE3D27D4EB4F)
    mixed ^= codes[:, 3] * np.uint64(0x165667B19E3779F9)
    return mixed


def _search_state(state: _State, queries: Codes, max_distance: int) -> Found:
    """Matches in the tables (compiled probes) and in the delta (compiled brute force)."""
    layout = state.layout
    radii = layout.probe_radii(max_distance)
    qsub = np.empty((len(queries), layout.substrings), dtype=np.uint32)
    for t in range(layout.substrings):
        qsub[:, t] = sub_codes(queries, layout, t)
    masks = [flip_masks(layout.bits, r) if r >= 0 else _NO_MASKS for r in radii]
    found = probe(
        state.tables,
        state.codes,
        state.live,
        queries,
        qsub,
        masks,
        radii,
        layout.bits,
        max_distance,
    )
    if state.n == state.main_n:
        return found
    delta = brute(state.codes, state.main_n, state.n, state.live, queries, max_distance)
    query, ids, dist = (np.concatenate([a, b]) for a, b in zip(found, delta, strict=True))
    if len(found[0]) and len(delta[0]):
        # mid-merge a delta code is in the tables merged so far too: one match
        _, first = np.unique(query * max(state.n, 1) + ids, return_index=True)
        query, ids, dist = query[first], ids[first], dist[first]
    return query, ids, dist


class PdqIndex:
    """A set of PDQ codes with exact range search; ids are internal row numbers (``code_of``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = _State(
            empty(), np.zeros(0, dtype=np.bool_), 0, 0, SMALL, _tables(empty(), SMALL)
        )
        self._dead = 0

    @classmethod
    def from_codes(cls, codes: Codes) -> PdqIndex:
        """An index over ``codes`` (duplicates kept once), its tables built in one pass."""
        index = cls()
        unique = _unique_rows(codes)
        index._publish(unique, np.ones(len(unique), dtype=np.bool_), len(unique))
        return index

    @classmethod
    def from_state(
        cls,
        codes: Codes,
        live: npt.NDArray[np.bool_],
        main_n: int,
        layout: Layout,
        tables: Sequence[Table],
    ) -> PdqIndex:
        """An index from its saved parts (``persist.load``, which checked their shapes)."""
        index = cls()
        index._state = _State(codes, live, len(codes), main_n, layout, tuple(tables))
        index._dead = int(len(live) - np.count_nonzero(live))
        return index

    @property
    def state(self) -> _State:
        return self._state

    def __len__(self) -> int:
        """Live codes."""
        return self._state.n - self._dead

    @property
    def dead(self) -> int:
        return self._dead

    def search(self, queries: Codes, max_distance: int) -> Matches:
        """Every live code within ``max_distance`` of each query (one call for a whole batch;
        the GIL is released while it runs, so batches in several threads use several cores)."""
        if not 0 <= max_distance <= MAX_DISTANCE:
            raise ValueError(f"max_distance must be 0..{MAX_DISTANCE}, got {max_distance}")
        queries = np.ascontiguousarray(queries, dtype=np.uint64).reshape(-1, WORDS)
        query, ids, dist = _search_state(self._state, queries, max_distance)
        order = np.lexsort((ids, dist, query))
        return Matches(query[order], ids[order], dist[order].astype(np.int32))

    def code_of(self, ids: Ids) -> Codes:
        return self._state.codes[ids]

    def add(self, codes: Codes) -> int:
        """Add codes not held (a withdrawn one comes back); returns how many became live."""
        with self._lock:
            held = self.search(codes, 0)
            state = self._state
            revived = held.ids[~state.live[held.ids]]
            state.live[revived] = True
            self._dead -= len(revived)
            fresh = np.ones(len(codes), dtype=np.bool_)
            fresh[held.query] = False
            new = _unique_rows(codes[fresh])
            del state, held  # no old state held here while the tables are merged
            if self._append(new):
                self._merge()
            return len(revived) + len(new)

    def remove(self, codes: Codes) -> int:
        """Withdraw codes (those not held are ignored); returns how many were live."""
        with self._lock:
            held = self.search(codes, 0)
            state = self._state
            ids = np.unique(held.ids)
            state.live[ids] = False
            self._dead += len(ids)
            if self._dead * 8 > state.n and state.n >= DELTA_CAP:
                self._compact()
            return len(ids)

    def _append(self, new: Codes) -> bool:
        """Append to the delta; whether it is full (to be merged)."""
        state = self._state
        n = state.n + len(new)
        codes, live = state.codes, state.live
        if n > len(codes):  # grow by an eighth (at least 64k rows): RSS stays near the data
            capacity = max(n, len(codes) + max(len(codes) // 8, 65536))
            spare = capacity - state.n
            codes = np.concatenate([codes[: state.n], np.zeros((spare, WORDS), np.uint64)])
            live = np.concatenate([live[: state.n], np.zeros(spare, np.bool_)])
        codes[state.n : n] = new
        live[state.n : n] = True
        self._state = _State(codes, live, n, state.main_n, state.layout, state.tables)
        return n - state.main_n >= DELTA_CAP

    def _merge(self) -> None:
        """The delta into the tables, one table at a time: each merged table is published at
        once (the delta still searched by brute force until all are; a code found both ways is
        one match), so the old table can go and memory peaks at one table more, not double."""
        codes, live, n, main_n = (
            self._state.codes,
            self._state.live,
            self._state.n,
            self._state.main_n,
        )
        layout = layout_for(n)
        if layout != self._state.layout:  # grown past LARGE_FROM: the longer sub-codes
            self._publish(codes, live, n)
            return
        tables = list(self._state.tables)
        delta = codes[main_n:n]
        for t in range(len(tables)):
            tables[t] = merge_table(tables[t], delta, main_n, layout, t)
            self._state = _State(codes, live, n, main_n, layout, tuple(tables))
        self._state = _State(codes, live, n, n, layout, tuple(tables))

    def _compact(self) -> None:
        state = self._state
        kept = state.codes[: state.n][state.live[: state.n]]
        self._publish(kept.copy(), np.ones(len(kept), dtype=np.bool_), len(kept))
        self._dead = 0

    def _publish(self, codes: Codes, live: npt.NDArray[np.bool_], n: int) -> None:
        layout = layout_for(n)
        self._state = _State(codes, live, n, n, layout, _tables(codes[:n], layout))


def _tables(codes: Codes, layout: Layout) -> tuple[Table, ...]:
    return tuple(build_table(codes, layout, t) for t in range(layout.substrings))


def _unique_rows(codes: Codes) -> Codes:
    """Each distinct code once. Sorted by a 64-bit mix of the words, so equal codes are
    neighbours (``np.unique(axis=0)`` and ``lexsort`` are 6-15 times slower); codes whose mixes
    collide may interleave and keep a duplicate row, which costs a repeated match, never a miss."""
    if len(codes) < 2:
        return np.ascontiguousarray(codes, dtype=np.uint64)
    ordered = codes[np.argsort(_mix(codes))]
    differs = np.ones(len(ordered), dtype=np.bool_)
    differs[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
    return ordered[differs]
