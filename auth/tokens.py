"""Partner bearer tokens (JWT): verification for every partner RPC, and the node's own issuer.

Law-enforcement partners and coordinators call a node with a JWT. A token is the only thing that
stands between the internet and the cases, so verification trusts nothing the token says about
how to verify it: the ``iss`` claim picks a configured issuer by exact string match, that issuer's
configuration pins the algorithms and keys, the ``kid`` header is only ever a dictionary key, and
``jku``/``x5u``/``jwk``/``x5c`` headers are ignored (nothing is ever fetched). ``none``, HMAC and
any ``crit`` extension are refused before a key is touched.

The steps are done explicitly rather than left to library defaults: a strict parse of the header
and (unverified) payload, the issuer/algorithm/key selection, then ``jwt.decode`` with the one
pinned algorithm and key (signature, ``aud``, ``iss``, required claims), then our own checks of
time against an injected clock (pyjwt only knows the wall clock), lifetime, subject and scopes.
Every refusal is a ``TokenInvalid`` with a stable ``code`` and a short message that repeats
nothing from the token, so it is safe to return to the caller and to log.

Verification is on the hot path of every partner call, so keys are parsed once (configuration
time) into ``cryptography`` objects, the kid → (key, allowed algorithms) table is built once per
``TokenVerifier``, and the clock-independent part (parse, key selection, signature) is memoised
per token string in a bounded LRU: a partner presents the same token on every call until it
expires, while time, audience, subject and scope checks still run on every call.
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
import json
import math
import os
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import (
    SECP256R1,
    SECP384R1,
    SECP521R1,
    EllipticCurvePublicKey,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.exceptions import InvalidJTIError, InvalidSubjectError
from jwt.types import Options

from auth import strict_json
from auth.errors import PermissionDenied, TokenInvalid, TokenIssueError, TrustConfigError
from auth.keys import PublicKey, SigningKey
from auth.strict_json import StrictJsonError
from common.clock import Clock, system_clock

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_LEEWAY",
    "DEFAULT_MAX_LIFETIME",
    "MAX_TOKEN_LENGTH",
    "SUPPORTED_ALGORITHMS",
    "Principal",
    "Scope",
    "TokenIssuer",
    "TokenPolicy",
    "TokenVerifier",
    "TrustedIssuer",
    "VerificationKey",
    "load_jwks_issuers",
    "node_issuer",
    "require",
    "system_clock",
]


class Scope(enum.StrEnum):
    """What a token allows; ``ADMIN`` implies every other scope."""

    REPORTS_SUBMIT = "reports:submit"
    CASES_PULL = "cases:pull"
    LOG_READ = "log:read"
    ADMIN = "admin"


VerificationKey = Ed25519PublicKey | RSAPublicKey | EllipticCurvePublicKey

# Asymmetric algorithms only: an issuer can never be configured with HS* (where a public key could
# be abused as the HMAC secret) or ``none``.
SUPPORTED_ALGORITHMS: Final = frozenset(
    {"EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)
_RSA_ALGORITHMS: Final = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALGORITHM_BY_CURVE: Final[Mapping[str, str]] = MappingProxyType(
    {SECP256R1.name: "ES256", SECP384R1.name: "ES384", SECP521R1.name: "ES512"}
)
MIN_RSA_BITS: Final = 2048

DEFAULT_LEEWAY: Final = timedelta(seconds=30)
DEFAULT_MAX_LIFETIME: Final = timedelta(minutes=15)
# Partner tokens are a few hundred bytes; refusing big ones before parsing bounds the work an
# unauthenticated caller can make us do.
MAX_TOKEN_LENGTH: Final = 8 * 1024
MAX_JWKS_FILE_BYTES: Final = 1024 * 1024
DEFAULT_CACHE_SIZE: Final = 1024

# Compact JWS: three base64url segments without padding. The signature may be empty here so that
# an unsigned ("alg": "none") token is refused for its algorithm, which is the more useful reason.
_COMPACT_JWS: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# Subjects and token ids end up in the routing log and in queries (always as bound parameters, but
# still): printable, no spaces or quotes, bounded. Covers ids, URLs, e-mails, UUIDs and "a|b" ids.
_SUBJECT: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@|+/=~-]{0,127}")
_TOKEN_ID: Final = re.compile(r"[\x21-\x7e]{1,128}")
_SCOPES_BY_VALUE: Final[Mapping[str, Scope]] = MappingProxyType({s.value: s for s in Scope})
_REQUIRED_CLAIMS: Final = ("exp", "iat", "iss", "aud", "sub", "scope")
# RFC 7517 private key members; a trust file must hold public keys only.
_PRIVATE_JWK_MEMBERS: Final = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")

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
# A private instance, so that algorithms or options registered on pyjwt's global one elsewhere in
# the process cannot change how partner tokens are checked.
_PYJWT: Final = jwt.PyJWT()


# --- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustedIssuer:
    """One issuer we accept tokens from: its exact ``iss``, its keys by kid, its pinned algorithms.

    ``key_algorithms`` optionally narrows a kid to fewer algorithms than the issuer's (a JWK's own
    ``alg``). Validated at construction, so a verifier never meets an unusable key.
    """

    issuer: str
    keys: Mapping[str, VerificationKey]
    algorithms: tuple[str, ...]
    key_algorithms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.issuer, str) or not self.issuer:
            raise TrustConfigError("issuer: must be a non-empty string")
        where = f"issuer {self.issuer!r}"
        algorithms = tuple(self.algorithms)
        if not algorithms:
            raise TrustConfigError(f"{where}: algorithms: at least one algorithm is required")
        for i, alg in enumerate(algorithms):
            problem = _algorithm_problem(alg)
            if problem:
                raise TrustConfigError(f"{where}: algorithms[{i}]: {problem}")
        if not self.keys:
            raise TrustConfigError(f"{where}: keys: at least one key is required")
        usable: dict[str, frozenset[str]] = {}
        for kid, key in self.keys.items():
            if not isinstance(kid, str) or not kid:
                raise TrustConfigError(f"{where}: keys: a kid must be a non-empty string")
            try:
                usable[kid] = _key_algorithms(key) & set(algorithms)
            except ValueError as exc:
                raise TrustConfigError(f"{where}: keys[{kid!r}]: {exc}") from None
            if not usable[kid]:
                raise TrustConfigError(
                    f"{where}: keys[{kid!r}]: the key fits none of the issuer's algorithms"
                )
        narrowed: dict[str, tuple[str, ...]] = {}
        for kid, given in self.key_algorithms.items():
            if kid not in self.keys:
                raise TrustConfigError(f"{where}: key_algorithms[{kid!r}]: no such key")
            algs = tuple(given)
            if not algs or not set(algs) <= set(algorithms) or not set(algs) & usable[kid]:
                raise TrustConfigError(
                    f"{where}: key_algorithms[{kid!r}]: must be issuer algorithms the key fits"
                )
            narrowed[kid] = algs
        # Frozen in fact, not only in name: the verifier's tables are built from these once.
        object.__setattr__(self, "algorithms", algorithms)
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))
        object.__setattr__(self, "key_algorithms", MappingProxyType(narrowed))


@dataclass(frozen=True)
class TokenPolicy:
    """What this node accepts: tokens for ``audience`` from ``issuers`` (exact ``iss`` → issuer)."""

    audience: str
    issuers: Mapping[str, TrustedIssuer]
    leeway: timedelta = DEFAULT_LEEWAY
    max_lifetime: timedelta = DEFAULT_MAX_LIFETIME

    def __post_init__(self) -> None:
        if not isinstance(self.audience, str) or not self.audience:
            raise TrustConfigError("audience: must be a non-empty string")
        for iss, trusted in self.issuers.items():
            if not isinstance(trusted, TrustedIssuer) or trusted.issuer != iss:
                raise TrustConfigError(
                    f"issuers[{iss!r}]: must be the TrustedIssuer for exactly that iss"
                )
        if self.leeway < timedelta(0) or self.leeway > timedelta(minutes=5):
            raise TrustConfigError("leeway: must be between 0 and 5 minutes")
        if self.max_lifetime <= timedelta(0):
            raise TrustConfigError("max_lifetime: must be positive")
        object.__setattr__(self, "issuers", MappingProxyType(dict(self.issuers)))


def node_issuer(key_public: PublicKey, issuer: str) -> TrustedIssuer:
    """The node's own issuer (tokens from ``TokenIssuer``): EdDSA, kid = the node key id."""
    key = Ed25519PublicKey.from_public_bytes(key_public.raw)
    return TrustedIssuer(issuer=issuer, keys={key_public.key_id: key}, algorithms=("EdDSA",))


def load_jwks_issuers(path: str | os.PathLike[str]) -> dict[str, TrustedIssuer]:
    """Trusted external issuers from a JSON file; never touches the network.

    ``{"issuers": [{"iss": …, "algorithms": ["RS256"], "jwks": {"keys": [JWK, …]}}]}``. Keys are
    parsed here, once. Any problem is a ``TrustConfigError`` naming the file and field path.
    """
    p = Path(path)
    try:
        with p.open("rb") as fh:
            data = fh.read(MAX_JWKS_FILE_BYTES + 1)
    except FileNotFoundError:
        raise TrustConfigError(f"{p}: trusted issuers file not found") from None
    except IsADirectoryError:
        raise TrustConfigError(f"{p}: is a directory, not a trusted issuers file") from None
    except OSError as exc:
        raise TrustConfigError(f"{p}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_JWKS_FILE_BYTES:
        raise TrustConfigError(f"{p}: larger than {MAX_JWKS_FILE_BYTES} bytes")
    try:
        document = _strict_json(data)
    except RecursionError:
        raise TrustConfigError(f"{p}: not valid JSON: nested too deeply") from None
    except ValueError as exc:
        raise TrustConfigError(f"{p}: not valid JSON: {_json_reason(exc)}") from None
    try:
        return _parse_issuers_document(document)
    except TrustConfigError as exc:
        raise TrustConfigError(f"{p}: {exc.message}") from None


def _parse_issuers_document(document: Any) -> dict[str, TrustedIssuer]:
    if not isinstance(document, dict):
        raise TrustConfigError("(top level): must be an object")
    _only_members(document, {"issuers"}, "(top level)")
    entries = document.get("issuers")
    if not isinstance(entries, list):
        raise TrustConfigError("issuers: must be a list")
    result: dict[str, TrustedIssuer] = {}
    for i, entry in enumerate(entries):
        trusted = _parse_issuer(entry, f"issuers[{i}]")
        if trusted.issuer in result:
            raise TrustConfigError(f"issuers[{i}].iss: duplicate issuer")
        result[trusted.issuer] = trusted
    return result


def _parse_issuer(entry: Any, where: str) -> TrustedIssuer:
    if not isinstance(entry, dict):
        raise TrustConfigError(f"{where}: must be an object")
    _only_members(entry, {"iss", "algorithms", "jwks"}, where)
    iss = entry.get("iss")
    if not isinstance(iss, str) or not iss:
        raise TrustConfigError(f"{where}.iss: must be a non-empty string")
    algorithms = entry.get("algorithms")
    if not isinstance(algorithms, list) or not algorithms:
        raise TrustConfigError(f"{where}.algorithms: must be a non-empty list")
    for j, alg in enumerate(algorithms):
        problem = _algorithm_problem(alg)
        if problem:
            raise TrustConfigError(f"{where}.algorithms[{j}]: {problem}")
    if len(set(algorithms)) != len(algorithms):
        raise TrustConfigError(f"{where}.algorithms: duplicate algorithm")
    jwks = entry.get("jwks")
    if not isinstance(jwks, dict):
        raise TrustConfigError(f"{where}.jwks: must be an object")
    jwk_list = jwks.get("keys")
    if not isinstance(jwk_list, list) or not jwk_list:
        raise TrustConfigError(f"{where}.jwks.keys: must be a non-empty list")
    keys: dict[str, VerificationKey] = {}
    narrowed: dict[str, tuple[str, ...]] = {}
    for j, jwk_data in enumerate(jwk_list):
        key_where = f"{where}.jwks.keys[{j}]"
        kid, key, usable = _parse_jwk(jwk_data, key_where, tuple(algorithms))
        if kid in keys:
            raise TrustConfigError(f"{key_where}.kid: duplicate kid")
        keys[kid] = key
        if set(usable) != set(algorithms):
            narrowed[kid] = usable
    return TrustedIssuer(
        issuer=iss, keys=keys, algorithms=tuple(algorithms), key_algorithms=narrowed
    )


def _parse_jwk(
    data: Any, where: str, algorithms: tuple[str, ...]
) -> tuple[str, VerificationKey, tuple[str, ...]]:
    """One JWK → (kid, key, the issuer's algorithms this key may verify)."""
    if not isinstance(data, dict):
        raise TrustConfigError(f"{where}: must be an object")
    kid = data.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TrustConfigError(f"{where}.kid: must be a non-empty string")
    kty = data.get("kty")
    if kty == "oct":
        raise TrustConfigError(f"{where}.kty: symmetric keys are never trusted")
    if kty not in ("RSA", "EC", "OKP"):
        raise TrustConfigError(f"{where}.kty: must be one of RSA, EC, OKP")
    for member in _PRIVATE_JWK_MEMBERS:
        if member in data:
            raise TrustConfigError(f"{where}.{member}: private key material in a trust file")
    if "use" in data and data["use"] != "sig":
        raise TrustConfigError(f"{where}.use: must be 'sig'")
    key_ops = data.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise TrustConfigError(f"{where}.key_ops: must be a list that includes 'verify'")
    jwk_alg = data.get("alg")
    if jwk_alg is not None and jwk_alg not in algorithms:
        raise TrustConfigError(f"{where}.alg: not one of the issuer's algorithms")
    crv = data.get("crv")
    # PyJWK only needs an algorithm of the right family to pick the parser; which algorithms the
    # key may then verify is decided below from the parsed key, not from this choice.
    if kty == "RSA":
        parser_alg = "RS256"
    elif kty == "EC":
        if crv not in ("P-256", "P-384", "P-521"):
            raise TrustConfigError(f"{where}.crv: must be one of P-256, P-384, P-521")
        parser_alg = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}[crv]
    else:
        if crv != "Ed25519":
            raise TrustConfigError(f"{where}.crv: must be Ed25519")
        parser_alg = "EdDSA"
    try:
        key = jwt.PyJWK(data, algorithm=parser_alg).key
    except (jwt.PyJWTError, TypeError, ValueError):
        # pyjwt's messages quote the whole JWK; ours names the place instead.
        raise TrustConfigError(f"{where}: not a valid {kty} public key") from None
    try:
        usable = _key_algorithms(key)
    except ValueError as exc:
        raise TrustConfigError(f"{where}: {exc}") from None
    allowed = tuple(a for a in algorithms if a in usable and (jwk_alg is None or a == jwk_alg))
    if not allowed:
        raise TrustConfigError(f"{where}: the key fits none of the issuer's algorithms")
    return kid, key, allowed


def _only_members(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    # A misspelt field would otherwise be silently ignored in a security configuration.
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise TrustConfigError(f"{where}: unknown field {unknown[0]!r}")


def _algorithm_problem(alg: object) -> str | None:
    if not isinstance(alg, str):
        return "must be a string"
    if alg.upper().startswith("HS") or alg.lower() == "none":
        return f"{alg!r} is never accepted (only asymmetric signatures)"
    if alg not in SUPPORTED_ALGORITHMS:
        return f"unsupported algorithm {alg!r}"
    return None


def _key_algorithms(key: object) -> frozenset[str]:
    """The algorithms a public key can verify; ValueError for a key we do not accept."""
    if isinstance(key, Ed25519PublicKey):
        return frozenset({"EdDSA"})
    if isinstance(key, RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} required")
        return _RSA_ALGORITHMS
    if isinstance(key, EllipticCurvePublicKey):
        alg = _EC_ALGORITHM_BY_CURVE.get(key.curve.name)
        if alg is None:
            raise ValueError(f"unsupported elliptic curve {key.curve.name}")
        return frozenset({alg})
    raise ValueError(f"not a supported public key ({type(key).__name__})")


# --- verification --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """Who is calling, as proven by a verified token."""

    subject: str
    issuer: str
    scopes: frozenset[Scope]
    token_id: str | None
    expires_at: datetime

    def has(self, scope: Scope) -> bool:
        return scope in self.scopes or Scope.ADMIN in self.scopes


def require(principal: Principal, scope: Scope) -> None:
    """Return if ``principal`` may use ``scope``; raise PermissionDenied naming the scope if not."""
    if not principal.has(scope):
        raise PermissionDenied(f"the token does not grant scope {scope.value}")


@dataclass(frozen=True, slots=True)
class _IssuerTable:
    issuer: str
    algorithms: frozenset[str]
    keys: Mapping[str, tuple[VerificationKey, frozenset[str]]]


# pyjwt's exceptions, most specific first (several derive from others), mapped to our codes;
# MissingRequiredClaimError is handled before this table, to name the claim.
_PYJWT_ERRORS: Final[tuple[tuple[type[Exception], str, str], ...]] = (
    (jwt.InvalidSignatureError, "token-signature", "signature does not verify"),
    (jwt.InvalidAlgorithmError, "token-alg", "algorithm not allowed"),
    (jwt.InvalidAudienceError, "token-audience", "token is not for this node"),
    (jwt.InvalidIssuerError, "token-issuer", "issuer is not trusted"),
    (jwt.ExpiredSignatureError, "token-expired", "token has expired"),
    (jwt.ImmatureSignatureError, "token-not-yet-valid", "token is not valid yet"),
    (InvalidSubjectError, "token-claims", "sub must be a string"),
    (InvalidJTIError, "token-claims", "jti must be a string"),
    (jwt.InvalidKeyError, "token-signature", "signature does not verify"),
    (jwt.InvalidTokenError, "token-malformed", "token is malformed"),
    (jwt.PyJWTError, "token-malformed", "token is malformed"),
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
        self._audience = policy.audience
        self._leeway = policy.leeway.total_seconds()
        self._max_lifetime = policy.max_lifetime.total_seconds()
        self._issuers: dict[str, _IssuerTable] = {}
        for iss, trusted in policy.issuers.items():
            pinned = frozenset(trusted.algorithms)
            keys: dict[str, tuple[VerificationKey, frozenset[str]]] = {}
            for kid, key in trusted.keys.items():
                allowed = _key_algorithms(key) & pinned
                if kid in trusted.key_algorithms:
                    allowed &= frozenset(trusted.key_algorithms[kid])
                keys[kid] = (key, allowed)
            self._issuers[iss] = _IssuerTable(iss, pinned, keys)
        # A partner sends the same token on every call until it expires. Whether a given token
        # string is authentic depends only on that string and this (immutable) policy, so the
        # authentication step is memoised; the clock-dependent and claim checks run on every call.
        # Only successes are cached (lru_cache never caches exceptions), so only tokens signed by
        # a trusted issuer can occupy it; its size bounds the memory (≤ 8 KiB per entry).
        self._authenticate: Callable[[str], tuple[str, Mapping[str, Any]]]
        if cache_size > 0:
            self._authenticate = functools.lru_cache(maxsize=cache_size)(self._authenticate_now)
        else:
            self._authenticate = self._authenticate_now

    def verify(self, token: str) -> Principal:
        """The caller proven by ``token``; TokenInvalid (with a precise ``code``) if refused."""
        if not isinstance(token, str):
            raise _refuse("token-malformed", "token must be a string")
        if len(token) > MAX_TOKEN_LENGTH:
            raise _refuse("token-malformed", f"token longer than {MAX_TOKEN_LENGTH} characters")
        issuer, claims = self._authenticate(token)
        return self._check_claims(claims, issuer)

    def _authenticate_now(self, token: str) -> tuple[str, Mapping[str, Any]]:
        """(issuer, signed claims) of an authentic token; no time checks (those need the clock)."""
        if not _COMPACT_JWS.fullmatch(token):
            raise _refuse("token-malformed", "not a compact JWS (three base64url segments)")
        header_segment, payload_segment, _ = token.split(".")
        header = _decode_segment(header_segment, "header")

        # Header first: nothing in it selects a key or a URL; it can only be refused.
        if "crit" in header:
            raise _refuse("token-crit", "critical header extensions are not supported")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in SUPPORTED_ALGORITHMS:
            raise _refuse("token-alg", "algorithm not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise _refuse("token-kid", "kid header missing or not a string")

        # The issuer is chosen by exact match on the unverified iss; its signature is checked
        # next with that issuer's own key, so a forged iss gains nothing.
        claims = _decode_segment(payload_segment, "payload")
        iss = claims.get("iss")
        if iss is None:
            raise _refuse("token-claims", "required claim missing: iss")
        if not isinstance(iss, str):
            raise _refuse("token-claims", "iss must be a string")
        issuer = self._issuers.get(iss)
        if issuer is None:
            raise _refuse("token-issuer", "issuer is not trusted")
        if alg not in issuer.algorithms:
            raise _refuse("token-alg", "algorithm not allowed for this issuer")
        entry = issuer.keys.get(kid)
        if entry is None:
            raise _refuse("token-kid", "kid is not a key of this issuer")
        key, key_algorithms = entry
        if alg not in key_algorithms:
            raise _refuse("token-alg", "algorithm does not match the key")

        try:
            payload = _PYJWT.decode(
                token,
                key=key,
                algorithms=[alg],
                options=_DECODE_OPTIONS,
                audience=self._audience,
                issuer=issuer.issuer,
                leeway=self._leeway,
            )
        except jwt.PyJWTError as exc:
            raise _from_pyjwt(exc) from None
        # Read-only: a cached payload is shared by every later call with the same token.
        return issuer.issuer, MappingProxyType(payload)

    def _check_claims(self, claims: Mapping[str, Any], issuer: str) -> Principal:
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
            raise _refuse("token-expired", "token has expired")
        if nbf is not None and nbf > now + leeway:
            raise _refuse("token-not-yet-valid", "token is not valid yet (nbf)")
        if iat > now + leeway:
            raise _refuse("token-not-yet-valid", "token is issued in the future (iat)")
        if exp <= iat:
            raise _refuse("token-claims", "exp must be after iat")
        # With iat at most now + leeway (checked above), this also bounds exp - now by
        # max_lifetime + leeway: a token minted by a clock slightly ahead of ours still passes.
        if exp - iat > self._max_lifetime:
            raise _refuse("token-lifetime", "token lifetime exceeds the maximum")

        aud = claims.get("aud")
        if isinstance(aud, str):
            aud_ok = aud == self._audience
        elif isinstance(aud, list):
            aud_ok = all(isinstance(a, str) for a in aud) and self._audience in aud
        else:
            aud_ok = False
        if not aud_ok:
            raise _refuse("token-audience", "token is not for this node")
        if claims.get("iss") != issuer:
            raise _refuse("token-issuer", "issuer is not trusted")

        sub = claims.get("sub")
        if not isinstance(sub, str):
            raise _refuse("token-claims", "sub must be a string")
        if not _SUBJECT.fullmatch(sub):
            raise _refuse("token-claims", "sub is empty, too long or has unusual characters")
        jti = claims.get("jti")
        if jti is not None and not (isinstance(jti, str) and _TOKEN_ID.fullmatch(jti)):
            raise _refuse("token-claims", "jti must be a short printable string")

        return Principal(
            subject=sub,
            issuer=issuer,
            scopes=_parse_scopes(claims.get("scope")),
            token_id=jti,
            expires_at=datetime.fromtimestamp(exp, UTC),
        )


def _refuse(code: str, message: str) -> TokenInvalid:
    return TokenInvalid(message, code=code)


def _from_pyjwt(exc: jwt.PyJWTError) -> TokenInvalid:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        # The claim name comes from our own required list, not from the token.
        return _refuse("token-claims", f"required claim missing: {exc.claim}")
    for kind, code, message in _PYJWT_ERRORS:
        if isinstance(exc, kind):
            return _refuse(code, message)
    return _refuse("token-malformed", "token is malformed")


def _decode_segment(segment: str, name: str) -> dict[str, Any]:
    """A base64url JSON object segment, strictly: no padding, no duplicate members, no NaN."""
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise _refuse("token-malformed", f"{name} is not base64url") from None
    try:
        value = _strict_json(raw)
    except (ValueError, RecursionError):
        raise _refuse("token-malformed", f"{name} is not JSON") from None
    if not isinstance(value, dict):
        raise _refuse("token-malformed", f"{name} is not a JSON object")
    return value


def _strict_json(data: bytes) -> Any:
    """JSON that refuses duplicate members (parsers disagree on which wins) and NaN/Infinity."""
    try:
        return strict_json.loads(data)
    except StrictJsonError as exc:
        # Never echo a value taken from a token: name the problem only.
        raise ValueError(
            "duplicate member name" if exc.problem == "duplicate" else f"{exc.name} is not JSON"
        ) from None


def _json_reason(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
    return str(exc)


def _numeric_date(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    # bool is an int in Python, and true/false are not dates.
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:
            # JSON integers are unbounded; one beyond float range is no date either.
            raise _refuse("token-claims", f"{name} is out of range") from None
    if type(value) is float and math.isfinite(value):
        return value
    raise _refuse("token-claims", f"{name} must be a number of seconds")


def _parse_scopes(value: Any) -> frozenset[Scope]:
    # RFC 8693 says a space-separated string; some issuers send a list. Both are accepted, strictly.
    if isinstance(value, str):
        names: list[Any] = value.split(" ")
    elif isinstance(value, list):
        names = value
    else:
        raise _refuse("token-claims", "scope must be a string or a list of strings")
    if not names or names == [""]:
        raise _refuse("token-scope", "token grants no scope")
    scopes: set[Scope] = set()
    for name in names:
        if not isinstance(name, str):
            raise _refuse("token-claims", "scope must be a string or a list of strings")
        scope = _SCOPES_BY_VALUE.get(name)
        if scope is None:
            raise _refuse("token-scope", "unknown scope")
        scopes.add(scope)
    return frozenset(scopes)


# --- issuing -------------------------------------------------------------------------------------


class TokenIssuer:
    """The node's own issuer: short-lived EdDSA tokens signed with the node key (kid = key id).

    The JWS is assembled here and signed through ``SigningKey.sign``, so the private key never
    leaves ``SigningKey``.
    """

    __slots__ = ("_audience", "_clock", "_header_segment", "_issuer", "_key", "_max_lifetime")

    def __init__(
        self,
        key: SigningKey,
        issuer: str,
        audience: str,
        clock: Clock,
        *,
        max_lifetime: timedelta = DEFAULT_MAX_LIFETIME,
    ) -> None:
        if not issuer or not audience:
            raise TokenIssueError("issuer and audience must be non-empty")
        self._key = key
        self._issuer = issuer
        self._audience = audience
        self._clock = clock
        self._max_lifetime = max_lifetime
        header = {"alg": "EdDSA", "kid": key.key_id, "typ": "JWT"}
        self._header_segment = _b64url(_compact_json(header))

    @property
    def trusted(self) -> TrustedIssuer:
        """This issuer as a verifier must trust it."""
        return node_issuer(self._key.public, self._issuer)

    def issue(
        self,
        subject: str,
        scopes: Iterable[Scope | str],
        ttl: timedelta = DEFAULT_MAX_LIFETIME,
        token_id: str | None = None,
    ) -> str:
        """A signed token for ``subject``; TokenIssueError if it would not pass verification."""
        if not isinstance(subject, str) or not _SUBJECT.fullmatch(subject):
            raise TokenIssueError("subject must be 1-128 characters: letters, digits, ._:@|+/=~-")
        granted: set[Scope] = set()
        for s in scopes:
            scope = _SCOPES_BY_VALUE.get(s)
            if scope is None:
                raise TokenIssueError(f"unknown scope {s!r}; known: {', '.join(Scope)}")
            granted.add(scope)
        if not granted:
            raise TokenIssueError("at least one scope is required")
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
        elif not _TOKEN_ID.fullmatch(token_id):
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
        signing_input = f"{self._header_segment}.{_b64url(_compact_json(claims))}"
        signature = self._key.sign(signing_input.encode("ascii"))
        return f"{signing_input}.{_b64url(signature)}"


def _compact_json(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode("utf-8")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
