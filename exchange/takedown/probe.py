"""One re-check of one URL: where is it hosted now, and is the content still there?

A check never fetches content. It re-traces the URL with the node's tracer (the same resolver,
GeoIP databases and refusal of special-purpose addresses as routing), then asks the first
hosting address an HTTP ``HEAD`` — or, where a server answers 405/501 to HEAD, a ``GET`` with
``Range: bytes=0-0`` whose body is never read: the connection is closed after the headers, so a
huge or never-ending body costs nothing. Whatever the network does becomes a ``Check`` (an
outcome, a status, a short detail); nothing here raises for a host's behaviour.

Design:
- Pinned connections: urllib3 connects to the *traced address*, never to the name, so the DNS
  answer that was checked is the one used (no rebinding to 127.0.0.1 between check and
  connect). ``Host`` is the URL's host, and for https SNI and the certificate check are too.
- Redirects are followed by hand, each ``Location`` canonicalised and re-traced; a target that
  is not http(s), or has any special-purpose address (private, loopback, link-local metadata
  169.254.169.254, ::1 …), is REFUSED before anything connects. A loop ends at the limit.
- ``route`` maps (traced address, port) to where the socket actually goes: identity in
  production, loopback in tests and benches. It is applied after every refusal, so a test that
  routes everything to loopback still proves that 127.0.0.1 is never asked.
- The Check describes the reported URL's own host: its re-traced country and the ASN and
  organisation of the address asked. Redirect targets decide only the outcome.
- A whole-check deadline (``deadline_s``, redirects included) on top of the per-read timeout:
  a host that dribbles its answer byte by byte is cut off (``deadline.py``).
- Details never carry a URL path (it can identify a victim): only statuses, reason phrases,
  error kinds and refused addresses.
"""

from __future__ import annotations

import errno
import http.client
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util.ssl_match_hostname import CertificateError as HostnameMismatch

from common.clock import Clock
from exchange.takedown.deadline import Watch, Watchdog
from exchange.takedown.model import MAX_DETAIL, Check, Outcome
from routing.canonical import CanonicalUrl, HostType, canonicalize
from routing.errors import InvalidUrl
from routing.trace import Trace, TracedAddress, Tracer

Route = Callable[[str, int], tuple[str, int]]
"""(traced address, port) → (address, port) the socket connects to."""

_HTTP_SCHEMES: Final = {"http": 80, "https": 443}
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_NO_HEAD: Final = frozenset({405, 501})
_REASON_CHARS: Final = 60


def direct(address: str, port: int) -> tuple[str, int]:
    """The production route: connect to the traced address itself."""
    return address, port


class _Stop(Exception):
    """Ends a check early with its outcome (internal: never leaves ``Prober.check``)."""

    def __init__(self, outcome: Outcome, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail
        self.status = status


@dataclass(slots=True)
class _Seen:
    """What one check has learnt so far (the reported host, and how far it got)."""

    address: str = ""
    country: str | None = None
    asn: int | None = None
    organisation: str = ""
    redirects: int = 0
    trace: Trace | None = None


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    reason: str
    location: str | None


class Prober:
    """Re-checks URLs; thread-safe (each check has its own connection), so a pool shares one."""

    def __init__(
        self,
        tracer: Tracer,
        clock: Clock,
        *,
        user_agent: str,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 10.0,
        max_redirects: int = 5,
        deadline_s: float = 30.0,
        route: Route = direct,
        ssl_context: ssl.SSLContext | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not user_agent.strip() or not user_agent.isprintable():
            raise ValueError("a re-check must name the hotline in its User-Agent (one line)")
        if connect_timeout_s <= 0 or read_timeout_s <= 0 or deadline_s <= 0:
            raise ValueError("timeouts must be positive")
        if max_redirects < 0:
            raise ValueError("max_redirects must be at least 0")
        self._tracer = tracer
        self._clock = clock
        self._user_agent = user_agent
        self._timeout = urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s)
        self._max_redirects = max_redirects
        self._deadline_s = deadline_s
        self._watchdog = Watchdog(monotonic)
        self._route = route
        self._ssl_context = ssl_context or ssl.create_default_context()
        self._monotonic = monotonic

    def check(self, url: str) -> Check:
        """One re-check of ``url`` (a reported URL, canonical or not)."""
        started = self._monotonic()
        at = self._clock()
        seen = _Seen()
        with self._watchdog.watch(self._deadline_s) as watch:
            try:
                outcome, status, detail = self._run(url, seen, watch)
            except _Stop as stop:
                outcome, status, detail = stop.outcome, stop.status, stop.detail
        if watch.expired:  # whatever was half-read when the sockets were shut proves nothing
            outcome, status = Outcome.UNREACHABLE, None
            detail = f"deadline exceeded ({self._deadline_s:g} s)"
        return Check(
            at=at,
            outcome=outcome,
            status=status,
            address=seen.address,
            country=seen.country,
            asn=seen.asn,
            organisation=seen.organisation,
            redirects=seen.redirects,
            elapsed_ms=int((self._monotonic() - started) * 1000),
            detail=detail[:MAX_DETAIL],
            trace=seen.trace,
        )

    def _run(self, url: str, seen: _Seen, watch: Watch) -> tuple[Outcome, int | None, str]:
        current = _canonical(url)
        if current.scheme not in _HTTP_SCHEMES:
            raise _Stop(Outcome.REFUSED, f"scheme {current.scheme}: not checked")
        trace = self._tracer.trace(current)
        seen.trace = trace
        seen.country = trace.country
        asked = _reported_address(trace.addresses, trace.resolver_error)
        seen.address = asked.address
        seen.asn = asked.asn
        seen.organisation = asked.as_organization or ""
        address = asked.address
        while True:
            answer = self._ask(current, address, watch)
            if answer.status not in _REDIRECTS or answer.location is None:
                return _classify(answer)
            if seen.redirects >= self._max_redirects:
                return Outcome.ONLINE, answer.status, f"redirect limit ({self._max_redirects})"
            current = _redirect_target(current, answer)
            address = _redirect_address(self._tracer.trace(current).addresses, answer.status)
            seen.redirects += 1

    def _ask(self, url: CanonicalUrl, address: str, watch: Watch) -> _Answer:
        """HEAD (or a GET of one byte) to ``address``, pinned, as ``url``'s host."""
        port = url.port or _HTTP_SCHEMES[url.scheme]
        connect_host, connect_port = self._route(address, port)
        headers = {
            "Host": _host_header(url),
            "User-Agent": self._user_agent,
            "Accept": "*/*",
            "Connection": "close",
        }
        pool = self._pool(url, connect_host, connect_port, watch)
        try:
            answer = _request(pool, "HEAD", _request_target(url.url), headers)
            if answer.status in _NO_HEAD:
                ranged = headers | {"Range": "bytes=0-0"}
                answer = _request(pool, "GET", _request_target(url.url), ranged)
            return answer
        finally:
            pool.close()

    def _pool(
        self, url: CanonicalUrl, host: str, port: int, watch: Watch
    ) -> urllib3.HTTPConnectionPool:
        if url.scheme == "http":
            return _WatchedHTTPPool(
                host, port, timeout=self._timeout, maxsize=1, retries=False, watch=watch
            )
        return _WatchedHTTPSPool(
            host,
            port,
            timeout=self._timeout,
            maxsize=1,
            retries=False,
            server_hostname=url.host,
            assert_hostname=url.host,
            ssl_context=self._ssl_context,
            cert_reqs="CERT_REQUIRED",
            watch=watch,
        )


# -- connections whose sockets the deadline can shut ------------------------------------------


class _WatchedHTTPConnection(HTTPConnection):
    def __init__(self, *args: Any, watch: Watch, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watch = watch

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        self._watch.add(sock)
        return sock


class _WatchedHTTPSConnection(HTTPSConnection):
    def __init__(self, *args: Any, watch: Watch, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watch = watch

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # registered before the handshake: a slow one is cut too
        self._watch.add(sock)
        return sock


class _WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


# -- the addresses asked ----------------------------------------------------------------------


def _reported_address(addresses: tuple[TracedAddress, ...], error: str | None) -> TracedAddress:
    """The reported host's address to ask: the first hosting candidate, else the first
    ordinary address the GeoIP databases do not place; never a special-purpose one."""
    for a in addresses:
        if a.hosting_candidate:
            return a
    for a in addresses:
        if a.special is None:
            return a
    if addresses:
        first = addresses[0]
        raise _Stop(Outcome.REFUSED, f"special-purpose address {first.address} ({first.special})")
    raise _Stop(Outcome.UNREACHABLE, f"no address ({error or 'none'})")


def _redirect_address(addresses: tuple[TracedAddress, ...], status: int) -> str:
    """A redirect target's address; refused if *any* of its addresses is special-purpose
    (a Location is chosen by the server, so a name that also resolves inward is not asked)."""
    for a in addresses:
        if a.special is not None:
            raise _Stop(
                Outcome.REFUSED,
                f"redirect to special-purpose address {a.address} ({a.special})",
                status,
            )
    if not addresses:
        raise _Stop(Outcome.UNREACHABLE, "redirect target has no address", status)
    return next((a for a in addresses if a.hosting_candidate), addresses[0]).address


def _redirect_target(current: CanonicalUrl, answer: _Answer) -> CanonicalUrl:
    assert answer.location is not None
    try:
        target = canonicalize(answer.location, base=current.url)
    except InvalidUrl as error:
        raise _Stop(Outcome.REFUSED, f"redirect refused: {error.code}", answer.status) from None
    if target.scheme not in _HTTP_SCHEMES:
        raise _Stop(Outcome.REFUSED, f"redirect to scheme {target.scheme}", answer.status)
    return target


def _canonical(url: str) -> CanonicalUrl:
    try:
        return canonicalize(url)
    except InvalidUrl as error:
        raise _Stop(Outcome.REFUSED, f"invalid URL: {error.code}") from None


# -- HTTP ----------------------------------------------------------------------------------------


def _request(
    pool: urllib3.HTTPConnectionPool, method: str, target: str, headers: dict[str, str]
) -> _Answer:
    """One request; the response's headers are read, its body never (the socket is closed)."""
    try:
        response = pool.urlopen(
            method,
            target,
            headers=headers,
            retries=False,
            redirect=False,
            assert_same_host=False,
            preload_content=False,
            release_conn=False,
        )
    except (HTTPError, OSError, http.client.HTTPException) as error:
        raise _Stop(Outcome.UNREACHABLE, _network_detail(error)) from None
    try:
        return _Answer(
            response.status, _printable(response.reason), response.headers.get("Location")
        )
    finally:
        response.close()  # closes the connection: nothing after the headers is read


def _classify(answer: _Answer) -> tuple[Outcome, int, str]:
    status = answer.status
    detail = f"{status} {answer.reason}".strip()
    if 200 <= status < 400:  # 3xx here has no Location: the server answers for the URL
        return Outcome.ONLINE, status, detail
    if status in (404, 410):
        return Outcome.GONE, status, detail
    if status == 429 or 500 <= status < 600:
        return Outcome.UNREACHABLE, status, detail
    if 400 <= status < 500:  # 401/403/451 and every other refusal to give it to us
        return Outcome.UNAVAILABLE, status, detail
    return Outcome.UNREACHABLE, status, f"unexpected status {status}"


def _network_detail(error: BaseException) -> str:
    """A short, path-free description of a network failure."""
    if isinstance(error, NewConnectionError):
        cause = error.__context__ or error.__cause__
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, OSError) and cause.errno is not None:
            return f"connect failed: {errno.errorcode.get(cause.errno, cause.errno)}"
        return "connect failed"
    if isinstance(error, ConnectTimeoutError):
        return "connect timeout"
    if isinstance(error, ReadTimeoutError):
        return "read timeout"
    if isinstance(error, SSLError):
        return "TLS: " + _tls_reason(error)
    if isinstance(error, ProtocolError):
        inner = error.args[1] if len(error.args) > 1 else None
        if isinstance(inner, ConnectionResetError):
            return "connection reset"
        if isinstance(inner, http.client.RemoteDisconnected):
            return "connection closed without an answer"
        return f"protocol error: {type(inner or error).__name__}"
    return f"network error: {type(error).__name__}"


# Certificate failures by OpenSSL verify code, in fixed words: Python's own message names the
# host ("Hostname mismatch, certificate is not valid for 'csam-host.example'"), and the reason
# ends up in the routing log, which log:read users may read without seeing any case's URL.
_VERIFY_REASONS: Final = {
    2: "certificate issuer unknown",
    9: "certificate not yet valid",
    10: "certificate expired",
    18: "self-signed certificate",
    19: "self-signed certificate in chain",
    20: "certificate issuer unknown",
    21: "certificate chain incomplete",
    23: "certificate revoked",
    62: "certificate does not match the host name",
    64: "certificate does not match the IP address",
}
_OPENSSL_REASON = re.compile(r"[A-Z0-9_]{1,64}")  # OpenSSL's reason constants name no host


def _tls_reason(error: SSLError) -> str:
    """A fixed description of a TLS failure, by its class and code — never its message."""
    for cause in (error.__cause__, error.__context__, *error.args):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return _VERIFY_REASONS.get(cause.verify_code, "certificate not accepted")
        if isinstance(cause, HostnameMismatch):  # urllib3's own check of the name
            return _VERIFY_REASONS[62]
        if isinstance(cause, ssl.SSLError):
            reason = cause.reason or ""
            return reason if _OPENSSL_REASON.fullmatch(reason) else "handshake failed"
    return "handshake failed"


def _printable(text: str | None) -> str:
    """A server-chosen reason phrase, made safe to store and show."""
    if not text:
        return ""
    kept = "".join(c if " " <= c <= "~" else "?" for c in text[:_REASON_CHARS])
    return kept.strip()


def _host_header(url: CanonicalUrl) -> str:
    host = f"[{url.host}]" if url.host_type is HostType.IPV6 else url.host
    return host if url.port is None else f"{host}:{url.port}"


def _request_target(canonical_url: str) -> str:
    """The path and query of a canonical URL (which has no userinfo and no fragment)."""
    authority_start = canonical_url.index("://") + 3
    slash = canonical_url.find("/", authority_start)
    return canonical_url[slash:] if slash >= 0 else "/"
