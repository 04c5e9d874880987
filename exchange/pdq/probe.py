"""The index's inner loops, compiled (numba): probing the tables, verifying candidates, building.

numpy probed a batch's tables in one pass, but each candidate then went through a dozen
whole-array steps (repeat, gather, xor, popcount, mask, unique); at 10 M hashes a query meets
~3,300 candidates besides its 2,794 probes, and those passes bound it (3,950 queries per
CPU-second at 1 M). Here, per query, one loop reads every probe key's run (``_runs``), one
touches and copies the runs' ids (``_gather``), one touches the candidates' codes (``_touch``)
and one verifies them on all 256 bits (``_verify``): each a loop of independent reads, so the
cache misses that now bound a query (~7,000 at 10 M) overlap. A code reached through several
sub-codes is kept once without a set: a match from table ``t`` is dropped when an earlier
table reaches it too (its sub-code there within that table's radius). Building places each
id by counting sort (``_fill``), not a stable argsort: 10 M hashes in ~15 s, not 200.

The functions release the GIL (``nogil``), so a batch split across threads uses both cores.
They are compiled on first use into numba's cache (``cache=True``: beside this file, else the
user's cache folder, else ``NUMBA_CACHE_DIR`` — the image sets it under /tmp; with none
writable, compiled in each process); nothing is downloaded. A first compile takes ~8-19 s
(load-dependent), a cache load ~0.4 s; ``warm`` does it before the first query (the
matcher's ``open``, at node start).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import numba
import numpy as np
import numpy.typing as npt

from exchange.pdq.codes import Codes

Ids = npt.NDArray[np.int64]

_OPTIONS: dict[str, Any] = {"nogil": True, "boundscheck": False, "error_model": "numpy"}


def _jit(function: Callable[..., Any]) -> Any:
    """Compiled on first use and cached; without a writable cache folder (a read-only image
    whose ``NUMBA_CACHE_DIR`` is not set) compiled in each process instead of failing."""
    try:
        return numba.njit(cache=True, **_OPTIONS)(function)
    except RuntimeError:  # numba: "cannot cache function …: no locator available"
        return numba.njit(**_OPTIONS)(function)


@_jit
def _popcount(x: Any) -> Any:
    # the SWAR count; LLVM turns it into one popcnt where the CPU has it
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@_jit
def _distance(codes: Any, row: Any, q: Any) -> Any:
    return np.int64(
        _popcount(codes[row, 0] ^ q[0])
        + _popcount(codes[row, 1] ^ q[1])
        + _popcount(codes[row, 2] ^ q[2])
        + _popcount(codes[row, 3] ^ q[3])
    )


@_jit
def _sub_code(codes: Any, row: Any, bits: Any, table: Any) -> Any:
    start = bits * table
    word = start // 64
    shift = np.uint64(start % 64)
    value = codes[row, word] >> shift
    if start % 64 + bits > 64:
        value |= codes[row, word + 1] << (np.uint64(64) - shift)
    return value & np.uint64((1 << bits) - 1)


@_jit
def _grow(out: Any, used: Any) -> Any:
    bigger = np.empty((out.shape[0], max(16, used * 2)), dtype=np.int64)
    bigger[:, :used] = out[:, :used]
    return bigger


@_jit
def _runs(offsets: Any, qsub: Any, masks: Any, mask_ends: Any, starts: Any, ends: Any) -> Any:
    """Every probe key's run, in a loop of its own: its loads wait neither on each other nor on
    a branch, so the CPU keeps many of these (mostly cache-missing) reads in flight."""
    total = 0
    for t in range(len(offsets)):
        table = offsets[t]
        sub = qsub[t]
        for m in range(mask_ends[t - 1] if t > 0 else 0, mask_ends[t]):
            key = sub ^ masks[m]
            starts[m] = table[key]
            ends[m] = table[key + 1]
            total += ends[m] - starts[m]
    return total


@_jit
def _gather(ids: Any, mask_ends: Any, starts: Any, ends: Any, found: Any, found_ends: Any) -> Any:
    """The runs' ids, and where each table's end in ``found``. A first loop only touches each
    run (no branch, so many misses in flight); the copying loop, whose branches mispredict,
    then finds them in cache."""
    touched = np.uint32(0)
    for t in range(len(ids)):
        table = ids[t]
        last = table.shape[0] - 1
        for m in range(mask_ends[t - 1] if t > 0 else 0, mask_ends[t]):
            touched ^= table[min(starts[m], last)] if last >= 0 else np.uint32(0)
    at = 0
    for t in range(len(ids)):
        table = ids[t]
        for m in range(mask_ends[t - 1] if t > 0 else 0, mask_ends[t]):
            for j in range(starts[m], ends[m]):
                found[at] = table[j]
                at += 1
        found_ends[t] = at
    return touched


@_jit
def _touch(codes: Any, found: Any, count: Any) -> Any:
    """Read each candidate's code once before any is verified: see ``_gather``."""
    touched = np.uint64(0)
    for c in range(count):
        touched ^= codes[found[c], 0]
    return touched


@_jit
def _found_before(codes: Any, row: Any, qsub: Any, radii: Any, bits: Any, table: Any) -> Any:
    """Whether a table before ``table`` reaches ``row`` (so it was kept there)."""
    for u in range(table):
        near = _popcount(_sub_code(codes, row, bits, u) ^ np.uint64(qsub[u]))
        if np.int64(near) <= radii[u]:
            return True
    return False


@_jit
def _verify(
    codes: Any,
    live: Any,
    query: Any,
    qsub: Any,
    found: Any,
    found_ends: Any,
    radii: Any,
    bits: Any,
    max_distance: Any,
    q: Any,
    out: Any,
    used: Any,
) -> Any:
    """Append the candidates within ``max_distance`` to ``out``, each code once."""
    for t in range(found_ends.shape[0]):
        for c in range(found_ends[t - 1] if t > 0 else 0, found_ends[t]):
            row = found[c]
            d = _distance(codes, row, query)
            if d > max_distance or not live[row]:
                continue
            if _found_before(codes, row, qsub, radii, bits, t):
                continue
            if used == out.shape[1]:
                out = _grow(out, used)
            out[0, used] = q
            out[1, used] = row
            out[2, used] = d
            used += 1
    return out, used


@_jit
def _search(
    offsets: Any,
    ids: Any,
    codes: Any,
    live: Any,
    queries: Any,
    qsub: Any,
    masks: Any,
    mask_ends: Any,
    radii: Any,
    bits: Any,
    max_distance: Any,
) -> Any:
    """(query, id, distance) rows of every live code within ``max_distance`` found through
    the tables, each once; ``masks[mask_ends[t-1]:mask_ends[t]]`` are table ``t``'s flips,
    every one of at most ``radii[t]`` bits. Per query: the runs, then their ids, then the
    candidates' codes, each a loop of independent reads over all tables."""
    out = np.empty((3, 64), dtype=np.int64)
    used = 0
    keys = max(1, masks.shape[0])
    starts = np.empty(keys, dtype=np.int64)
    ends = np.empty(keys, dtype=np.int64)
    found = np.empty(8192, dtype=np.int64)
    found_ends = np.empty(len(offsets), dtype=np.int64)
    touched = np.uint64(0)
    for q in range(queries.shape[0]):
        total = _runs(offsets, qsub[q], masks, mask_ends, starts, ends)
        if total > found.shape[0]:
            found = np.empty(total * 2, dtype=np.int64)
        touched ^= np.uint64(_gather(ids, mask_ends, starts, ends, found, found_ends))
        touched ^= _touch(codes, found, total)
        out, used = _verify(
            codes,
            live,
            queries[q],
            qsub[q],
            found,
            found_ends,
            radii,
            bits,
            max_distance,
            q,
            out,
            used,
        )
    return out[:, :used], touched  # the touches returned, so the compiler keeps them


@_jit
def _brute(codes: Any, first: Any, last: Any, live: Any, queries: Any, max_distance: Any) -> Any:
    """(query, id, distance) rows of live codes ``first..last`` within ``max_distance``."""
    out = np.empty((3, 64), dtype=np.int64)
    used = 0
    for q in range(queries.shape[0]):
        query = queries[q]
        for row in range(first, last):
            d = _distance(codes, row, query)
            if d <= max_distance and live[row]:
                if used == out.shape[1]:
                    out = _grow(out, used)
                out[0, used] = q
                out[1, used] = row
                out[2, used] = d
                used += 1
    return out[:, :used]


@_jit
def _fill(sub: Any, offsets: Any) -> Any:
    """Ids placed by sub-code (a counting sort: ascending ids within each run)."""
    at = offsets[:-1].copy()
    ids = np.empty(sub.shape[0], dtype=np.uint32)
    for i in range(sub.shape[0]):
        v = sub[i]
        ids[at[v]] = i
        at[v] += 1
    return ids


Found = tuple[Ids, Ids, Ids]


def probe(
    tables: Sequence[tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32]]],
    codes: Codes,
    live: npt.NDArray[np.bool_],
    queries: Codes,
    qsub: npt.NDArray[np.uint32],
    masks: Sequence[npt.NDArray[np.uint32]],
    radii: Sequence[int],
    bits: int,
    max_distance: int,
) -> Found:
    """Matches through the tables probed with ``masks[t]`` (``radii[t]`` bits at most, -1
    for a table not probed, whose masks are empty): each (query, id) once."""
    offsets = tuple(t[0] for t in tables)
    ids = tuple(t[1] for t in tables)
    ends = np.cumsum([len(m) for m in masks]).astype(np.int64)
    flat = np.concatenate(masks) if masks else np.zeros(0, np.uint32)
    found, _ = _search(
        offsets,
        ids,
        codes,
        live,
        queries,
        qsub,
        flat,
        ends,
        np.array(radii, dtype=np.int64),
        np.int64(bits),
        np.int64(max_distance),
    )
    return cast(Found, (found[0], found[1], found[2]))


def brute(
    codes: Codes, first: int, last: int, live: npt.NDArray[np.bool_], queries: Codes, r: int
) -> Found:
    found = _brute(codes, np.int64(first), np.int64(last), live, queries, np.int64(r))
    return cast(Found, (found[0], found[1], found[2]))


def fill(sub: npt.NDArray[np.uint32], offsets: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    return cast(npt.NDArray[np.uint32], _fill(sub, offsets))


def warm() -> None:
    """Compile (or load from the cache) every kernel for both layouts' table counts, so the
    first query does not pay for it (a first compile takes seconds; a cached load ~0.2 s)."""
    codes = np.zeros((1, 4), dtype=np.uint64)
    live = np.ones(1, dtype=np.bool_)
    for count in (11, 16):
        empty = np.zeros(0, dtype=np.uint32)
        tables = [(np.zeros(2, dtype=np.uint32), empty) for _ in range(count)]
        masks = [np.zeros(1, dtype=np.uint32)] * count
        qsub = np.zeros((1, count), dtype=np.uint32)
        probe(tables, codes, live, codes, qsub, masks, [0] * count, 1, 0)
    brute(codes, 0, 1, live, codes, 0)
    fill(np.zeros(1, dtype=np.uint32), np.array([0, 1], dtype=np.uint32))
