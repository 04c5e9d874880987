"""An external issuer whose keys are fetched: a JWKS URL, or OIDC discovery from its ``iss``.

``RemoteIssuer`` holds the issuer's current keys as a ``TrustedIssuer``, built from each
fetched JWKS by the same parser as the trust file (jwks.py: public keys only, signature use, our
key types and curves, RSA >= 2048 bits, the issuer's pinned algorithms) — one bad key refuses
the whole set and the previous one stays. Keys are kept ``ttl`` and fetched again after it; a
token naming an unknown kid triggers one fetch at once (the IdP rotated). Every fetch, whatever
caused it, waits ``min_refresh`` after the previous attempt, so a flood of tokens with random
kids costs the IdP at most one request per ``min_refresh``. While the IdP is down the last good
keys stay in use; with none yet, verification answers ``IssuerUnavailable`` for this issuer only.

With ``discovery`` the JWKS URL comes from ``<iss>/.well-known/openid-configuration``, whose
``issuer`` must be exactly ``iss`` (OpenID Connect Discovery §4.3). Fetches are fetch.py's:
https (http on loopback only), no redirect, bounded, with a timeout.

pyjwt's ``PyJWKClient`` is not used for this: it follows redirects, reads answers unbounded,
fetches on every unknown kid without a limit and skips unusable keys silently. pyjwt still
parses every JWK (``jwt.PyJWK``, through jwks.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from auth.errors import IssuerUnavailable, TrustConfigError
from auth.tokens.fetch import fetch_json, url_problem
from auth.tokens.policy import TrustedIssuer

__all__ = ["DISCOVERY_PATH", "RemoteIssuer", "RemoteOptions"]

log = logging.getLogger(__name__)

DISCOVERY_PATH: Final = "/.well-known/openid-configuration"

Fetch = Callable[[str], Any]
Parse = Callable[[Any, str], TrustedIssuer]


@dataclass(frozen=True, slots=True)
class RemoteOptions:
    """How fetched keys are kept: ``ttl`` before fetching again, at least ``min_refresh``
    between two fetches of one issuer, ``timeout`` per request."""

    ttl: timedelta = timedelta(minutes=5)
    min_refresh: timedelta = timedelta(seconds=30)
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.min_refresh <= timedelta(0) or self.ttl < self.min_refresh:
            raise TrustConfigError("jwks: min_refresh must be positive and at most the ttl")
        if not 0 < self.timeout <= 60:
            raise TrustConfigError("jwks: timeout must be within (0, 60] seconds")


class RemoteIssuer:
    """One external issuer with fetched keys; ``current()`` and ``on_unknown_kid()``."""

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
        self._lock = threading.Lock()
        self._keys: TrustedIssuer | None = None
        self._fetched_at: datetime | None = None
        self._attempted_at: datetime | None = None
        self._last_error = "not fetched yet"
        self.fetches = 0  # requests made for keys (discovery included): for tests and metrics

    def current(self) -> TrustedIssuer:
        """The keys in force, fetched first if none are held or they are older than the ttl."""
        keys, fetched = self._keys, self._fetched_at
        if keys is not None and fetched is not None and self._clock() < fetched + self._options.ttl:
            return keys
        return self._refresh()

    def on_unknown_kid(self) -> TrustedIssuer:
        """A token named a kid we do not hold: fetch again now, if the refresh limit allows."""
        return self._refresh()

    def peek(self) -> TrustedIssuer | None:
        """The keys held, without fetching."""
        return self._keys

    def _refresh(self) -> TrustedIssuer:
        with self._lock:
            now = self._clock()
            attempted = self._attempted_at
            if attempted is None or now >= attempted + self._options.min_refresh:
                self._attempted_at = now
                self._fetch_now(now)
            if self._keys is None:
                raise IssuerUnavailable(
                    f"issuer {self.issuer}: no keys yet ({self._last_error}); "
                    f"next attempt within {self._options.min_refresh.total_seconds():g} s"
                )
            return self._keys

    def _fetch_now(self, now: datetime) -> None:
        try:
            jwks_uri = self._discover() if self._discovery else self._jwks_uri
            assert jwks_uri is not None
            self.fetches += 1
            keys = self._parse(self._fetch(jwks_uri), jwks_uri)
        except (IssuerUnavailable, TrustConfigError) as error:
            self._last_error = error.message
            held = "keeping the keys held" if self._keys is not None else "no keys held"
            log.warning("issuer %s: key fetch failed (%s): %s", self.issuer, held, error.message)
            return
        if keys.issuer != self.issuer:
            raise AssertionError("parse must build the issuer it was given")
        self._keys, self._fetched_at = keys, now
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
        return jwks_uri
