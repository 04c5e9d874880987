"""The responsible node re-checks the trace a peer sends with a report.

The sender's trace is evidence, signed by the sender, and it decides who must act on a URL. A
hostile or misconfigured member could place a private address (10.x) in our country, or forge
the strings it shows our analysts. So before a received report is stored:

* every string of the trace and decision has the form and length the schema means (addresses
  parse, countries are ISO codes, flags are short tokens, free text is capped and printable);
* an address in a special-purpose range (private, loopback, link-local, … — routing/addresses.py,
  the same table the node traces with) must be marked special and carry no country: used as a
  hosting location, the report is refused;
* the trace's times lie in the sender's window (time_window.py);
* this node places the sender's addresses with its *own* GeoIP database. Agreement is recorded
  beside the sender's country; a disagreement is accepted but flagged and counted, so a
  coordinator sees GeoIP drift between members, and where our placement belongs to another
  member the report is marked for re-routing (``reroute_to``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from auth.manifest import Manifest
from exchange.errors import InvalidReport
from exchange.time_window import NETWORK_FLOOR, TimeWindow
from exchange.wire.codec import from_timestamp
from ihx.v1 import report_pb2 as pb
from routing.addresses import view
from routing.errors import RoutingError

MAX_ADDRESSES = 64
MAX_FLAGS = 32
MAX_TOKEN = 64
MAX_TEXT = 512
MAX_HOST = 253

# Given addresses, this node's own placement of them: (hosting country or None).
Locate = Callable[[Sequence[str]], str | None]

# One hoster's addresses recur across a peer's reports: each text is parsed and classified once
# (a pure function of the text). Only addresses are kept — an error is raised, never cached.
_view = functools.lru_cache(maxsize=4096)(view)


@dataclass(frozen=True, slots=True)
class GeoCheck:
    """This node's view of a received report's hosting, recorded beside the sender's."""

    country: str | None  # where this node's GeoIP database places the addresses
    agrees: bool  # the same hosting country as the sender's trace
    reroute_to: str | None  # the member serving ``country`` when that is not this node


def _refuse(message: str, code: str = "trace-invalid") -> InvalidReport:
    return InvalidReport(message, code=code)


def _country(value: str, where: str) -> None:
    if value and not (len(value) == 2 and value.isascii() and value.isupper()):
        raise _refuse(f"{where}: {value[:8]!r} is not an ISO 3166-1 alpha-2 code")


_TOKEN = re.compile(r"[A-Za-z0-9_.:-]*")


def _token(value: str, where: str, limit: int = MAX_TOKEN) -> None:
    if len(value) > limit or not _TOKEN.fullmatch(value):
        raise _refuse(f"{where}: not a short token (letters, digits, - _ . :, ≤ {limit})")


def _text(value: str, where: str, limit: int = MAX_TEXT) -> None:
    if len(value) > limit:
        raise _refuse(f"{where}: at most {limit} characters, got {len(value)}")
    if not value.isprintable():
        raise _refuse(f"{where}: control or format characters are not allowed")


def _check_strings(trace: pb.Trace, decision: pb.Decision) -> None:
    _check_trace_strings(trace)
    _country(decision.country, "decision.country")
    _text(decision.explanation, "decision.explanation")


def _check_trace_strings(trace: pb.Trace) -> None:
    if len(trace.host) > MAX_HOST:
        raise _refuse(f"trace.host: at most {MAX_HOST} characters")
    _text(trace.host, "trace.host", MAX_HOST)
    if len(trace.flags) > MAX_FLAGS:
        raise _refuse(f"trace.flags: at most {MAX_FLAGS}")
    for i, flag in enumerate(trace.flags):
        _token(flag, f"trace.flags[{i}]")
    if len(trace.addresses) > MAX_ADDRESSES:
        raise _refuse(f"trace.addresses: at most {MAX_ADDRESSES}")
    _country(trace.country, "trace.country")
    if len(trace.tied_countries) > MAX_ADDRESSES:
        raise _refuse("trace.tied_countries: too many")
    for i, cc in enumerate(trace.tied_countries):
        _country(cc, f"trace.tied_countries[{i}]")
    _text(trace.resolver_error, "trace.resolver_error")
    for name in ("country_database", "asn_database"):
        db: pb.GeoDatabase = getattr(trace, name)
        _text(db.database_type, f"trace.{name}.database_type", MAX_TOKEN)
        _token(db.layout, f"trace.{name}.layout")


def _check_addresses(trace: pb.Trace) -> list[str]:
    """The addresses that may be hosting locations; refuses special ones used as such."""
    hosting: list[str] = []
    for i, a in enumerate(trace.addresses):
        where = f"trace.addresses[{i}]"
        try:
            seen = _view(a.address)
        except RoutingError:
            raise _refuse(f"{where}: {a.address[:64]!r} is not an IP address") from None
        _country(a.country, f"{where}.country")
        _token(a.special, f"{where}.special")
        _token(a.note, f"{where}.note")
        _text(a.as_organization, f"{where}.as_organization", 256)
        if seen.special is not None:
            if a.country or not a.special:
                raise _refuse(
                    f"{where}: {seen.address} is a special-purpose address ({seen.special}) "
                    "and never a hosting location",
                    code="trace-special-address",
                )
            continue
        hosting.append(seen.effective)
    return hosting


def _check_times(trace: pb.Trace, window: TimeWindow) -> None:
    if trace.HasField("traced_at"):
        problem = window.problem(from_timestamp(trace.traced_at), "trace.traced_at")
        if problem is not None:
            raise _refuse(problem, code="trace-time-range")
    # A GeoIP build may predate the member (a database is older than the node that reads it).
    builds = TimeWindow(NETWORK_FLOOR, window.ceiling)
    for name in ("country_database", "asn_database"):
        db: pb.GeoDatabase = getattr(trace, name)
        if db.HasField("build_time"):
            problem = builds.problem(from_timestamp(db.build_time), f"trace.{name}.build_time")
            if problem is not None:
                raise _refuse(problem, code="trace-time-range")


def review_trace(
    report: pb.Report,
    *,
    window: TimeWindow,
    locate: Locate | None,
    manifest: Manifest,
    self_member: str,
) -> GeoCheck | None:
    """Check a received report's trace; this node's own placement, or None without a GeoIP."""
    trace = report.trace
    _check_strings(trace, report.decision)
    hosting = _check_addresses(trace)
    _check_times(trace, window)
    return _placement(
        hosting, trace.country or None, locate=locate, manifest=manifest, self_member=self_member
    )


def review_moved_trace(
    trace: pb.Trace,
    *,
    host: str,
    country: str,
    window: TimeWindow,
    locate: Locate | None,
    manifest: Manifest,
    self_member: str,
) -> GeoCheck | None:
    """Check the old holder's fresh trace of a moved case's URL (``host``) like a report's,
    and place its addresses with this node's own GeoIP: agreement is with the country the move
    named (``country``), which the trace itself may not show (an analyst may know better)."""
    _check_trace_strings(trace)
    if trace.host and trace.host != host:
        raise _refuse(f"trace.host: {trace.host[:64]!r} is not the case's host {host!r}")
    hosting = _check_addresses(trace)
    _check_times(trace, window)
    return _placement(hosting, country, locate=locate, manifest=manifest, self_member=self_member)


def _placement(
    hosting: Sequence[str],
    theirs: str | None,
    *,
    locate: Locate | None,
    manifest: Manifest,
    self_member: str,
) -> GeoCheck | None:
    """This node's own placement of the hosting addresses beside the sender's country."""
    if locate is None:
        return None
    own = locate(hosting) if hosting else None
    reroute: str | None = None
    if own is not None and own != theirs:
        member = manifest.member_for_country(own) or manifest.orphan_member_for(own)
        if member is not None and member.id != self_member:
            reroute = member.id
    return GeoCheck(own, own == theirs, reroute)
