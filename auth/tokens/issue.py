"""The node's own token issuer: short-lived EdDSA tokens signed with the node key.

``ihx token issue`` mints tokens for a hotline's own analysts and tools. The JWS is assembled here
(header, claims, base64url) and signed through ``SigningKey.sign``, so the private key never
leaves ``SigningKey``. The issuer refuses anything its own verifier would refuse — an unknown
scope, a lifetime over the maximum, an odd subject — so a minted token always verifies. A
network token's issuer has a ``grant`` (the manifest's network readers) and refuses any scope
beyond it, as every node would.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import timedelta

from auth.errors import TokenIssueError
from auth.keys import SigningKey
from auth.tokens.jose import b64url, compact_json
from auth.tokens.policy import (
    DEFAULT_MAX_LIFETIME,
    SCOPES_BY_VALUE,
    SUBJECT_PATTERN,
    TOKEN_ID_PATTERN,
    Scope,
    TrustedIssuer,
    node_issuer,
)
from common.clock import Clock

__all__ = ["TokenIssuer"]


class TokenIssuer:
    """The node's own issuer: short-lived EdDSA tokens signed with the node key (kid = key id).

    The JWS is assembled here and signed through ``SigningKey.sign``, so the private key never
    leaves ``SigningKey``.
    """

    __slots__ = (
        "_audience",
        "_clock",
        "_grant",
        "_header_segment",
        "_issuer",
        "_key",
        "_max_lifetime",
    )

    def __init__(
        self,
        key: SigningKey,
        issuer: str,
        audience: str,
        clock: Clock,
        *,
        max_lifetime: timedelta = DEFAULT_MAX_LIFETIME,
        grant: frozenset[Scope] | None = None,
    ) -> None:
        if not issuer or not audience:
            raise TokenIssueError("issuer and audience must be non-empty")
        self._grant = grant
        self._key = key
        self._issuer = issuer
        self._audience = audience
        self._clock = clock
        self._max_lifetime = max_lifetime
        header = {"alg": "EdDSA", "kid": key.key_id, "typ": "JWT"}
        self._header_segment = b64url(compact_json(header))

    @property
    def trusted(self) -> TrustedIssuer:
        """This issuer as a verifier must trust it."""
        return node_issuer(self._key.public, self._issuer)

    def _granted(self, scopes: Iterable[Scope | str]) -> set[Scope]:
        """The scopes asked, each known and within the grant (TokenIssueError if not)."""
        granted: set[Scope] = set()
        for s in scopes:
            scope = SCOPES_BY_VALUE.get(s)
            if scope is None:
                raise TokenIssueError(f"unknown scope {s!r}; known: {', '.join(Scope)}")
            granted.add(scope)
        if not granted:
            raise TokenIssueError("at least one scope is required")
        if self._grant is not None and not granted <= self._grant:
            beyond = ", ".join(sorted(granted - self._grant))
            raise TokenIssueError(
                f"a network token may grant only {', '.join(sorted(self._grant))} "
                f"(the manifest's network_readers), not {beyond}"
            )
        return granted

    def issue(
        self,
        subject: str,
        scopes: Iterable[Scope | str],
        ttl: timedelta = DEFAULT_MAX_LIFETIME,
        token_id: str | None = None,
    ) -> str:
        """A signed token for ``subject``; TokenIssueError if it would not pass verification."""
        if not isinstance(subject, str) or not SUBJECT_PATTERN.fullmatch(subject):
            raise TokenIssueError("subject must be 1-128 characters: letters, digits, ._:@|+/=~-")
        granted = self._granted(scopes)
        if ttl > self._max_lifetime:
            raise TokenIssueError(
                f"ttl {ttl} exceeds the maximum token lifetime {self._max_lifetime}"
            )
        lifetime = int(ttl.total_seconds())
        if lifetime < 1:
            raise TokenIssueError("ttl must be at least one second")
        if token_id is None:
            # A jti lets the routing log name the token behind a pull without storing the token.
            token_id = secrets.token_urlsafe(16)
        elif not TOKEN_ID_PATTERN.fullmatch(token_id):
            raise TokenIssueError("token_id must be 1-128 printable characters without spaces")
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the token clock must return timezone-aware datetimes")
        iat = int(now.timestamp())
        claims = {
            "iss": self._issuer,
            "sub": subject,
            "aud": self._audience,
            "iat": iat,
            "exp": iat + lifetime,
            "scope": " ".join(sorted(granted)),
            "jti": token_id,
        }
        signing_input = f"{self._header_segment}.{b64url(compact_json(claims))}"
        signature = self._key.sign(signing_input.encode("ascii"))
        return f"{signing_input}.{b64url(signature)}"
