"""Canonicalisations/s and full traces/s in one process.

100,000 varied URLs (20,000 with --quick): hosts drawn from a pool mapped by a static resolver to
public addresses, with the variety real reports have — upper-case hosts, default ports, dot
segments, fragments, userinfo, percent-encoding, IDN hosts, IPv4/IPv6 literals. A full trace is
canonicalise + resolve + every address through the country and ASN databases + the routing
decision. Uses the real GeoIP databases when available (see bench/README.md).
"""

from __future__ import annotations

import ipaddress
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import bench_common as common

from auth.manifest import Manifest
from routing.addresses import view
from routing.canonical import canonicalize
from routing.decision import Decider
from routing.geoip import GeoIp
from routing.geoip_build import build_asn_db, build_country_db
from routing.resolver import StaticResolver
from routing.trace import Tracer

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def public_ipv4(rng: random.Random) -> str:
    while True:
        a = str(ipaddress.IPv4Address(rng.getrandbits(32)))
        if view(a).special is None:
            return a


def make_urls(n: int, rng: random.Random) -> tuple[list[str], dict[str, list[str]]]:
    tlds = ["nl", "de", "com", "ru", "ro", "co.uk", "net", "org", "io", "fr"]
    hosts = [f"host{i}.example.{rng.choice(tlds)}" for i in range(5000)]
    hosts += ["bücher.example.de", "faß.example.de", "пример.example.ru", "例え.example.jp"]
    table: dict[str, list[str]] = {}
    for h in hosts:
        table[canonicalize(f"http://{h}/").host] = [
            public_ipv4(rng) for _ in range(rng.choice((1, 1, 1, 2, 4)))
        ]
    urls = []
    for i in range(n):
        h = rng.choice(hosts)
        path = "/".join(f"p{rng.randrange(1000)}" for _ in range(rng.randrange(1, 5)))
        kind = rng.random()
        if kind < 0.70:
            url = f"https://{h}/{path}/img{i}.jpg?id={i}"
        elif kind < 0.78:
            url = f"HTTP://{h.upper()}:80/{path}/../x{i}.png#frag"
        elif kind < 0.84:
            url = f"https://user:pw@{h}:443/{path}/%7e{i}"
        elif kind < 0.90:
            url = f"  http://{h}/{path}/a b/{i}\t"
        elif kind < 0.95:
            url = f"http://{public_ipv4(rng)}/{path}/{i}"
        else:
            url = f"ftp://{h}/{path}/archive{i}.zip"
        urls.append(url)
    return urls, table


def manifest() -> Manifest:
    countries = ("NL", "DE", "US", "GB", "FR", "RO", "RU", "JP")
    return common.bench_manifest(
        [(f"{cc.lower()}-hotline", cc) for cc in countries], "nl-hotline", NOW
    )


def main() -> None:
    args = common.parser(__doc__ or "").parse_args()
    n = 20_000 if args.quick else 100_000
    rng = random.Random(7)
    country_db, asn_db = common.real_geoip()
    source = "real"
    if country_db is None:
        source = "built (small)"
        tmp = Path(tempfile.mkdtemp())
        country_db = build_country_db(tmp / "c.mmdb", {"0.0.0.0/1": "US", "128.0.0.0/1": "NL"})
        asn_db = build_asn_db(tmp / "a.mmdb", {"0.0.0.0/0": (64500, "Example")})
    print(f"GeoIP databases: {source}: {country_db}, {asn_db}")
    urls, table = make_urls(n, rng)
    m = manifest()

    rounds = 3

    def canonicalisation_rate(sample: list[str]) -> float:
        best = 0.0
        for _ in range(rounds):
            t = time.perf_counter()
            for u in sample:
                canonicalize(u)
            best = max(best, len(sample) / (time.perf_counter() - t))
        return best

    best_canon = canonicalisation_rate(urls)
    # Ordinary reports: the https share of the mix (already-canonical form, no tricks).
    ordinary = [u for u in urls if u.startswith("https://host") and "@" not in u]
    best_ordinary = canonicalisation_rate(ordinary)
    print(f"canonicalisations/s: {best_canon:,.0f}  ({n:,} varied URLs, 30% hostile forms)")
    print(f"canonicalisations/s: {best_ordinary:,.0f}  ({len(ordinary):,} ordinary URLs of them)")

    best_trace = 0.0
    with GeoIp(country_db, asn_db) as geoip:
        for _ in range(rounds):
            # A fresh tracer per round: its per-address cache starts cold every time.
            tracer = Tracer(StaticResolver(table), geoip, lambda: NOW)
            decider = Decider("nl-hotline")
            t = time.perf_counter()
            for u in urls:
                trace = tracer.trace(canonicalize(u))
                decider.decide(trace.country, m, untraceable_reason=trace.untraceable_reason)
            best_trace = max(best_trace, n / (time.perf_counter() - t))
    print(f"full traces/s (canonicalise + resolve + GeoIP + decide): {best_trace:,.0f}")
    common.emit(
        {
            "bench": "trace",
            "urls": n,
            "geoip": source,
            "canonicalisations_per_s": round(best_canon),
            "canonicalisations_per_s_ordinary": round(best_ordinary),
            "traces_per_s": round(best_trace),
            "goal_canonicalisations_per_s": 200_000,
            "goal_traces_per_s": 50_000,
        }
    )


if __name__ == "__main__":
    main()
