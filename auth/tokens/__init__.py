"""Partner bearer tokens (JWT): what a node accepts, the trust file, verification, its own issuer.

Law-enforcement partners and coordinators call a node with a JWT. The package has one module per
job: ``policy`` (scopes, trusted issuers, the node's policy, ``require``), ``jwks`` (the trusted
issuers file, parsed once into keys), ``remote`` and ``fetch`` (an issuer whose keys are fetched
from a JWKS URL or by OIDC discovery: cached, rate-limited, bounded), ``verify``
(``TokenVerifier``, on the hot path of every partner call), ``issue`` (``TokenIssuer``, the
node's own short-lived EdDSA tokens) and ``jose`` (the strict JSON and base64url they share).
Import from ``auth.tokens``; the names below are its public surface.
"""

from __future__ import annotations

from auth.tokens.issue import TokenIssuer
from auth.tokens.jwks import MAX_JWKS_FILE_BYTES, load_jwks_issuers
from auth.tokens.policy import (
    DEFAULT_LEEWAY,
    DEFAULT_MAX_LIFETIME,
    MIN_RSA_BITS,
    SUPPORTED_ALGORITHMS,
    KeyWindow,
    Principal,
    Scope,
    TokenPolicy,
    TrustedIssuer,
    VerificationKey,
    node_issuer,
    require,
)
from auth.tokens.verify import DEFAULT_CACHE_SIZE, MAX_TOKEN_LENGTH, TokenVerifier
from common.clock import system_clock

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_LEEWAY",
    "DEFAULT_MAX_LIFETIME",
    "MAX_JWKS_FILE_BYTES",
    "MAX_TOKEN_LENGTH",
    "MIN_RSA_BITS",
    "SUPPORTED_ALGORITHMS",
    "KeyWindow",
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
