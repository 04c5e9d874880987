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


# -- PostgreSQL ----------------------------------------------------------------------------------

# The server the PostgreSQL figures use (trust auth on 127.0.0.1, as in CI); the URL's database
# is only used to CREATE and DROP the fresh databases of each run.
POSTGRESQL_ADMIN_URL = os.environ.get(
    "IHX_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


class PostgresDatabases:
    """Fresh, empty PostgreSQL databases for one run (``new()``); ``close()`` drops them all."""

    def __init__(self, admin_url: str = POSTGRESQL_ADMIN_URL) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        self._admin_url = admin_url
        self._engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        self._names: list[str] = []

    def new(self, _label: str = "") -> str:
        import secrets

        from sqlalchemy import text
        from sqlalchemy.engine import make_url

        name = "ihx_bench_" + secrets.token_hex(6)
        with self._engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self._names.append(name)
        return make_url(self._admin_url).set(database=name).render_as_string(hide_password=False)

    def close(self) -> None:
        from sqlalchemy import text

        with self._engine.connect() as conn:
            for name in self._names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._names.clear()
        self._engine.dispose()
