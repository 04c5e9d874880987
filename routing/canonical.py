"""The canonical URL: one reported URL, one string and one key, the same on every node.

Hotlines report the same material with differently written URLs; routing, deduplication and the
exchange key on ``url_key = sha256(canonical url)``, so every node must derive the identical string.
The WHATWG URL Standard (via ``ada_url``, which passes the WHATWG suite) does the hard part: host to
lower-case punycode (UTS 46), IPv4 forms to dotted decimal, default port dropped, dot segments
resolved, percent-encoding. On top of it, the fragment and the userinfo are dropped (neither reaches
the server, and userinfo may carry credentials) and only http, https and ftp are accepted.

Speed: ``normalize_url`` is the only parser call; host and port are sliced out of the href. Most
reported URLs are already canonical (input == href), which means there is nothing to flag — and
most of those are recognised without the parser (``already_canonical``: one regular expression,
the GIL held, where the parser's binding gave it up four times). Otherwise the flags compare the
raw input with the href using cheap string tests, and the slower checks (raw authority regex,
IPv6 embedding, mixed-script IDN) run only when a cheap test says they can apply. Flags are
advisory: the canonical URL never depends on them.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from typing import Final

import ada_url

from routing.already_canonical import already_canonical
from routing.errors import InvalidUrl
from routing.idn import host_is_mixed_script

MAX_URL_BYTES: Final = 8192

# A UTF-8 code point is at most 4 bytes, so shorter strings need no byte count.
_MAX_CHARS_UNCHECKED: Final = MAX_URL_BYTES // 4

# WHATWG strips leading and trailing C0 controls and space before parsing.
_C0_SPACE: Final = "".join(chr(code) for code in range(0x21))

_ALLOWED_SCHEMES: Final = frozenset({"http", "https", "ftp"})
_SCHEME_EXCERPT: Final = 32


class HostType(enum.StrEnum):
    """What the canonical host is; the trace resolves domains and uses IP literals as they are."""

    DOMAIN = "domain"
    IPV4 = "ipv4"
    IPV6 = "ipv6"


class UrlFlag(enum.StrEnum):
    """What normalisation did to the reported URL (stable strings; advisory)."""

    USERINFO_DROPPED = "userinfo-dropped"
    FRAGMENT_DROPPED = "fragment-dropped"
    WHITESPACE_TRIMMED = "whitespace-trimmed"
    CONTROL_CHARS_REMOVED = "control-chars-removed"
    DEFAULT_PORT_DROPPED = "default-port-dropped"
    DOT_SEGMENTS_RESOLVED = "dot-segments-resolved"
    IPV4_NON_STANDARD = "ipv4-non-standard"
    IPV4_MAPPED_IPV6 = "ipv4-mapped-ipv6"
    IPV4_COMPATIBLE_IPV6 = "ipv4-compatible-ipv6"
    NAT64_IPV6 = "nat64-ipv6"
    SIX_TO_FOUR_IPV6 = "6to4-ipv6"
    TEREDO_IPV6 = "teredo-ipv6"
    IDN = "idn"
    MIXED_SCRIPT_IDN = "mixed-script-idn"
    HOST_LOWERCASED = "host-lowercased"
    PERCENT_ENCODED = "percent-encoded"
    UNICODE_NFC = "unicode-nfc"


class InvalidUrlCode(enum.StrEnum):
    """The ``code`` of every :class:`InvalidUrl` raised here."""

    EMPTY = "url-empty"
    TOO_LONG = "url-too-long"
    UNPARSEABLE = "url-unparseable"
    SCHEME_NOT_ALLOWED = "scheme-not-allowed"
    HOST_MISSING = "host-missing"
    NOT_TEXT = "url-not-text"


@dataclass(frozen=True, slots=True)
class CanonicalUrl:
    """A reported URL in canonical form, with its key and what normalisation changed."""

    url: str
    url_key: bytes
    scheme: str
    host: str
    host_type: HostType
    port: int | None
    flags: frozenset[str]


_NO_FLAGS: Final[frozenset[str]] = frozenset()
_sha256: Final = hashlib.sha256
# Module constants: enum attribute access costs more than a global lookup on the hot path.
_DOMAIN: Final = HostType.DOMAIN
_IPV4: Final = HostType.IPV4
_IPV6: Final = HostType.IPV6

# The raw authority as the WHATWG parser sees it for special schemes: any number of slashes or
# backslashes after the scheme (or a scheme-relative "//"), then up to the path/query/fragment.
_RAW_AUTHORITY: Final = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.\-]*:[/\\]*|[/\\]{2,})([^/\\?#]*)")
_RAW_SCHEME: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
# "%2e" counts as a dot in path segments (WHATWG "single-dot / double-dot URL path segment").
_DOT_SEGMENT: Final = re.compile(r"(?:^|[/\\])(?:\.|%2e){1,2}(?:[/\\]|$)", re.IGNORECASE)

# RFC 6052 well-known prefix and RFC 8215 local-use prefix.
_NAT64_NETWORKS: Final = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
)


def canonicalize(raw: str, *, base: str | None = None) -> CanonicalUrl:
    """Canonicalise a reported URL (resolved against ``base`` if it is relative).

    Raises :class:`InvalidUrl` with one of the :class:`InvalidUrlCode` codes.
    """
    # One URL typed or copied in NFC or NFD form (é vs e + U+0301) must be one report and one
    # case: WHATWG percent-encodes the path as given, so compose the input first (flagged).
    composed = False
    if not raw.isascii():
        nfc = unicodedata.normalize("NFC", raw)
        composed = nfc != raw
        raw = nfc
    canonical = _canonicalize(raw, base)
    if composed:
        return dataclasses.replace(canonical, flags=canonical.flags | {UrlFlag.UNICODE_NFC})
    return canonical


def _canonicalize(raw: str, base: str | None) -> CanonicalUrl:
    stripped, href = _parse(raw, base)
    colon = href.find(":")
    scheme = href[:colon]
    if scheme not in _ALLOWED_SCHEMES:
        raise _scheme_error(scheme)
    # Special schemes always serialise as "scheme://".
    start = colon + 3

    # In a serialised special URL the path always starts with "/", "#" only ever starts the
    # fragment and "@" only ever ends the userinfo: the parser percent-encodes them elsewhere.
    path_start = href.find("/", start)
    fragment_start = href.find("#", path_start)
    authority = href[start:path_start]
    at = authority.find("@")
    hostport = authority if at < 0 else authority[at + 1 :]
    if hostport[0] == "[":
        close = hostport.find("]")
        host = hostport[1:close]
        port_text = hostport[close + 2 :]
        host_type = _IPV6
    else:
        host, _, port_text = hostport.partition(":")
        # A valid domain never ends in a numeric label: the parser turns those into IPv4.
        # (Testing the last character first is a shortcut: most domains end in a letter.)
        numeric_end = host[-1] <= "9" and host.rpartition(".")[2].isdigit()
        host_type = _IPV4 if numeric_end else _DOMAIN
    port = int(port_text) if port_text else None

    if at < 0 and fragment_start < 0:
        url = href
        if raw == href and host_type is not _IPV6 and "xn--" not in host:
            # The common case: the input was already canonical, so there is nothing to flag.
            flags = _NO_FLAGS
        else:
            flags = _flags(
                raw, stripped, base, href, path_start, host=host, host_type=host_type, port=port
            )
    else:
        end = len(href) if fragment_start < 0 else fragment_start
        url = href[:start] + hostport + href[path_start:end]
        flags = _flags(
            raw, stripped, base, href, path_start, host=host, host_type=host_type, port=port
        )

    return CanonicalUrl(url, _sha256(url.encode()).digest(), scheme, host, host_type, port, flags)


def _parse(raw: str, base: str | None) -> tuple[str, str]:
    """The input stripped as WHATWG strips it, and the WHATWG href; refusals raise here."""
    if not isinstance(raw, str):
        raise InvalidUrl("The URL is not a text string.", code=InvalidUrlCode.NOT_TEXT)
    if len(raw) > _MAX_CHARS_UNCHECKED:
        _check_length(raw, "URL")
    if base is None and already_canonical(raw):
        return raw, raw
    stripped = raw.strip(_C0_SPACE)
    if base is None:
        if not stripped:
            raise InvalidUrl("The URL is empty.", code=InvalidUrlCode.EMPTY)
        try:
            href: str = ada_url.normalize_url(raw)
        except ValueError:
            raise _parse_error(raw, stripped, None) from None
        return stripped, href
    # An empty input is valid with a base: WHATWG resolves it to the base itself.
    if not isinstance(base, str):
        raise InvalidUrl("The base URL is not a text string.", code=InvalidUrlCode.NOT_TEXT)
    if len(base) > _MAX_CHARS_UNCHECKED:
        _check_length(base, "base URL")
    try:
        href = ada_url.join_url(base, raw)
    except ValueError:
        raise _parse_error(raw, stripped, base) from None
    return stripped, href


def _flags(
    raw: str,
    stripped: str,
    base: str | None,
    href: str,
    path_start: int,
    *,
    host: str,
    host_type: HostType,
    port: int | None,
) -> frozenset[str]:
    """What normalisation changed, from cheap comparisons of the raw input with the href."""
    flags: list[str] = []
    if len(stripped) != len(raw):
        flags.append(UrlFlag.WHITESPACE_TRIMMED)
    clean = stripped
    if "\t" in stripped or "\n" in stripped or "\r" in stripped:
        flags.append(UrlFlag.CONTROL_CHARS_REMOVED)
        clean = stripped.replace("\t", "").replace("\n", "").replace("\r", "")
    has_userinfo = href.find("@", 0, path_start) >= 0
    if has_userinfo:
        flags.append(UrlFlag.USERINFO_DROPPED)
    if href.find("#", path_start) >= 0:
        flags.append(UrlFlag.FRAGMENT_DROPPED)
    # Most reported URLs are already in WHATWG form: then the parser changed nothing, and the
    # checks that compare the raw input with the href can all be skipped.
    if clean != href:
        _rewrite_flags(clean, base, href, path_start, has_userinfo, host, host_type, port, flags)
    _host_flags(host, host_type, flags)
    return frozenset(flags) if flags else _NO_FLAGS


def _rewrite_flags(
    clean: str,
    base: str | None,
    href: str,
    path_start: int,
    has_userinfo: bool,
    host: str,
    host_type: HostType,
    port: int | None,
    flags: list[str],
) -> None:
    """Flags for an input the parser rewrote (``clean`` differs from ``href``)."""
    if href.count("%") > clean.count("%") + (base.count("%") if base else 0):
        flags.append(UrlFlag.PERCENT_ENCODED)
    if _has_dot_segment(clean):
        flags.append(UrlFlag.DOT_SEGMENTS_RESOLVED)
    prefix = href[:path_start]
    if not (
        not has_userinfo
        and clean.startswith(prefix)
        and (len(clean) == path_start or clean[path_start] in "/\\?#")
    ):
        _raw_authority_flags(clean, host, host_type, port, flags)


def _host_flags(host: str, host_type: HostType, flags: list[str]) -> None:
    """Flags about the canonical host itself: IPv6 forms, IDN and mixed-script IDN."""
    if host_type is _IPV6:
        _ipv6_flags(host, flags)
    elif "xn--" in host:
        if UrlFlag.IDN not in flags:
            flags.append(UrlFlag.IDN)
        if host_is_mixed_script(host):
            flags.append(UrlFlag.MIXED_SCRIPT_IDN)


def _has_dot_segment(clean: str) -> bool:
    """True when the raw path has "." or ".." segments, which the parser resolves away."""
    # Most paths have no "/." at all; the regex runs only for the rest.
    if not ("/." in clean or "\\." in clean or "%2" in clean or clean.startswith(".")):
        return False
    path_end = len(clean)
    for delimiter in "?#":
        index = clean.find(delimiter)
        if 0 <= index < path_end:
            path_end = index
    return _DOT_SEGMENT.search(clean, 0, path_end) is not None


def _raw_authority(clean: str) -> tuple[bool, str, str] | None:
    """(has userinfo, host, port) as written in the raw input; None for a relative reference."""
    match = _RAW_AUTHORITY.match(clean)
    if match is None:
        return None
    # The parser splits at the last "@": earlier ones belong to the userinfo.
    _, at, hostport = match.group(1).rpartition("@")
    if hostport.startswith("["):
        host, _, port = hostport[1:].partition("]")
        return bool(at), host, port[1:]
    host, _, port = hostport.partition(":")
    return bool(at), host, port


def _raw_authority_flags(
    clean: str, host: str, host_type: HostType, port: int | None, flags: list[str]
) -> None:
    """Flags that compare the raw authority with the canonical one."""
    raw = _raw_authority(clean)
    if raw is None:
        # A relative reference: the authority came from the base URL.
        return
    has_userinfo, raw_host, raw_port = raw
    if has_userinfo and UrlFlag.USERINFO_DROPPED not in flags:
        flags.append(UrlFlag.USERINFO_DROPPED)
    if raw_host != raw_host.lower():
        flags.append(UrlFlag.HOST_LOWERCASED)
    if not raw_host.isascii():
        flags.append(UrlFlag.IDN)
    if host_type is _IPV4 and raw_host.lower() != host:
        flags.append(UrlFlag.IPV4_NON_STANDARD)
    if port is None and raw_port:
        flags.append(UrlFlag.DEFAULT_PORT_DROPPED)


def _ipv6_flags(host: str, flags: list[str]) -> None:
    """Flag IPv6 literals that embed an IPv4 address (a way to hide an IPv4 host)."""
    address = ipaddress.IPv6Address(host)
    if address.ipv4_mapped is not None:
        flags.append(UrlFlag.IPV4_MAPPED_IPV6)
    elif address.sixtofour is not None:
        flags.append(UrlFlag.SIX_TO_FOUR_IPV6)
    elif address.teredo is not None:
        flags.append(UrlFlag.TEREDO_IPV6)
    elif any(address in network for network in _NAT64_NETWORKS):
        flags.append(UrlFlag.NAT64_IPV6)
    elif int(address) >> 32 == 0 and int(address) > 1:
        # Deprecated IPv4-compatible form (::a.b.c.d); "::" and "::1" are not IPv4.
        flags.append(UrlFlag.IPV4_COMPATIBLE_IPV6)


def _check_length(text: str, what: str) -> None:
    try:
        size = len(text.encode())
    except UnicodeEncodeError:
        raise _not_text_error(what) from None
    if size > MAX_URL_BYTES:
        raise InvalidUrl(
            f"The {what} is {size} bytes long, over the limit of {MAX_URL_BYTES} bytes.",
            code=InvalidUrlCode.TOO_LONG,
        )


def _not_text_error(what: str) -> InvalidUrl:
    return InvalidUrl(
        f"The {what} contains characters that are not valid Unicode text (lone surrogates).",
        code=InvalidUrlCode.NOT_TEXT,
    )


def _scheme_error(scheme: str) -> InvalidUrl:
    shown = scheme[:_SCHEME_EXCERPT] + ("…" if len(scheme) > _SCHEME_EXCERPT else "")
    return InvalidUrl(
        f"The URL scheme {shown!r} is not allowed; only http, https and ftp URLs are accepted.",
        code=InvalidUrlCode.SCHEME_NOT_ALLOWED,
    )


def _parse_error(raw: str, stripped: str, base: str | None) -> InvalidUrl:
    """Explain why the parser refused the input (the slow path: failures only).

    Messages name the part that is wrong but never echo the URL: reported URLs point at abuse
    material and error messages end up in logs.
    """
    for text, what in ((raw, "URL"), (base, "base URL")):
        if text is not None:
            try:
                text.encode()
            except UnicodeEncodeError:
                return _not_text_error(what)
    if base is not None and not ada_url.check_url(base):
        return InvalidUrl(
            "The base URL could not be parsed as a URL.", code=InvalidUrlCode.UNPARSEABLE
        )
    clean = stripped.replace("\t", "").replace("\n", "").replace("\r", "")
    scheme_match = _RAW_SCHEME.match(clean)
    if scheme_match is None:
        if base is None:
            return InvalidUrl(
                "The URL has no scheme (it is relative) and no base URL was given.",
                code=InvalidUrlCode.UNPARSEABLE,
            )
        return InvalidUrl(
            "The URL could not be resolved against the base URL.",
            code=InvalidUrlCode.UNPARSEABLE,
        )
    scheme = scheme_match.group(1).lower()
    if scheme not in _ALLOWED_SCHEMES:
        return _scheme_error(scheme)
    _, raw_host, raw_port = _raw_authority(clean) or (False, "", "")
    if not raw_host:
        return InvalidUrl("The URL has no host.", code=InvalidUrlCode.HOST_MISSING)
    if raw_port and not (raw_port.isascii() and raw_port.isdigit() and int(raw_port) <= 0xFFFF):
        return InvalidUrl(
            "The URL port is not a number from 0 to 65535.", code=InvalidUrlCode.UNPARSEABLE
        )
    return InvalidUrl(
        "The URL host is not a valid domain name or IP address.", code=InvalidUrlCode.UNPARSEABLE
    )
