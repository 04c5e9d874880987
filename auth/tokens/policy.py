"""What a node accepts from partner tokens: scopes, trusted issuers, the policy, ``require``.

This is configuration and authorisation, with no token parsing in it. ``TrustedIssuer`` pins an
issuer's exact ``iss``, its keys by kid and the algorithms they may verify; ``TokenPolicy`` is
the node's audience plus its issuers and time limits. Both validate on construction, so a verifier
never meets an unusable key or an unsafe algorithm: asymmetric signatures only (never ``none`` or
HMAC, where a public key could be abused as the secret), RSA keys of 2048 to 8192 bits, each EC
curve with its one algorithm. ``Principal`` is who a verified token proves; ``require`` checks a
scope (``admin`` implies every other).

An issuer may be limited to the scopes of its ``grant`` and the subjects of its ``subjects``
pattern (the trust file gives an external issuer ``cases:pull`` alone unless it lists more). A
*network* issuer (``network_audience`` set: a member the manifest names a network reader)
differs in three ways: its tokens must name that audience as a single string, they always have
a ``grant`` (read scopes only), and each of its keys has a validity window (the member's manifest
key: ``not_before`` … ``not_after``/``revoked_at``) checked against the clock on every call.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from cryptography.hazmat.primitives.asymmetric.ec import (
    SECP256R1,
    SECP384R1,
    SECP521R1,
    EllipticCurvePublicKey,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from auth.errors import PermissionDenied, TrustConfigError
from auth.keys import PublicKey

if TYPE_CHECKING:
    from auth.tokens.remote import RemoteIssuer

__all__ = [
    "DEFAULT_LEEWAY",
    "DEFAULT_MAX_LIFETIME",
    "MAX_RSA_BITS",
    "MIN_RSA_BITS",
    "SCOPES_BY_VALUE",
    "SUPPORTED_ALGORITHMS",
    "KeyWindow",
    "Principal",
    "Scope",
    "TokenPolicy",
    "TrustedIssuer",
    "VerificationKey",
    "algorithm_problem",
    "algorithms_for_key",
    "node_issuer",
    "require",
]


class Scope(enum.StrEnum):
    """What a token allows; ``ADMIN`` implies every other scope."""

    REPORTS_SUBMIT = "reports:submit"
    CASES_PULL = "cases:pull"
    CASES_WORK = "cases:work"  # a hotline's analysts: queues, assess, act, withdraw
    LOG_READ = "log:read"
    STATS_READ = "stats:read"  # a node's signed statistics: counts and histograms only
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
# Verifying with a huge modulus costs CPU per token; nobody signs with more than 8192 bits.
MAX_RSA_BITS: Final = 8192

DEFAULT_LEEWAY: Final = timedelta(seconds=30)
DEFAULT_MAX_LIFETIME: Final = timedelta(minutes=15)
# Subjects and token ids end up in the routing log and in queries (always as bound parameters, but
# still): printable, no spaces or quotes, bounded. Covers ids, URLs, e-mails, UUIDs and "a|b" ids.
SUBJECT_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@|+/=~-]{0,127}")
TOKEN_ID_PATTERN: Final = re.compile(r"[\x21-\x7e]{1,128}")
SCOPES_BY_VALUE: Final[Mapping[str, Scope]] = MappingProxyType({s.value: s for s in Scope})


@dataclass(frozen=True)
class KeyWindow:
    """When a key may sign: from ``since`` (inclusive) until ``until`` (exclusive; None: open)."""

    since: datetime
    until: datetime | None = None

    def problem(self, now: datetime) -> str | None:
        if now < self.since:
            return "the issuer's key is not valid yet"
        if self.until is not None and now >= self.until:
            return "the issuer's key is no longer valid (expired or revoked)"
        return None


@dataclass(frozen=True)
class TrustedIssuer:
    """One issuer we accept tokens from: its exact ``iss``, its keys by kid, its pinned algorithms.

    ``key_algorithms`` optionally narrows a kid to fewer algorithms than the issuer's (a JWK's own
    ``alg``). Validated at construction, so a verifier never meets an unusable key.

    ``grant`` is the only scopes its tokens may carry (None: any — the node's own issuer);
    ``subjects`` the only subjects they may name. A network issuer sets ``network_audience``
    (its tokens' one ``aud``), a grant without ``admin`` and a ``KeyWindow`` for each key.
    """

    issuer: str
    keys: Mapping[str, VerificationKey]
    algorithms: tuple[str, ...]
    key_algorithms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    network_audience: str | None = None
    grant: frozenset[Scope] | None = None
    key_windows: Mapping[str, KeyWindow] = field(default_factory=dict)
    subjects: re.Pattern[str] | None = None  # the only subjects its tokens may name (fullmatch)

    def __post_init__(self) -> None:
        if not isinstance(self.issuer, str) or not self.issuer:
            raise TrustConfigError("issuer: must be a non-empty string")
        where = f"issuer {self.issuer!r}"
        algorithms = tuple(self.algorithms)
        _check_issuer_algorithms(algorithms, where)
        usable = _usable_algorithms(self.keys, algorithms, where)
        narrowed = _narrowed_algorithms(self.key_algorithms, usable, algorithms, where)
        _check_network_fields(self, where)
        # Frozen in fact, not only in name: the verifier's tables are built from these once.
        object.__setattr__(self, "algorithms", algorithms)
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))
        object.__setattr__(self, "key_algorithms", MappingProxyType(narrowed))
        object.__setattr__(self, "key_windows", MappingProxyType(dict(self.key_windows)))


def _check_network_fields(trusted: TrustedIssuer, where: str) -> None:
    """A network issuer has all three of audience, grant and windows; any other no windows."""
    if trusted.grant is not None and not trusted.grant:
        raise TrustConfigError(f"{where}: a grant names at least one scope")
    if trusted.network_audience is None:
        if trusted.key_windows:
            raise TrustConfigError(f"{where}: key windows are for network issuers")
        return
    if not isinstance(trusted.network_audience, str) or not trusted.network_audience:
        raise TrustConfigError(f"{where}: network_audience must be a non-empty string")
    if not trusted.grant or Scope.ADMIN in trusted.grant:
        raise TrustConfigError(f"{where}: a network issuer grants some scopes, never admin")
    if set(trusted.key_windows) != set(trusted.keys):
        raise TrustConfigError(f"{where}: each key of a network issuer needs its window")


def _check_issuer_algorithms(algorithms: tuple[str, ...], where: str) -> None:
    if not algorithms:
        raise TrustConfigError(f"{where}: algorithms: at least one algorithm is required")
    for i, alg in enumerate(algorithms):
        problem = algorithm_problem(alg)
        if problem:
            raise TrustConfigError(f"{where}: algorithms[{i}]: {problem}")


def _usable_algorithms(
    keys: Mapping[str, VerificationKey], algorithms: tuple[str, ...], where: str
) -> dict[str, frozenset[str]]:
    """Each kid → the issuer's algorithms its key can verify (never none of them)."""
    if not keys:
        raise TrustConfigError(f"{where}: keys: at least one key is required")
    usable: dict[str, frozenset[str]] = {}
    for kid, key in keys.items():
        if not isinstance(kid, str) or not kid:
            raise TrustConfigError(f"{where}: keys: a kid must be a non-empty string")
        try:
            usable[kid] = algorithms_for_key(key) & set(algorithms)
        except ValueError as exc:
            raise TrustConfigError(f"{where}: keys[{kid!r}]: {exc}") from None
        if not usable[kid]:
            raise TrustConfigError(
                f"{where}: keys[{kid!r}]: the key fits none of the issuer's algorithms"
            )
    return usable


def _narrowed_algorithms(
    key_algorithms: Mapping[str, tuple[str, ...]],
    usable: Mapping[str, frozenset[str]],
    algorithms: tuple[str, ...],
    where: str,
) -> dict[str, tuple[str, ...]]:
    """``key_algorithms`` checked: known kids, each narrowed to issuer algorithms its key fits."""
    narrowed: dict[str, tuple[str, ...]] = {}
    for kid, given in key_algorithms.items():
        if kid not in usable:
            raise TrustConfigError(f"{where}: key_algorithms[{kid!r}]: no such key")
        algs = tuple(given)
        if not algs or not set(algs) <= set(algorithms) or not set(algs) & usable[kid]:
            raise TrustConfigError(
                f"{where}: key_algorithms[{kid!r}]: must be issuer algorithms the key fits"
            )
        narrowed[kid] = algs
    return narrowed


@dataclass(frozen=True)
class TokenPolicy:
    """What this node accepts: tokens for ``audience`` from ``issuers`` (exact ``iss`` → issuer:
    keys held, or fetched by a ``RemoteIssuer``)."""

    audience: str
    issuers: Mapping[str, TrustedIssuer | RemoteIssuer]
    leeway: timedelta = DEFAULT_LEEWAY
    max_lifetime: timedelta = DEFAULT_MAX_LIFETIME

    def __post_init__(self) -> None:
        if not isinstance(self.audience, str) or not self.audience:
            raise TrustConfigError("audience: must be a non-empty string")
        from auth.tokens.remote import RemoteIssuer  # it builds on this module

        for iss, trusted in self.issuers.items():
            if not isinstance(trusted, TrustedIssuer | RemoteIssuer) or trusted.issuer != iss:
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


def algorithm_problem(alg: object) -> str | None:
    if not isinstance(alg, str):
        return "must be a string"
    if alg.upper().startswith("HS") or alg.lower() == "none":
        return f"{alg!r} is never accepted (only asymmetric signatures)"
    if alg not in SUPPORTED_ALGORITHMS:
        return f"unsupported algorithm {alg!r}"
    return None


def algorithms_for_key(key: object) -> frozenset[str]:
    """The algorithms a public key can verify; ValueError for a key we do not accept."""
    if isinstance(key, Ed25519PublicKey):
        return frozenset({"EdDSA"})
    if isinstance(key, RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} required")
        if key.key_size > MAX_RSA_BITS:
            raise ValueError(f"RSA key of {key.key_size} bits; at most {MAX_RSA_BITS} accepted")
        return _RSA_ALGORITHMS
    if isinstance(key, EllipticCurvePublicKey):
        alg = _EC_ALGORITHM_BY_CURVE.get(key.curve.name)
        if alg is None:
            raise ValueError(f"unsupported elliptic curve {key.curve.name}")
        return frozenset({alg})
    raise ValueError(f"not a supported public key ({type(key).__name__})")


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
