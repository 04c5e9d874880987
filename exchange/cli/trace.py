"""``ihx trace URL``: canonicalise, resolve and geolocate one URL, and show who is responsible.

This is the routing part on its own, without a node: it uses the same ``canonicalize``,
``Tracer`` and ``decide`` as intake, so what it prints is what a node would decide. The
resolver is static when ``--resolve`` is given (reproducible, no network), DNS otherwise.
``--manifest`` takes a plain manifest or a signed manifest file; a signed one is read without
checking its signature (trace has no trust anchors), and the output says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from auth.errors import ManifestError
from auth.manifest import Manifest, load_manifest, parse_manifest, parse_signed_manifest
from common.clock import system_clock
from exchange.cli.common import CliError, aligned, format_time, out, print_json
from routing.canonical import canonicalize
from routing.decision import Decision, decide
from routing.geoip import GeoDatabaseInfo, GeoIp
from routing.resolver import DnsResolver, Resolver, StaticResolver
from routing.trace import Trace, TracedAddress, Tracer


def register(app: typer.Typer) -> None:
    app.command("trace")(trace_command)


def load_any_manifest(path: Path) -> tuple[Manifest, bool]:
    """The manifest in ``path`` and whether it came from a signed file (signature unchecked)."""
    if path.suffix.lower() == ".json":
        try:
            data = path.read_bytes()
            document = json.loads(data)
        except (OSError, ValueError):
            document = None  # load_manifest below reports the problem with its usual message
        if isinstance(document, dict) and "signatures" in document:
            try:
                return parse_manifest(parse_signed_manifest(data).document), True
            except ManifestError as error:
                raise ManifestError(f"{path}: {error.message}") from None
    return load_manifest(path), False


def trace_command(
    url: Annotated[str, typer.Argument(help="The reported URL.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    manifest_path: Annotated[
        Path | None,
        typer.Option("--manifest", help="Manifest (TOML/JSON) or signed manifest (JSON)."),
    ] = None,
    member: Annotated[
        str | None, typer.Option("--member", help="Decide as this member's node (local cases).")
    ] = None,
    geoip_db: Annotated[
        Path | None,
        typer.Option("--geoip-db", envvar="IHX_GEOIP_COUNTRY_DB", help="Country database (.mmdb)."),
    ] = None,
    asn_db: Annotated[
        Path | None,
        typer.Option("--asn-db", envvar="IHX_GEOIP_ASN_DB", help="ASN database (.mmdb)."),
    ] = None,
    resolve: Annotated[
        list[str] | None,
        typer.Option(
            "--resolve",
            metavar="HOST=IP[,IP…]",
            help="Answer for HOST instead of DNS (repeatable).",
        ),
    ] = None,
) -> None:
    """Trace a URL to its hosting country and the responsible member."""
    if geoip_db is None:
        raise CliError("no GeoIP country database: give --geoip-db or set IHX_GEOIP_COUNTRY_DB")
    if member is not None and manifest_path is None:
        raise CliError("--member needs --manifest")
    canonical = canonicalize(url)
    manifest: Manifest | None = None
    signed = False
    if manifest_path is not None:
        manifest, signed = load_any_manifest(manifest_path)
        if member is not None and manifest.find_member(member) is None:
            raise CliError(f"--member {member!r} is not a member of the manifest")
    resolver: Resolver = StaticResolver.from_specs(resolve) if resolve else DnsResolver()
    with GeoIp(geoip_db, asn_db) as geo:
        result = Tracer(resolver, geo, system_clock).trace(canonical)
    decision = None
    if manifest is not None:
        decision = decide(
            result.country, manifest, member, untraceable_reason=result.untraceable_reason
        )
    if as_json:
        print_json(trace_document(url, result, manifest, manifest_path, signed, decision))
    else:
        _print(result, manifest, manifest_path, signed, decision)


# -- output ------------------------------------------------------------------------------------


def _db_document(info: GeoDatabaseInfo | None) -> dict[str, Any] | None:
    if info is None:
        return None
    return {
        "path": info.path,
        "database_type": info.database_type,
        "build_time": format_time(info.build_time),
        "layout": info.layout,
    }


def _address_document(a: TracedAddress) -> dict[str, Any]:
    return {
        "address": a.address,
        "effective": a.effective,
        "note": a.note,
        "special": a.special,
        "country": a.country,
        "asn": a.asn,
        "as_organization": a.as_organization,
    }


def trace_document(
    raw_url: str,
    result: Trace,
    manifest: Manifest | None,
    manifest_path: Path | None,
    signed: bool,
    decision: Decision | None,
) -> dict[str, Any]:
    c = result.canonical
    doc: dict[str, Any] = {
        "input": raw_url,
        "canonical_url": c.url,
        "url_key": c.url_key.hex(),
        "scheme": c.scheme,
        "host": c.host,
        "host_type": c.host_type.value,
        "port": c.port,
        "flags": sorted(c.flags),
        "addresses": [_address_document(a) for a in result.addresses],
        "addresses_truncated": result.truncated,
        "resolver_error": result.resolver_error,
        "country": result.country,
        "tied_countries": list(result.tied_countries),
        "untraceable_reason": result.untraceable_reason,
        "geoip": {
            "country": _db_document(result.country_database),
            "asn": _db_document(result.asn_database),
        },
        "traced_at": format_time(result.traced_at),
        "manifest": None,
        "decision": None,
    }
    if manifest is not None:
        doc["manifest"] = {
            "path": str(manifest_path),
            "network": manifest.network,
            "epoch": manifest.epoch,
            "signature": "not checked" if signed else "unsigned file",
        }
    if decision is not None and manifest is not None:
        responsible = manifest.find_member(decision.member)
        doc["decision"] = {
            "member": decision.member,
            "member_name": responsible.name if responsible else None,
            "reason": decision.reason.value,
            "explanation": decision.explanation,
            "country": decision.country,
            "manifest_epoch": decision.manifest_epoch,
            "local": decision.local,
        }
    return doc


def _describe_db(info: GeoDatabaseInfo) -> str:
    return f"{info.database_type} ({info.layout} layout), built {format_time(info.build_time)}"


def _print(
    result: Trace,
    manifest: Manifest | None,
    manifest_path: Path | None,
    signed: bool,
    decision: Decision | None,
) -> None:
    console = out()
    c = result.canonical
    rows: list[tuple[str, str]] = [
        ("canonical URL", c.url),
        ("flags", ", ".join(sorted(c.flags)) or "none"),
        ("host", f"{c.host} ({c.host_type.value})"),
    ]
    if result.resolver_error:
        rows.append(("resolver", result.resolver_error))
    rows.append(("hosting country", _country_line(result)))
    rows.append(("GeoIP country", _describe_db(result.country_database)))
    if result.asn_database is not None:
        rows.append(("GeoIP ASN", _describe_db(result.asn_database)))
    rows.append(("traced at", format_time(result.traced_at) or ""))
    if manifest is not None:
        rows.extend(_manifest_rows(manifest, manifest_path, signed, decision))
    width = max(len(k) for k, _ in rows)
    for key, value in rows[:3]:
        console.print(f"{key:<{width}}  {value}")
    _print_addresses(console, result)
    for key, value in rows[3:]:
        console.print(f"{key:<{width}}  {value}")


def _country_line(result: Trace) -> str:
    country = result.country or f"none — untraceable ({result.untraceable_reason})"
    if result.tied_countries:
        country += f" (tie between {', '.join(result.tied_countries)}; first alphabetically)"
    return country


def _manifest_rows(
    manifest: Manifest, manifest_path: Path | None, signed: bool, decision: Decision | None
) -> list[tuple[str, str]]:
    """The manifest row, and the decision's rows when there is one."""
    check = "signature not checked" if signed else "unsigned manifest file"
    rows = [("manifest", f"{manifest.network} epoch {manifest.epoch} ({manifest_path}; {check})")]
    if decision is not None:
        responsible = manifest.find_member(decision.member)
        name = f" ({responsible.name})" if responsible else ""
        rows.append(("responsible", f"{decision.member}{name}"))
        rows.append(("reason", f"{decision.reason.value}: {decision.explanation}"))
    return rows


def _print_addresses(console: Console, result: Trace) -> None:
    console.print("addresses" if result.addresses else "addresses        none")
    if result.addresses:
        for line in aligned([_address_cells(a) for a in result.addresses]):
            console.print(line)
        if result.truncated:
            console.print("  (more addresses were returned; only the first ones were traced)")


def _address_cells(a: TracedAddress) -> tuple[str, str, str, str]:
    shown = a.address if a.note is None else f"{a.address} ({a.note} → {a.effective})"
    if a.special is not None:
        return shown, "-", "-", f"special-purpose: {a.special}; never a hosting location"
    asn = f"AS{a.asn}" if a.asn is not None else "AS?"
    return shown, a.country or "??", asn, a.as_organization or ""
