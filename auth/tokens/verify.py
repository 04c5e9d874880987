"""Verifying a partner's bearer token: ``TokenVerifier.verify`` → ``Principal`` or ``TokenInvalid``.

A token is the only thing that stands between the internet and the cases, so verification trusts
nothing the token says about how to verify it: the ``iss`` claim picks a configured issuer by exact
string match, that issuer's configuration pins the algorithms and keys, the ``kid`` header is only
ever a dictionary key, and ``jku``/``x5u``/``jwk``/``x5c`` headers are ignored (nothing is ever
fetched). ``none``, HMAC and any ``crit`` extension are refused before a key is touched.

The steps are explicit rather than library defaults: a strict parse of the header and (unverified)
payload, the issuer/algorithm/key selection, then ``jwt.decode`` with the one pinned algorithm and
key (signature, ``aud``, ``iss``, required claims), then our own checks of time against an
injected clock (pyjwt only knows the wall clock), lifetime, subject and scopes. Every refusal is a
``TokenInvalid`` with a stable ``code`` and a short message that repeats nothing from the token.

A network issuer (policy.py) is checked the same way, with its own audience (one string, never
a list: a token for the network is for nothing else), each key's validity window against the
clock, and its grant: a network token carrying any scope beyond it is refused with
``PermissionDenied`` naming the rule.

Verification is on the hot path of every partner call, so the kid → (key, allowed algorithms)
table is built once per verifier, and the clock-independent part (parse, key selection,
signature) is memoised per token string in a bounded LRU; time, audience, subject and scope
checks still run on every call.
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

import jwt
from jwt.exceptions import InvalidJTIError, InvalidSubjectError
from jwt.types import Options

from auth.errors import PermissionDenied, TokenInvalid
from auth.tokens.jose import parse_json
from auth.tokens.policy import (
    SCOPES_BY_VALUE,
    SUBJECT_PATTERN,
    SUPPORTED_ALGORITHMS,
    TOKEN_ID_PATTERN,
    KeyWindow,
    Principal,
    Scope,
    TokenPolicy,
    TrustedIssuer,
    VerificationKey,
    algorithms_for_key,
)
from auth.tokens.remote import RemoteIssuer
from common.clock import Clock

__all__ = ["DEFAULT_CACHE_SIZE", "MAX_TOKEN_LENGTH", "TokenRefusal", "TokenVerifier"]


class TokenRefusal(enum.StrEnum):
    """Why a token was refused: the stable ``code`` of its ``TokenInvalid``."""

    ALG = "token-alg"
    AUDIENCE = "token-audience"
    CLAIMS = "token-claims"
    CRIT = "token-crit"
    EXPIRED = "token-expired"
    ISSUER = "token-issuer"
    KEY_NOT_VALID = "token-key-not-valid"
    KID = "token-kid"
    LIFETIME = "token-lifetime"
    MALFORMED = "token-malformed"
    NOT_YET_VALID = "token-not-yet-valid"
    SCOPE = "token-scope"
    SIGNATURE = "token-signature"


# Partner tokens are a few hundred bytes; refusing big ones before parsing bounds the work an
# unauthenticated caller can make us do.
MAX_TOKEN_LENGTH: Final = 8 * 1024
DEFAULT_CACHE_SIZE: Final = 1024

# Compact JWS: three base64url segments without padding. The signature may be empty here so that
# an unsigned ("alg": "none") token is refused for its algorithm, which is the more useful reason.
_COMPACT_JWS: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_REQUIRED_CLAIMS: Final = ("exp", "iat", "iss", "aud", "sub", "scope")

# Time is checked below with the injected clock, so pyjwt's wall-clock checks are off; the other
# checks stay on as a second line behind ours. Built once: it is the same for every call.
_DECODE_OPTIONS: Final[Options] = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": True,
    "verify_iss": True,
    "verify_sub": True,
    "verify_jti": True,
    "strict_aud": False,
    "require": list(_REQUIRED_CLAIMS),
}
# A network token's aud is one string, the network's: a list could smuggle it into other uses.
_NETWORK_DECODE_OPTIONS: Final[Options] = {**_DECODE_OPTIONS, "strict_aud": True}
# A private instance, so that algorithms or options registered on pyjwt's global one elsewhere in
# the process cannot change how partner tokens are checked.
_PYJWT: Final = jwt.PyJWT()


@dataclass(frozen=True, slots=True)
class _IssuerTable:
    issuer: str
    algorithms: frozenset[str]
    keys: Mapping[str, tuple[VerificationKey, frozenset[str]]]
    audience: str
    network: bool  # a network issuer: one-string aud, grant and key windows below
    grant: frozenset[Scope] | None
    windows: Mapping[str, KeyWindow]
    subjects: re.Pattern[str] | None = None
    remote: RemoteIssuer | None = None  # keys fetched: still held when a memoised token is used


def _issuer_table(
    trusted: TrustedIssuer, audience: str, remote: RemoteIssuer | None = None
) -> _IssuerTable:
    pinned = frozenset(trusted.algorithms)
    keys: dict[str, tuple[VerificationKey, frozenset[str]]] = {}
    for kid, key in trusted.keys.items():
        allowed = algorithms_for_key(key) & pinned
        if kid in trusted.key_algorithms:
            allowed &= frozenset(trusted.key_algorithms[kid])
        keys[kid] = (key, allowed)
    network = trusted.network_audience is not None
    return _IssuerTable(
        issuer=trusted.issuer,
        algorithms=pinned,
        keys=keys,
        audience=trusted.network_audience or audience,
        network=network,
        grant=trusted.grant,
        windows=trusted.key_windows,
        subjects=trusted.subjects,
        remote=remote,
    )


# pyjwt's exceptions, most specific first (several derive from others), mapped to our codes;
# MissingRequiredClaimError is handled before this table, to name the claim.
_PYJWT_ERRORS: Final[tuple[tuple[type[Exception], TokenRefusal, str], ...]] = (
    (jwt.InvalidSignatureError, TokenRefusal.SIGNATURE, "signature does not verify"),
    (jwt.InvalidAlgorithmError, TokenRefusal.ALG, "algorithm not allowed"),
    (jwt.InvalidAudienceError, TokenRefusal.AUDIENCE, "token is not for this node"),
    (jwt.InvalidIssuerError, TokenRefusal.ISSUER, "issuer is not trusted"),
    (jwt.ExpiredSignatureError, TokenRefusal.EXPIRED, "token has expired"),
    (jwt.ImmatureSignatureError, TokenRefusal.NOT_YET_VALID, "token is not valid yet"),
    (InvalidSubjectError, TokenRefusal.CLAIMS, "sub must be a string"),
    (InvalidJTIError, TokenRefusal.CLAIMS, "jti must be a string"),
    (jwt.InvalidKeyError, TokenRefusal.SIGNATURE, "signature does not verify"),
    (jwt.InvalidTokenError, TokenRefusal.MALFORMED, "token is malformed"),
    (jwt.PyJWTError, TokenRefusal.MALFORMED, "token is malformed"),
)


class TokenVerifier:
    """Verifies partner tokens against a ``TokenPolicy``; ``verify`` returns a ``Principal``."""

    __slots__ = (
        "_audience",
        "_authenticate",
        "_clock",
        "_issuers",
        "_leeway",
        "_max_lifetime",
        "_remote",
        "_remote_tables",
        "policy",
    )

    def __init__(
        self,
        policy: TokenPolicy,
        clock: Clock,
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._leeway = policy.leeway.total_seconds()
        self._max_lifetime = policy.max_lifetime.total_seconds()
        self._audience = policy.audience
        self._issuers = {
            iss: _issuer_table(trusted, policy.audience)
            for iss, trusted in policy.issuers.items()
            if isinstance(trusted, TrustedIssuer)
        }
        self._remote = {
            iss: remote
            for iss, remote in policy.issuers.items()
            if isinstance(remote, RemoteIssuer)
        }
        # Each remote issuer's table, rebuilt when it holds a new key set.
        self._remote_tables: dict[str, tuple[TrustedIssuer, _IssuerTable]] = {}
        # A partner sends the same token on every call until it expires. Whether a given token
        # string is authentic depends only on that string and this (immutable) policy, so the
        # authentication step is memoised; the clock-dependent and claim checks run on every call.
        # Only successes are cached (lru_cache never caches exceptions), so only tokens signed by
        # a trusted issuer can occupy it; its size bounds the memory (≤ 8 KiB per entry).
        self._authenticate: Callable[[str], tuple[_IssuerTable, str, Mapping[str, Any]]]
        if cache_size > 0:
            self._authenticate = functools.lru_cache(maxsize=cache_size)(self._authenticate_now)
        else:
            self._authenticate = self._authenticate_now

    def verify(self, token: str) -> Principal:
        """The caller proven by ``token``; TokenInvalid (with a precise ``code``) if refused."""
        if not isinstance(token, str):
            raise _refuse(TokenRefusal.MALFORMED, "token must be a string")
        if len(token) > MAX_TOKEN_LENGTH:
            raise _refuse(
                TokenRefusal.MALFORMED, f"token longer than {MAX_TOKEN_LENGTH} characters"
            )
        issuer, kid, claims = self._authenticate(token)
        return self._check_claims(claims, issuer, kid)

    def _authenticate_now(self, token: str) -> tuple[_IssuerTable, str, Mapping[str, Any]]:
        """(issuer, kid, signed claims) of an authentic token; no time checks (they need the
        clock)."""
        if not _COMPACT_JWS.fullmatch(token):
            raise _refuse(TokenRefusal.MALFORMED, "not a compact JWS (three base64url segments)")
        header_segment, payload_segment, _ = token.split(".")
        alg, kid = _algorithm_and_kid(_decode_segment(header_segment, "header"))
        claims = _decode_segment(payload_segment, "payload")
        issuer, key = self._select_key(claims, alg, kid)
        try:
            payload = _PYJWT.decode(
                token,
                key=key,
                algorithms=[alg],
                options=_NETWORK_DECODE_OPTIONS if issuer.network else _DECODE_OPTIONS,
                audience=issuer.audience,
                issuer=issuer.issuer,
                leeway=self._leeway,
            )
        except jwt.PyJWTError as exc:
            raise _from_pyjwt(exc) from None
        # Read-only: a cached payload is shared by every later call with the same token.
        return issuer, kid, MappingProxyType(payload)

    def _select_key(
        self, claims: Mapping[str, Any], alg: str, kid: str
    ) -> tuple[_IssuerTable, VerificationKey]:
        """The issuer named by the unverified ``iss`` and its key for ``kid`` and ``alg``.

        The issuer is chosen by exact match on the unverified iss; its signature is checked next
        with that issuer's own key, so a forged iss gains nothing.
        """
        iss = claims.get("iss")
        if iss is None:
            raise _refuse(TokenRefusal.CLAIMS, "required claim missing: iss")
        if not isinstance(iss, str):
            raise _refuse(TokenRefusal.CLAIMS, "iss must be a string")
        issuer = self._issuers.get(iss)
        if issuer is None:
            remote = self._remote.get(iss)
            if remote is None:
                raise _refuse(TokenRefusal.ISSUER, "issuer is not trusted")
            issuer = self._remote_table(remote, remote.current())
            if kid not in issuer.keys:  # rotated at the IdP? a refresh is scheduled, never awaited
                issuer = self._remote_table(remote, remote.on_unknown_kid())
        if alg not in issuer.algorithms:
            raise _refuse(TokenRefusal.ALG, "algorithm not allowed for this issuer")
        entry = issuer.keys.get(kid)
        if entry is None:
            raise _refuse(TokenRefusal.KID, "kid is not a key of this issuer")
        key, key_algorithms = entry
        if alg not in key_algorithms:
            raise _refuse(TokenRefusal.ALG, "algorithm does not match the key")
        return issuer, key

    def _remote_table(self, remote: RemoteIssuer, trusted: TrustedIssuer) -> _IssuerTable:
        held = self._remote_tables.get(remote.issuer)
        if held is not None and held[0] is trusted:
            return held[1]
        table = _issuer_table(trusted, self._audience, remote)
        self._remote_tables[remote.issuer] = (trusted, table)
        return table

    def _check_claims(self, claims: Mapping[str, Any], issuer: _IssuerTable, kid: str) -> Principal:
        exp = self._check_times(claims)
        if not _audience_ok(claims.get("aud"), issuer.audience, strict=issuer.network):
            raise _refuse(TokenRefusal.AUDIENCE, "token is not for this node")
        if claims.get("iss") != issuer.issuer:
            raise _refuse(TokenRefusal.ISSUER, "issuer is not trusted")
        if issuer.remote is not None:  # the keys held now (a memoised token may be older)
            held = issuer.remote.current()
            if kid not in held.keys:
                raise _refuse(TokenRefusal.KID, "kid is no longer a key of this issuer")
        window = issuer.windows.get(kid)
        if window is not None and (problem := window.problem(self._clock())) is not None:
            raise _refuse(TokenRefusal.KEY_NOT_VALID, problem)
        sub, jti = _subject_and_token_id(claims)
        scopes = _parse_scopes(claims.get("scope"))
        if issuer.grant is not None and not scopes <= issuer.grant:
            raise _beyond_grant(issuer, scopes - issuer.grant)
        if issuer.subjects is not None and not issuer.subjects.fullmatch(sub):
            raise PermissionDenied(
                "the token's subject is not one this issuer may name", code="token-subject"
            )
        return Principal(
            subject=sub,
            issuer=issuer.issuer,
            scopes=scopes,
            token_id=jti,
            expires_at=datetime.fromtimestamp(exp, UTC),
        )

    def _check_times(self, claims: Mapping[str, Any]) -> float:
        """``exp`` after checking exp, nbf, iat and the lifetime against the injected clock."""
        now_dt = self._clock()
        if now_dt.tzinfo is None:
            # A naive datetime's timestamp() is local time: a silent hour-sized error.
            raise ValueError("the token clock must return timezone-aware datetimes")
        now = now_dt.timestamp()
        leeway = self._leeway

        exp = _numeric_date(claims, "exp")
        iat = _numeric_date(claims, "iat")
        nbf = _numeric_date(claims, "nbf") if "nbf" in claims else None
        if exp <= now - leeway:
            raise _refuse(TokenRefusal.EXPIRED, "token has expired")
        if nbf is not None and nbf > now + leeway:
            raise _refuse(TokenRefusal.NOT_YET_VALID, "token is not valid yet (nbf)")
        if iat > now + leeway:
            raise _refuse(TokenRefusal.NOT_YET_VALID, "token is issued in the future (iat)")
        if exp <= iat:
            raise _refuse(TokenRefusal.CLAIMS, "exp must be after iat")
        # With iat at most now + leeway (checked above), this also bounds exp - now by
        # max_lifetime + leeway: a token minted by a clock slightly ahead of ours still passes.
        if exp - iat > self._max_lifetime:
            raise _refuse(TokenRefusal.LIFETIME, "token lifetime exceeds the maximum")
        return exp


def _beyond_grant(issuer: _IssuerTable, beyond: frozenset[Scope]) -> PermissionDenied:
    granted, extra = ", ".join(sorted(issuer.grant or ())), ", ".join(sorted(beyond))
    if issuer.network:
        return PermissionDenied(
            f"a network token grants only {granted} (the manifest's network_readers); "
            f"it carries {extra}",
            code="token-network-scope",
        )
    return PermissionDenied(
        f"tokens of this issuer grant only {granted} (its trust file grant); it carries {extra}",
        code="token-issuer-scope",
    )


def _algorithm_and_kid(header: Mapping[str, Any]) -> tuple[str, str]:
    """The header's ``alg`` and ``kid``: nothing in a header selects a key or a URL.

    It can only be refused, and it is checked before the payload is read.
    """
    if "crit" in header:
        raise _refuse(TokenRefusal.CRIT, "critical header extensions are not supported")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in SUPPORTED_ALGORITHMS:
        raise _refuse(TokenRefusal.ALG, "algorithm not allowed")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise _refuse(TokenRefusal.KID, "kid header missing or not a string")
    return alg, kid


def _audience_ok(aud: Any, audience: str, *, strict: bool = False) -> bool:
    """Whether ``aud`` (a string, or unless ``strict`` a list of strings) names ``audience``."""
    if isinstance(aud, str):
        return aud == audience
    if isinstance(aud, list) and not strict:
        return all(isinstance(a, str) for a in aud) and audience in aud
    return False


def _subject_and_token_id(claims: Mapping[str, Any]) -> tuple[str, str | None]:
    sub = claims.get("sub")
    if not isinstance(sub, str):
        raise _refuse(TokenRefusal.CLAIMS, "sub must be a string")
    if not SUBJECT_PATTERN.fullmatch(sub):
        raise _refuse(TokenRefusal.CLAIMS, "sub is empty, too long or has unusual characters")
    jti = claims.get("jti")
    if jti is not None and not (isinstance(jti, str) and TOKEN_ID_PATTERN.fullmatch(jti)):
        raise _refuse(TokenRefusal.CLAIMS, "jti must be a short printable string")
    return sub, jti


def _refuse(code: TokenRefusal, message: str) -> TokenInvalid:
    return TokenInvalid(message, code=code.value)


def _from_pyjwt(exc: jwt.PyJWTError) -> TokenInvalid:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        # The claim name comes from our own required list, not from the token.
        return _refuse(TokenRefusal.CLAIMS, f"required claim missing: {exc.claim}")
    for kind, code, message in _PYJWT_ERRORS:
        if isinstance(exc, kind):
            return _refuse(code, message)
    return _refuse(TokenRefusal.MALFORMED, "token is malformed")


def _decode_segment(segment: str, name: str) -> dict[str, Any]:
    """A base64url JSON object segment, strictly: no padding, no duplicate members, no NaN."""
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise _refuse(TokenRefusal.MALFORMED, f"{name} is not base64url") from None
    try:
        value = parse_json(raw)
    except (ValueError, RecursionError):
        raise _refuse(TokenRefusal.MALFORMED, f"{name} is not JSON") from None
    if not isinstance(value, dict):
        raise _refuse(TokenRefusal.MALFORMED, f"{name} is not a JSON object")
    return value


def _numeric_date(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    # bool is an int in Python, and true/false are not dates.
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:
            # JSON integers are unbounded; one beyond float range is no date either.
            raise _refuse(TokenRefusal.CLAIMS, f"{name} is out of range") from None
    if type(value) is float and math.isfinite(value):
        return value
    raise _refuse(TokenRefusal.CLAIMS, f"{name} must be a number of seconds")


def _parse_scopes(value: Any) -> frozenset[Scope]:
    # RFC 8693 says a space-separated string; some issuers send a list. Both are accepted, strictly.
    if isinstance(value, str):
        names: list[Any] = value.split(" ")
    elif isinstance(value, list):
        names = value
    else:
        raise _refuse(TokenRefusal.CLAIMS, "scope must be a string or a list of strings")
    if not names or names == [""]:
        raise _refuse(TokenRefusal.SCOPE, "token grants no scope")
    scopes: set[Scope] = set()
    for name in names:
        if not isinstance(name, str):
            raise _refuse(TokenRefusal.CLAIMS, "scope must be a string or a list of strings")
        scope = SCOPES_BY_VALUE.get(name)
        if scope is None:
            raise _refuse(TokenRefusal.SCOPE, "unknown scope")
        scopes.add(scope)
    return frozenset(scopes)
