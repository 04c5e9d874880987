"""Helpers shared by the benchmark scripts: argument parsing, GeoIP discovery, output."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED_GEO = ROOT.parent / "shared" / "geoip"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="finish within 60 s")
    return p


def real_geoip() -> tuple[Path | None, Path | None]:
    country = os.environ.get("IHX_GEOIP_COUNTRY_DB")
    asn = os.environ.get("IHX_GEOIP_ASN_DB")
    if country:
        return Path(country), Path(asn) if asn else None
    if (SHARED_GEO / "country-geolite2-layout.mmdb").exists():
        return SHARED_GEO / "country-geolite2-layout.mmdb", SHARED_GEO / "asn-geolite2-layout.mmdb"
    return None, None


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def emit(result: dict[str, Any]) -> None:
    sys.stdout.flush()
    print(json.dumps(result, sort_keys=True))
