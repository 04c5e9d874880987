"""An external issuer whose keys are fetched: a JWKS URL, or OIDC discovery from its ``iss``.

``RemoteIssuer`` holds the issuer's current keys as a ``TrustedIssuer``, built from each
fetched JWKS by the same parser as the trust file (jwks.py: public keys only, signature use, our
key types and curves, RSA 2048–8192 bits, the issuer's pinned algorithms) — one bad key refuses
the whole set and the previous one stays.

Nothing is ever fetched on the request path: a call answers at once from the keys held. One
worker thread per issuer does the fetching — when the keys are older than ``ttl`` (and every
``ttl`` anyway), or when a token named an unknown kid (the IdP rotated), which only *schedules*
a refresh. Every fetch, whatever asked for it, waits ``min_refresh`` after the previous attempt,
so a flood of tokens with random kids costs the IdP at most one request per ``min_refresh`` and
the node nothing. While the IdP is down the last good keys stay in use for at most
``max_stale`` after they were fetched; past it, or with none yet, verification answers
``IssuerUnavailable`` for this issuer only, with no detail (the reason goes to the log: an
outsider must not learn what the node's network looks like).

With ``discovery`` the JWKS URL comes from ``<iss>/.well-known/openid-configuration``, whose
``issuer`` must be exactly ``iss`` (OpenID Connect Discovery §4.3) and whose ``jwks_uri`` must
be on the issuer's own scheme, host and port: a compromised document cannot send the node to
another host (its loopback included, a port scan). A ``jwks_uri`` the trust file names itself is
used as given. Fetches are fetch.py's:
https (http on loopback only), no redirect, bounded in size and total time.

pyjwt's ``PyJWKClient`` is not used for this: it follows redirects, reads answers unbounded,
fetches on every unknown kid without a limit and skips unusable keys silently. pyjwt still
parses every JWK (``jwt.PyJWK``, through jwks.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from auth.errors import IssuerUnavailable, TrustConfigError
from auth.tokens.fetch import fetch_json, url_problem
from auth.tokens.policy import TrustedIssuer

__all__ = ["DISCOVERY_PATH", "RemoteIssuer", "RemoteOptions", "close_fetching", "start_fetching"]

log = logging.getLogger(__name__)

DISCOVERY_PATH: Final = "/.well-known/openid-configuration"

Fetch = Callable[[str], Any]
Parse = Callable[[Any, str], TrustedIssuer]


@dataclass(frozen=True, slots=True)
class RemoteOptions:
    """How fetched keys are kept: ``ttl`` before fetching again, at least ``min_refresh``
    between two fetches of one issuer, ``timeout`` for a whole request (DNS, connect, every
    byte), and ``max_stale``: how long keys fetched once may serve while the IdP is unreachable."""

    ttl: timedelta = timedelta(minutes=5)
    min_refresh: timedelta = timedelta(seconds=30)
    timeout: float = 5.0
    max_stale: timedelta = timedelta(hours=24)

    def __post_init__(self) -> None:
        if self.min_refresh <= timedelta(0) or self.ttl < self.min_refresh:
            raise TrustConfigError("jwks: min_refresh must be positive and at most the ttl")
        if not 0 < self.timeout <= 60:
            raise TrustConfigError("jwks: timeout must be within (0, 60] seconds")
        if self.max_stale < self.ttl:
            raise TrustConfigError("jwks: max_stale must be at least the ttl")


class RemoteIssuer:
    """One external issuer with fetched keys: ``current()``, ``on_unknown_kid()``, ``peek()``
    answer from the keys held; a worker thread fetches."""

    def __init__(
        self,
        issuer: str,
        *,
        jwks_uri: str | None,
        discovery: bool,
        parse: Parse,
        clock: Callable[[], datetime],
        options: RemoteOptions,
        fetch: Fetch | None = None,
    ) -> None:
        if (jwks_uri is None) != discovery:
            raise TrustConfigError(f"issuer {issuer!r}: give jwks_uri or discovery, not both")
        source = issuer.rstrip("/") + DISCOVERY_PATH if discovery else jwks_uri
        if (problem := url_problem(source)) is not None:
            raise TrustConfigError(f"issuer {issuer!r}: {source!r}: {problem}")
        self.issuer = issuer
        self._discovery = discovery
        self._jwks_uri = jwks_uri
        self._parse = parse
        self._clock = clock
        self._options = options
        self._fetch = fetch or (lambda url: fetch_json(url, timeout=options.timeout))
        self._lock = threading.Condition()
        self._keys: TrustedIssuer | None = None
        self._fetched_at: datetime | None = None
        self._attempted_at: datetime | None = None
        self._wanted = False  # a refresh is scheduled and not done yet
        self._worker: threading.Thread | None = None
        self._closed = False
        self.fetches = 0  # requests made for keys (discovery included): for tests and metrics
        self.attempts = 0  # refreshes finished, good or not: for tests waiting on the worker

    def current(self) -> TrustedIssuer:
        """The keys in force, at once; a refresh is scheduled when they are past the ttl.

        IssuerUnavailable when none are held yet, or the last good ones are past ``max_stale``.
        """
        keys, fetched = self._keys, self._fetched_at
        now = self._clock()
        if keys is None or fetched is None or now >= fetched + self._options.ttl:
            self.schedule()
        if keys is None or fetched is None:
            raise IssuerUnavailable(f"issuer {self.issuer}: keys unavailable (none fetched yet)")
        if now >= fetched + self._options.max_stale:
            raise IssuerUnavailable(f"issuer {self.issuer}: keys unavailable (too old)")
        return keys

    def on_unknown_kid(self) -> TrustedIssuer:
        """A token named a kid we do not hold: schedule a refresh (within the limit), answer now."""
        self.schedule()
        return self.current()

    def peek(self) -> TrustedIssuer | None:
        """The keys held and not past ``max_stale``, without fetching."""
        keys, fetched = self._keys, self._fetched_at
        if fetched is not None and self._clock() >= fetched + self._options.max_stale:
            return None
        return keys

    def schedule(self) -> None:
        """Ask the worker for a refresh, unless one was attempted within ``min_refresh``."""
        with self._lock:
            if self._closed or self._wanted:
                return
            now = self._clock()
            attempted = self._attempted_at
            if attempted is not None and now < attempted + self._options.min_refresh:
                return
            self._attempted_at = now
            self._wanted = True
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._work, name=f"jwks {self.issuer}", daemon=True
                )
                self._worker.start()
            self._lock.notify_all()

    def wait_settled(self, timeout: float) -> bool:
        """Wait until no refresh is scheduled or running; False if still busy after ``timeout``."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._wanted, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Stop the worker (after the fetch it may be in, which logs nothing once closed); with
        ``timeout``, wait up to that long for it to end."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        if timeout is not None:
            self.join(timeout)

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the worker (if one started) to end."""
        with self._lock:
            worker = self._worker
        if worker is not None:
            worker.join(timeout)

    def _work(self) -> None:
        ttl = self._options.ttl.total_seconds()
        while True:
            with self._lock:
                # Woken by schedule(), or every ttl: keys are kept fresh without a caller.
                if not self._lock.wait_for(lambda: self._wanted or self._closed, ttl):
                    self._wanted = True
                    self._attempted_at = self._clock()
                if self._closed:
                    self._wanted = False
                    self._lock.notify_all()
                    return
            try:
                self._fetch_now()
            finally:
                with self._lock:
                    self._wanted = False
                    self.attempts += 1
                    self._lock.notify_all()

    def _fetch_now(self) -> None:
        try:
            jwks_uri = self._discover() if self._discovery else self._jwks_uri
            assert jwks_uri is not None
            self.fetches += 1
            keys = self._parse(self._fetch(jwks_uri), jwks_uri)
        except (IssuerUnavailable, TrustConfigError) as error:
            if self._closed:  # stopped meanwhile: the process has moved on
                return
            held = "keeping the keys held" if self._keys is not None else "no keys held"
            log.warning("issuer %s: key fetch failed (%s): %s", self.issuer, held, error.message)
            return
        except Exception:  # the worker must outlive any surprise from a hostile answer
            log.exception("issuer %s: key fetch failed unexpectedly", self.issuer)
            return
        if keys.issuer != self.issuer:
            raise AssertionError("parse must build the issuer it was given")
        self._keys, self._fetched_at = keys, self._clock()
        log.info("issuer %s: %d keys in force", self.issuer, len(keys.keys))

    def _discover(self) -> str:
        url = self.issuer.rstrip("/") + DISCOVERY_PATH
        self.fetches += 1
        document = self._fetch(url)
        if not isinstance(document, dict):
            raise IssuerUnavailable(f"{url}: not a JSON object")
        if document.get("issuer") != self.issuer:
            raise IssuerUnavailable(f"{url}: its issuer is not {self.issuer}")
        jwks_uri = document.get("jwks_uri")
        if (problem := url_problem(jwks_uri)) is not None:
            raise IssuerUnavailable(f"{url}: jwks_uri {problem}")
        assert isinstance(jwks_uri, str)
        if not _same_origin(jwks_uri, self.issuer):
            raise IssuerUnavailable(f"{url}: jwks_uri {jwks_uri!r} is not on the issuer's host")
        return jwks_uri


def _same_origin(url: str, issuer: str) -> bool:
    """Whether ``url`` has ``issuer``'s scheme, host and port — so loopback only for an issuer on
    loopback, and never another host the IdP's document names."""
    a, b = urlsplit(url), urlsplit(issuer)
    try:
        same_port = a.port == b.port
    except ValueError:  # a port that is not a number
        return False
    host_a, host_b = a.hostname, b.hostname
    return same_port and a.scheme == b.scheme and host_a is not None and host_a == host_b


def start_fetching(issuers: Iterable[object]) -> None:
    """Have every ``RemoteIssuer`` among ``issuers`` fetch its keys on its worker now (a
    process's start), not at a first token."""
    for issuer in issuers:
        if isinstance(issuer, RemoteIssuer):
            issuer.schedule()


def close_fetching(issuers: Iterable[object], timeout: float = 2.0) -> None:
    """Stop the worker of every ``RemoteIssuer`` among ``issuers`` and wait up to ``timeout``
    in all for them to end: a stopped process must not go on fetching keys (nor logging that it
    could not; a fetch still running logs nothing once closed)."""
    remote = [issuer for issuer in issuers if isinstance(issuer, RemoteIssuer)]
    for issuer in remote:  # all told first, so none starts another fetch meanwhile
        issuer.close()
    deadline = time.monotonic() + timeout
    for issuer in remote:
        issuer.join(max(0.0, deadline - time.monotonic()))
