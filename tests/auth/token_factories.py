"""Builders for partner-token tests: a fake clock, issuers and keys, and hand-made tokens.

Most negative tests need tokens no honest library would mint (``alg: none``, HS256 keyed with a
public key, a ``crit`` header, a duplicated member), so tokens are assembled here segment by
segment and signed with whatever key the test names. Key generation is slow for RSA, so keys are
made once per name and process.

The trust set of a ``TokenWorld``: the node's own EdDSA issuer, plus a JWKS file with a police
issuer (RS256), a Europol issuer (ES256), two EdDSA issuers A and B that both use kid ``k1`` with
different keys, and an issuer whose keys were generated and exported by jwcrypto.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwcrypto import jwk as jwcrypto_jwk
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm, get_default_algorithms

from auth.keys import SigningKey
from auth.tokens import TokenIssuer, TokenPolicy, TokenVerifier, load_jwks_issuers
from tests.auth.factories import signing_key

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
AUDIENCE = "nl-eokm"
NODE_ISSUER = "ihx:nl-eokm"
POLICE_ISSUER = "https://police.example"
EUROPOL_ISSUER = "https://europol.example"
A_ISSUER = "https://a.example"
B_ISSUER = "https://b.example"
JWCRYPTO_ISSUER = "https://jwcrypto.example"
POLICE_KID = "police-rsa-1"
EUROPOL_KID = "europol-ec-1"
SHARED_KID = "k1"
JWCRYPTO_KIDS: Mapping[str, str] = {"EdDSA": "jwc-ed25519", "RS256": "jwc-rsa", "ES256": "jwc-p256"}

PrivateKey = Ed25519PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class FakeClock:
    """A settable clock; verifiers and issuers under test read time only through it."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def ts(moment: datetime) -> int:
    return int(moment.timestamp())


# --- keys ----------------------------------------------------------------------------------------


def node_key() -> SigningKey:
    return signing_key(AUDIENCE)


def ed25519_key(name: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"jwt:{name}".encode()).digest())


@functools.cache
def rsa_key(name: str, bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.cache
def ec_key(name: str, curve: str = "P-256") -> ec.EllipticCurvePrivateKey:
    curves: dict[str, ec.EllipticCurve] = {
        "P-256": ec.SECP256R1(),
        "P-384": ec.SECP384R1(),
        "secp256k1": ec.SECP256K1(),
    }
    return ec.generate_private_key(curves[curve])


@functools.cache
def jwcrypto_key(alg: str) -> jwcrypto_jwk.JWK:
    kid = JWCRYPTO_KIDS[alg]
    if alg == "EdDSA":
        return jwcrypto_jwk.JWK.generate(kty="OKP", crv="Ed25519", kid=kid)
    if alg == "RS256":
        return jwcrypto_jwk.JWK.generate(kty="RSA", size=2048, kid=kid)
    return jwcrypto_jwk.JWK.generate(kty="EC", crv="P-256", kid=kid)


def public_jwk(key: PrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    """The public JWK of ``key`` as pyjwt exports it, with ``kid`` and any extra members."""
    data: dict[str, Any]
    if isinstance(key, rsa.RSAPrivateKey):
        data = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        data = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        data = OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**data, "kid": kid, **extra}


# --- the trust configuration ---------------------------------------------------------------------


# The test issuers may grant every scope but admin: the tests here are about verification; the
# default grant (cases:pull) and its limits are tests/auth/test_issuer_grants.py's.
TEST_GRANT = ["reports:submit", "cases:pull", "cases:work", "log:read", "stats:read"]


def issuers_document() -> dict[str, Any]:
    """A valid trusted-issuers (JWKS) document; tests break copies of it field by field."""
    jwcrypto_keys = [
        jwcrypto_key(alg).export_public(as_dict=True) for alg in ("EdDSA", "RS256", "ES256")
    ]
    return {
        "issuers": [
            {
                "iss": POLICE_ISSUER,
                "grant": TEST_GRANT,
                "algorithms": ["RS256"],
                "jwks": {"keys": [public_jwk(rsa_key("police"), POLICE_KID, use="sig")]},
            },
            {
                "iss": EUROPOL_ISSUER,
                "grant": TEST_GRANT,
                "algorithms": ["ES256"],
                "jwks": {"keys": [public_jwk(ec_key("europol"), EUROPOL_KID, alg="ES256")]},
            },
            {
                "iss": A_ISSUER,
                "grant": TEST_GRANT,
                "algorithms": ["EdDSA"],
                "jwks": {"keys": [public_jwk(ed25519_key("a"), SHARED_KID)]},
            },
            {
                "iss": B_ISSUER,
                "grant": TEST_GRANT,
                "algorithms": ["EdDSA"],
                "jwks": {"keys": [public_jwk(ed25519_key("b"), SHARED_KID)]},
            },
            {
                "iss": JWCRYPTO_ISSUER,
                "grant": TEST_GRANT,
                "algorithms": ["EdDSA", "RS256", "ES256"],
                "jwks": {"keys": jwcrypto_keys},
            },
        ]
    }


def write_json(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


@dataclass
class TokenWorld:
    """A node's verifier and issuer over the full trust set, with the clock both read."""

    clock: FakeClock
    key: SigningKey
    issuer: TokenIssuer
    policy: TokenPolicy
    verifier: TokenVerifier
    jwks_path: Path

    def verifier_with(self, **policy_changes: Any) -> TokenVerifier:
        fields = {
            "audience": self.policy.audience,
            "issuers": self.policy.issuers,
            "leeway": self.policy.leeway,
            "max_lifetime": self.policy.max_lifetime,
            **policy_changes,
        }
        return TokenVerifier(TokenPolicy(**fields), self.clock)


def make_token_world(directory: Path, *, cache_size: int | None = None) -> TokenWorld:
    clock = FakeClock()
    key = node_key()
    issuer = TokenIssuer(key, NODE_ISSUER, AUDIENCE, clock)
    jwks_path = write_json(directory / "trusted-issuers.json", issuers_document())
    policy = TokenPolicy(
        audience=AUDIENCE,
        issuers={NODE_ISSUER: issuer.trusted, **load_jwks_issuers(jwks_path)},
    )
    if cache_size is None:
        verifier = TokenVerifier(policy, clock)
    else:
        verifier = TokenVerifier(policy, clock, cache_size=cache_size)
    return TokenWorld(clock, key, issuer, policy, verifier, jwks_path)


# --- hand-made tokens ----------------------------------------------------------------------------


class _Omit:
    def __repr__(self) -> str:
        return "OMIT"


OMIT: Any = _Omit()
"""Pass as a claim or header value to leave that member out."""


def claims(**changes: Any) -> dict[str, Any]:
    """Valid claims for the node issuer at ``NOW`` (5 minutes to live), with ``changes`` applied."""
    base: dict[str, Any] = {
        "iss": NODE_ISSUER,
        "sub": "police-nl",
        "aud": AUDIENCE,
        "iat": ts(NOW),
        "exp": ts(NOW + timedelta(minutes=5)),
        "scope": "cases:pull",
        "jti": "token-1",
    }
    return _apply(base, changes)


def _apply(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    result = {**base, **changes}
    return {name: value for name, value in result.items() if value is not OMIT}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(value: Any) -> str:
    """A token segment: bytes as they are, anything else as compact JSON."""
    raw = value if isinstance(value, bytes) else json.dumps(value, separators=(",", ":")).encode()
    return b64url(raw)


def compact(header: Any, payload: Any, signature: bytes = b"") -> str:
    return f"{segment(header)}.{segment(payload)}.{b64url(signature)}"


def sign(header: Mapping[str, Any], payload: Any, key: SigningKey | PrivateKey) -> str:
    """A token with exactly ``header`` (nothing added), signed by ``key`` with the header's alg."""
    signing_input = f"{segment(dict(header))}.{segment(payload)}".encode("ascii")
    if isinstance(key, SigningKey):
        signature = key.sign(signing_input)
    else:
        signature = get_default_algorithms()[header["alg"]].sign(signing_input, key)
    return f"{signing_input.decode('ascii')}.{b64url(signature)}"


def node_token(payload: Any = None, **header_changes: Any) -> str:
    """A token signed by the node key, as the node issuer would, with header changes applied."""
    header = _apply({"alg": "EdDSA", "kid": node_key().key_id, "typ": "JWT"}, header_changes)
    return sign(header, claims() if payload is None else payload, node_key())


def external_token(iss: str, kid: str, alg: str, key: PrivateKey, **claim_changes: Any) -> str:
    return sign({"alg": alg, "kid": kid, "typ": "JWT"}, claims(iss=iss, **claim_changes), key)


def hmac_token(header: Mapping[str, Any], payload: Any, secret: bytes) -> str:
    """HS256/384/512 by hand: pyjwt refuses to use a PEM key as an HMAC secret, attackers don't."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
    signing_input = f"{segment(dict(header))}.{segment(payload)}".encode("ascii")
    mac = hmac.new(secret, signing_input, digest[header["alg"]]).digest()
    return f"{signing_input.decode('ascii')}.{b64url(mac)}"
