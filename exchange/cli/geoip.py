"""``ihx geoip build``: a small country (or ASN) database from a few networks, to try ihx out.

A node needs a country database to trace anything, and the real ones (MaxMind GeoLite2, DB-IP,
ip-location-db; README "GeoIP data") need an account or a download. The README's tour and a first
test network need only a handful of known answers, so this writes them with the same builder the
demo and the test suite use (``routing.geoip_build``): a MaxMind-layout ``.mmdb`` that every
command reads like a real one. Never meant to stand in for a real database in production.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from exchange.cli.common import CliError, out
from routing.geoip_build import build_asn_db, build_country_db


def register(app: typer.Typer) -> None:
    geoip = typer.Typer(help="Small GeoIP databases for trying ihx out.", no_args_is_help=True)
    app.add_typer(geoip, name="geoip")
    geoip.command("build")(build_command)


def _split(spec: str, *, asn: bool) -> tuple[str, str]:
    network, sep, value = spec.partition("=")
    if not sep or not network.strip() or not value.strip():
        what = "ASN:ORGANIZATION" if asn else "CC"
        raise CliError(f"{spec[:60]!r} is not CIDR={what} (e.g. 185.107.56.0/24=NL)")
    return network.strip(), value.strip()


def _asn_value(spec: str, value: str) -> tuple[int, str]:
    number, _, organization = value.partition(":")
    if not number.isdigit():
        raise CliError(f"{spec[:60]!r}: the AS number must be digits (e.g. 64500:Example Hosting)")
    return int(number), organization.strip() or f"AS{number}"


def build_command(
    out_file: Annotated[Path, typer.Argument(metavar="OUT", help="The database to write (.mmdb).")],
    networks: Annotated[
        list[str],
        typer.Argument(
            metavar="CIDR=CC…",
            help="Networks and their countries, e.g. 185.107.56.0/24=NL 2a01:4f8::/32=DE "
            "(with --asn: CIDR=ASN:ORGANIZATION).",
        ),
    ],
    asn: Annotated[bool, typer.Option("--asn", help="Write an ASN database instead.")] = False,
) -> None:
    """Write a MaxMind-layout database answering only for the given networks."""
    if out_file.exists():
        raise CliError(f"{out_file}: exists; refusing to overwrite a database")
    pairs = [(spec, *_split(spec, asn=asn)) for spec in networks]
    try:
        if asn:
            build_asn_db(out_file, {n: _asn_value(spec, v) for spec, n, v in pairs})
        else:
            build_country_db(out_file, {n: v for _, n, v in pairs})
    except ValueError as error:
        raise CliError(str(error)) from None
    kind = "ASN" if asn else "country"
    out().print(f"wrote {out_file}: {kind} database with {len(pairs)} networks (for trials only)")
