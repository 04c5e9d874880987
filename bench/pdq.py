"""PDQ near-duplicate index: build, memory, queries/s, latency, recall against brute force.

    .venv/bin/python bench/pdq.py            # 10,000,000 hashes (goals of issue 17)
    .venv/bin/python bench/pdq.py --quick    # 1,000,000 hashes, under a minute

Hashes are random but clustered: most are uniform, a fifth come in families of ten around a
centre (about 16 or 32 bits from it). Each of the 10,000 queries is an indexed hash with a
known number of bits flipped, 0 to 40 (a planted near-duplicate). Brute force is faiss's
``IndexBinaryFlat.range_search`` over the same codes; every distance the index returns is
checked again: none may be wrong or beyond the radius (``--quick`` checks recall on 1,000
queries, the full run on all 10,000). ``--faiss-mih`` also measures faiss's
own ``IndexBinaryMultiHash`` on the same data. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

from exchange.pdq import probe
from exchange.pdq.codes import WORDS, Codes
from exchange.pdq.index import PdqIndex
from exchange.pdq.persist import load, save

RADIUS = 31


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def load_avg() -> str:
    """The machine's load (1-minute average): a shared machine's wall-clock figures fall with it."""
    return f"[load {os.getloadavg()[0]:.1f}]"


def clustered(n: int, rng: np.random.Generator) -> Codes:
    codes = rng.integers(0, 2**64, size=(n, WORDS), dtype=np.uint64)
    families = n // 50  # a fifth of the hashes: families of ten around a centre
    centres = rng.integers(0, 2**64, size=(families, WORDS), dtype=np.uint64)
    rows = rng.choice(n, size=families * 10, replace=False)
    noise = rng.integers(0, 2**64, size=(families * 10, WORDS), dtype=np.uint64)
    for _ in range(3):  # density 1/8 (about 32 bits), then half of them 1/16 (about 16)
        noise &= rng.integers(0, 2**64, size=noise.shape, dtype=np.uint64)
    half = len(noise) // 2
    noise[:half] &= rng.integers(0, 2**64, size=(half, WORDS), dtype=np.uint64)
    codes[rows] = np.repeat(centres, 10, axis=0) ^ noise
    return codes


def planted(codes: Codes, count: int, rng: np.random.Generator) -> tuple[Codes, np.ndarray]:
    """Queries at known distances 0..40 from indexed hashes."""
    src = rng.choice(len(codes), size=count, replace=False)
    dist = rng.integers(0, 41, size=count)
    bits = np.zeros((count, 256), dtype=np.uint8)
    for i, d in enumerate(dist):
        bits[i, rng.choice(256, size=d, replace=False)] = 1
    masks = np.packbits(bits, axis=1, bitorder="little").view("<u8").astype(np.uint64)
    return codes[src] ^ masks, dist


def brute(codes: Codes, queries: Codes) -> list[set[int]]:
    flat = faiss.IndexBinaryFlat(256)
    flat.add(np.ascontiguousarray(codes).view(np.uint8))
    # faiss keeps distances strictly below the radius
    lims, _, ids = flat.range_search(np.ascontiguousarray(queries).view(np.uint8), RADIUS + 1)
    return [set(ids[lims[i] : lims[i + 1]].tolist()) for i in range(len(queries))]


def recall(index: PdqIndex, queries: Codes) -> None:
    n = index.state.n
    found = index.search(queries, RADIUS)
    t0 = time.perf_counter()
    truth = brute(index.state.codes[:n], queries)
    print(
        f"brute force (faiss IndexBinaryFlat, {len(queries):,} queries): "
        f"{time.perf_counter() - t0:.1f} s"
    )
    ours: list[set[int]] = [set() for _ in queries]
    for q, i in zip(found.query.tolist(), found.ids.tolist(), strict=True):
        ours[q].add(i)
    pairs = sum(len(t) for t in truth)
    hit = sum(len(t & o) for t, o in zip(truth, ours, strict=True))
    extra = sum(len(o - t) for t, o in zip(truth, ours, strict=True))
    check = np.bitwise_count(index.state.codes[found.ids] ^ queries[found.query]).sum(axis=1)
    wrong = int(np.count_nonzero(check != found.distance) + np.count_nonzero(check > RADIUS))
    print(
        f"recall at <= {RADIUS}: {hit:,}/{pairs:,} pairs = {100 * hit / max(pairs, 1):.3f} %; "
        f"matches not in brute force: {extra}; distances wrong or beyond {RADIUS}: {wrong}"
    )


def throughput(index: PdqIndex, queries: Codes, threads: int) -> float:
    parts = np.array_split(queries, threads)
    workers = [threading.Thread(target=index.search, args=(p, RADIUS)) for p in parts]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return len(queries) / (time.perf_counter() - t0)


def latency(search: Callable[[Codes], object], queries: Codes) -> tuple[float, float]:
    times = []
    for i in range(len(queries)):
        t0 = time.perf_counter()
        search(queries[i : i + 1])
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def cpu_rate(index: PdqIndex, queries: Codes) -> float:
    """Queries per second of this thread's CPU time: what one core does, whatever the load of
    a shared machine (wall-clock figures above fall with it)."""
    t0 = time.thread_time()
    index.search(queries, RADIUS)
    return len(queries) / (time.thread_time() - t0)


def speed(index: PdqIndex, queries: Codes) -> None:
    print(f"queries/s per CPU-second of one core: {cpu_rate(index, queries):,.0f} {load_avg()}")
    print(
        f"queries/s, batch of {len(queries):,}: one core {throughput(index, queries, 1):,.0f}, "
        f"two threads {throughput(index, queries, 2):,.0f} {load_avg()}"
    )
    p50, p99 = latency(lambda q: index.search(q, RADIUS), queries[:2000])
    print(f"one query at a time (2,000): p50 {p50:.2f} ms, p99 {p99:.2f} ms {load_avg()}")


def faiss_mih(codes: Codes, queries: Codes) -> None:
    faiss.omp_set_num_threads(1)
    mih = faiss.IndexBinaryMultiHash(256, 16, 16)
    mih.nflip = 1  # 16 sub-codes of 16 bits: within 31, one sub-code is within 1 bit
    before = rss_mib()
    t0 = time.perf_counter()
    mih.add(np.ascontiguousarray(codes).view(np.uint8))
    print(
        f"faiss IndexBinaryMultiHash(16 x 16 bits, nflip 1): build "
        f"{time.perf_counter() - t0:.1f} s, +{rss_mib() - before:,.0f} MiB"
    )
    sample = np.ascontiguousarray(queries[:2000]).view(np.uint8)
    t0 = time.perf_counter()
    mih.range_search(sample, RADIUS + 1)
    print(f"  one core: {len(sample) / (time.perf_counter() - t0):,.0f} queries/s")
    del mih


def save_load(index: PdqIndex) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pdq.npz"
        t0 = time.perf_counter()
        save(index, path, stamp=1)
        saved = time.perf_counter() - t0
        t0 = time.perf_counter()
        loaded, _ = load(path)
        print(
            f"file: {path.stat().st_size / 2**20:,.0f} MiB, saved in {saved:.1f} s, loaded and "
            f"checked in {time.perf_counter() - t0:.1f} s ({len(loaded):,} hashes)"
        )
        del loaded


def adds(index: PdqIndex, count: int, rng: np.random.Generator) -> None:
    before = rss_mib()
    t0 = time.perf_counter()
    for _ in range(count // 1000):
        index.add(rng.integers(0, 2**64, size=(1000, WORDS), dtype=np.uint64))
    grown = rss_mib() - before
    print(
        f"{count:,} incremental adds in batches of 1,000: {time.perf_counter() - t0:.1f} s, "
        f"RSS +{grown:,.0f} MiB ({grown * 2**20 / count:,.0f} bytes a hash), now "
        f"{rss_mib():,.0f} MiB for {len(index):,} hashes"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1,000,000 hashes")
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--adds", type=int, default=1_000_000)
    ap.add_argument("--recall-queries", type=int, default=10_000)
    ap.add_argument("--faiss-mih", action="store_true", help="also measure faiss's MultiHash")
    args = ap.parse_args()
    n = 1_000_000 if args.quick else args.n
    adds_n = 50_000 if args.quick else args.adds
    rng = np.random.default_rng(17)
    print(f"PDQ index bench: {n:,} clustered hashes, radius {RADIUS}, RSS {rss_mib():,.0f} MiB")
    t0 = time.perf_counter()
    probe.warm()
    print(
        f"compiled search ready: {time.perf_counter() - t0:.1f} s (seconds on a first run, "
        f"a cache load after) {load_avg()}"
    )
    t0 = time.perf_counter()
    codes = clustered(n, rng)
    queries, _ = planted(codes, args.queries, rng)
    print(f"generated: {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    index = PdqIndex.from_codes(codes)
    del codes
    print(
        f"built: {time.perf_counter() - t0:.1f} s, {len(index):,} hashes, "
        f"layout {index.state.layout}, RSS {rss_mib():,.0f} MiB {load_avg()}"
    )
    save_load(index)
    speed(index, queries)
    recall_n = 1000 if args.quick else args.recall_queries
    if recall_n:  # 0: speed alone (brute force at 10 M takes minutes)
        recall(index, queries[:recall_n])
    if args.faiss_mih:
        faiss_mih(index.state.codes[: index.state.n], queries)
    if adds_n:
        adds(index, adds_n, rng)
        speed(index, queries)


if __name__ == "__main__":
    main()
