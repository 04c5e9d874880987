"""Trusted external issuers from a trust file: the file → ``TrustedIssuer`` objects, once.

``{"issuers": [{"iss": …, "algorithms": ["RS256"], "jwks": {"keys": [JWK, …]}}]}``. Nothing in a
token is ever fetched. Each issuer may carry only the scopes of its ``grant`` (default
``["cases:pull"]``: a partner's; ``admin`` or ``cases:work`` only when listed) and, with
``subjects``, only subjects that regular expression matches whole. An issuer may instead name
where its keys are published —
``"jwks_uri": "https://…"`` or ``"discovery": true`` (OIDC discovery from its ``iss``) — and is
then a ``RemoteIssuer`` (remote.py) whose fetched sets go through the same checks below.

Each JWK is checked here for what pyjwt does not check — public material only, the
signature use, a key type and curve we accept, an ``alg`` among the issuer's — and then parsed by
pyjwt's own ``jwt.PyJWK`` into a ``cryptography`` key. (``jwt.PyJWKSet`` is not used: it skips
unusable keys silently, where a trust file must fail and name the key.) Every problem is a
``TrustConfigError`` naming the file and the field path, e.g. ``issuers[0].jwks.keys[1].kty``.
"""

from __future__ import annotations

import enum
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import jwt

from auth.errors import TrustConfigError
from auth.tokens.jose import parse_json
from auth.tokens.policy import (
    SCOPES_BY_VALUE,
    Scope,
    TrustedIssuer,
    VerificationKey,
    algorithm_problem,
    algorithms_for_key,
)
from auth.tokens.remote import RemoteIssuer, RemoteOptions
from common.clock import Clock, system_clock

__all__ = ["MAX_JWKS_FILE_BYTES", "KeyType", "load_jwks_issuers", "parse_fetched_jwks"]

MAX_JWKS_FILE_BYTES: Final = 1024 * 1024


class KeyType(enum.StrEnum):
    """The JWK key types a trust file may hold (never ``oct``: a shared secret)."""

    RSA = "RSA"
    EC = "EC"
    OKP = "OKP"


_KEY_TYPES: Final = frozenset(KeyType)
_EC_PARSER_BY_CURVE: Final[Mapping[str, str]] = MappingProxyType(
    {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
)
# RFC 7517 private key members; a trust file must hold public keys only.
_PRIVATE_JWK_MEMBERS: Final = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


def load_jwks_issuers(
    path: str | os.PathLike[str],
    *,
    clock: Clock = system_clock,
    options: RemoteOptions | None = None,
) -> dict[str, TrustedIssuer | RemoteIssuer]:
    """Trusted external issuers from a JSON file; loading never touches the network.

    ``{"issuers": [{"iss": …, "algorithms": ["RS256"], "jwks": {"keys": [JWK, …]}}]}``. Keys are
    parsed here, once; an issuer with ``jwks_uri`` or ``discovery`` fetches its keys when first
    needed (``clock`` and ``options`` rule its cache). Any problem is a ``TrustConfigError``
    naming the file and field path.
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
        document = parse_json(data)
    except RecursionError:
        raise TrustConfigError(f"{p}: not valid JSON: nested too deeply") from None
    except ValueError as exc:
        raise TrustConfigError(f"{p}: not valid JSON: {_json_reason(exc)}") from None
    remote = _Remote(clock, options or RemoteOptions())
    try:
        return _parse_issuers_document(document, remote)
    except TrustConfigError as exc:
        raise TrustConfigError(f"{p}: {exc.message}") from None


@dataclass(frozen=True, slots=True)
class _Remote:
    clock: Clock
    options: RemoteOptions


def _parse_issuers_document(
    document: Any, remote: _Remote
) -> dict[str, TrustedIssuer | RemoteIssuer]:
    if not isinstance(document, dict):
        raise TrustConfigError("(top level): must be an object")
    _only_members(document, {"issuers"}, "(top level)")
    entries = document.get("issuers")
    if not isinstance(entries, list):
        raise TrustConfigError("issuers: must be a list")
    result: dict[str, TrustedIssuer | RemoteIssuer] = {}
    for i, entry in enumerate(entries):
        trusted = _parse_issuer(entry, f"issuers[{i}]", remote)
        if trusted.issuer in result:
            raise TrustConfigError(f"issuers[{i}].iss: duplicate issuer")
        result[trusted.issuer] = trusted
    return result


_SOURCES: Final = ("jwks", "jwks_uri", "discovery")


def _parse_issuer(entry: Any, where: str, remote: _Remote) -> TrustedIssuer | RemoteIssuer:
    if not isinstance(entry, dict):
        raise TrustConfigError(f"{where}: must be an object")
    _only_members(entry, {"iss", "algorithms", "grant", "subjects", *_SOURCES}, where)
    iss = entry.get("iss")
    if not isinstance(iss, str) or not iss:
        raise TrustConfigError(f"{where}.iss: must be a non-empty string")
    algorithms = _parse_algorithms(entry.get("algorithms"), where)
    limits = _Limits(
        _parse_grant(entry.get("grant", [Scope.CASES_PULL.value]), f"{where}.grant"),
        _parse_subjects(entry.get("subjects"), f"{where}.subjects"),
    )
    given = [name for name in _SOURCES if name in entry]
    if not given:
        raise TrustConfigError(f"{where}.jwks: required (or jwks_uri, or discovery)")
    if len(given) > 1:
        raise TrustConfigError(f"{where}: give only one of jwks, jwks_uri and discovery")
    if given == ["jwks"]:
        keys, narrowed = _parse_keys(entry["jwks"], f"{where}.jwks", algorithms)
        return limits.issuer(iss, keys, algorithms, narrowed)
    if given == ["discovery"] and entry["discovery"] is not True:
        raise TrustConfigError(f"{where}.discovery: must be true (or left out)")
    jwks_uri = entry.get("jwks_uri")
    if jwks_uri is not None and not isinstance(jwks_uri, str):
        raise TrustConfigError(f"{where}.jwks_uri: must be a URL string")
    try:
        return RemoteIssuer(
            iss,
            jwks_uri=jwks_uri,
            discovery=given == ["discovery"],
            parse=lambda document, url: parse_fetched_jwks(document, url, iss, algorithms, limits),
            clock=remote.clock,
            options=remote.options,
        )
    except TrustConfigError as exc:
        raise TrustConfigError(f"{where}: {exc.message}") from None


@dataclass(frozen=True, slots=True)
class _Limits:
    """What an external issuer's tokens may do: ``grant`` (scopes) and ``subjects`` (pattern)."""

    grant: frozenset[Scope]
    subjects: re.Pattern[str] | None

    def issuer(
        self,
        iss: str,
        keys: dict[str, VerificationKey],
        algorithms: tuple[str, ...],
        narrowed: dict[str, tuple[str, ...]],
    ) -> TrustedIssuer:
        return TrustedIssuer(
            issuer=iss,
            keys=keys,
            algorithms=algorithms,
            key_algorithms=narrowed,
            grant=self.grant,
            subjects=self.subjects,
        )


_DEFAULT_LIMITS: Final = _Limits(frozenset({Scope.CASES_PULL}), None)


def _parse_grant(grant: Any, where: str) -> frozenset[Scope]:
    """The scopes an issuer may grant: a non-empty list of scope names (``admin`` only if named)."""
    if not isinstance(grant, list) or not grant:
        raise TrustConfigError(f"{where}: must be a non-empty list of scopes")
    scopes: set[Scope] = set()
    for j, name in enumerate(grant):
        scope = SCOPES_BY_VALUE.get(name) if isinstance(name, str) else None
        if scope is None:
            raise TrustConfigError(f"{where}[{j}]: must be one of {', '.join(SCOPES_BY_VALUE)}")
        scopes.add(scope)
    return frozenset(scopes)


def _parse_subjects(pattern: Any, where: str) -> re.Pattern[str] | None:
    """The subjects an issuer's tokens may name: a regular expression the whole ``sub`` matches."""
    if pattern is None:
        return None
    if not isinstance(pattern, str) or not pattern or len(pattern) > 256:
        raise TrustConfigError(f"{where}: must be a regular expression of 1 to 256 characters")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise TrustConfigError(f"{where}: not a regular expression: {exc}") from None


def parse_fetched_jwks(
    document: Any,
    url: str,
    iss: str,
    algorithms: tuple[str, ...],
    limits: _Limits = _DEFAULT_LIMITS,
) -> TrustedIssuer:
    """A JWKS fetched from ``url`` → the issuer's keys, with the trust file's checks.

    Keys published for encryption (``"use": "enc"``, which IdPs list beside their signing keys)
    are left out; every other key must pass, or the whole set is refused.
    """
    if isinstance(document, dict) and isinstance(document.get("keys"), list):
        kept = [k for k in document["keys"] if not (isinstance(k, dict) and k.get("use") == "enc")]
        document = {**document, "keys": kept}
    keys, narrowed = _parse_keys(document, url, algorithms)
    return limits.issuer(iss, keys, algorithms, narrowed)


def _parse_algorithms(algorithms: Any, where: str) -> tuple[str, ...]:
    """An issuer's ``algorithms``: a non-empty list of distinct algorithms we accept."""
    if not isinstance(algorithms, list) or not algorithms:
        raise TrustConfigError(f"{where}.algorithms: must be a non-empty list")
    for j, alg in enumerate(algorithms):
        problem = algorithm_problem(alg)
        if problem:
            raise TrustConfigError(f"{where}.algorithms[{j}]: {problem}")
    if len(set(algorithms)) != len(algorithms):
        raise TrustConfigError(f"{where}.algorithms: duplicate algorithm")
    return tuple(algorithms)


def _parse_keys(
    jwks: Any, where: str, algorithms: tuple[str, ...]
) -> tuple[dict[str, VerificationKey], dict[str, tuple[str, ...]]]:
    """A JWKS at ``where`` → (key by kid, the narrower algorithm list of each key that has one)."""
    if not isinstance(jwks, dict):
        raise TrustConfigError(f"{where}: must be an object")
    jwk_list = jwks.get("keys")
    if not isinstance(jwk_list, list) or not jwk_list:
        raise TrustConfigError(f"{where}.keys: must be a non-empty list")
    keys: dict[str, VerificationKey] = {}
    narrowed: dict[str, tuple[str, ...]] = {}
    for j, jwk_data in enumerate(jwk_list):
        key_where = f"{where}.keys[{j}]"
        kid, key, usable = _parse_jwk(jwk_data, key_where, algorithms)
        if kid in keys:
            raise TrustConfigError(f"{key_where}.kid: duplicate kid")
        keys[kid] = key
        if set(usable) != set(algorithms):
            narrowed[kid] = usable
    return keys, narrowed


def _parse_jwk(
    data: Any, where: str, algorithms: tuple[str, ...]
) -> tuple[str, VerificationKey, tuple[str, ...]]:
    """One JWK → (kid, key, the issuer's algorithms this key may verify)."""
    if not isinstance(data, dict):
        raise TrustConfigError(f"{where}: must be an object")
    kid = data.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TrustConfigError(f"{where}.kid: must be a non-empty string")
    kty = _key_type(data.get("kty"), where)
    _check_public_and_for_signing(data, where)
    jwk_alg = data.get("alg")
    if jwk_alg is not None and jwk_alg not in algorithms:
        raise TrustConfigError(f"{where}.alg: not one of the issuer's algorithms")
    parser_alg = _parser_algorithm(kty, data.get("crv"), where)
    try:
        key = jwt.PyJWK(data, algorithm=parser_alg).key
    except (jwt.PyJWTError, TypeError, ValueError):
        # pyjwt's messages quote the whole JWK; ours names the place instead.
        raise TrustConfigError(f"{where}: not a valid {kty} public key") from None
    try:
        usable = algorithms_for_key(key)
    except ValueError as exc:
        raise TrustConfigError(f"{where}: {exc}") from None
    allowed = tuple(a for a in algorithms if a in usable and (jwk_alg is None or a == jwk_alg))
    if not allowed:
        raise TrustConfigError(f"{where}: the key fits none of the issuer's algorithms")
    return kid, key, allowed


def _key_type(kty: object, where: str) -> KeyType:
    if kty == "oct":
        raise TrustConfigError(f"{where}.kty: symmetric keys are never trusted")
    if not isinstance(kty, str) or kty not in _KEY_TYPES:
        raise TrustConfigError(f"{where}.kty: must be one of {', '.join(KeyType)}")
    return KeyType(kty)


def _check_public_and_for_signing(data: dict[str, Any], where: str) -> None:
    for member in _PRIVATE_JWK_MEMBERS:
        if member in data:
            raise TrustConfigError(f"{where}.{member}: private key material in a trust file")
    if "use" in data and data["use"] != "sig":
        raise TrustConfigError(f"{where}.use: must be 'sig'")
    key_ops = data.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise TrustConfigError(f"{where}.key_ops: must be a list that includes 'verify'")


def _parser_algorithm(kty: KeyType, crv: object, where: str) -> str:
    """An algorithm of the key's family, for PyJWK to pick its parser; the curve must be ours.

    Which algorithms the key may then verify is decided from the parsed key, not from this choice.
    """
    if kty is KeyType.RSA:
        return "RS256"
    if kty is KeyType.EC:
        if not isinstance(crv, str) or crv not in _EC_PARSER_BY_CURVE:
            raise TrustConfigError(f"{where}.crv: must be one of {', '.join(_EC_PARSER_BY_CURVE)}")
        return _EC_PARSER_BY_CURVE[crv]
    if crv != "Ed25519":
        raise TrustConfigError(f"{where}.crv: must be Ed25519")
    return "EdDSA"


def _only_members(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    # A misspelt field would otherwise be silently ignored in a security configuration.
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise TrustConfigError(f"{where}: unknown field {unknown[0]!r}")


def _json_reason(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
    return str(exc)
