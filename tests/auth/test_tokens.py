"""Partner tokens: what is accepted, and every way a token must be refused.

Each refusal is checked for its error type and stable code (the gRPC edge maps ``TokenInvalid``
to UNAUTHENTICATED and ``PermissionDenied`` to PERMISSION_DENIED) and for returning nothing. Time
is a fake clock; no test touches the network (``no_network`` fails the test if anything tries).
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws
from jwcrypto import jwt as jwcrypto_jwt

import auth.tokens.verify as tokens
from auth.errors import (
    AuthError,
    PermissionDenied,
    TokenInvalid,
    TokenIssueError,
    TrustConfigError,
)
from auth.tokens import (
    MAX_TOKEN_LENGTH,
    Principal,
    Scope,
    TokenIssuer,
    TokenPolicy,
    TokenVerifier,
    TrustedIssuer,
    load_jwks_issuers,
    node_issuer,
    require,
)
from tests.auth.token_factories import (
    A_ISSUER,
    AUDIENCE,
    B_ISSUER,
    EUROPOL_ISSUER,
    EUROPOL_KID,
    JWCRYPTO_ISSUER,
    JWCRYPTO_KIDS,
    NODE_ISSUER,
    NOW,
    OMIT,
    POLICE_ISSUER,
    POLICE_KID,
    SHARED_KID,
    FakeClock,
    PrivateKey,
    TokenWorld,
    claims,
    compact,
    ec_key,
    ed25519_key,
    external_token,
    hmac_token,
    issuers_document,
    jwcrypto_key,
    make_token_world,
    node_key,
    node_token,
    public_jwk,
    rsa_key,
    segment,
    sign,
    ts,
    write_json,
)

LEEWAY = timedelta(seconds=30)


@pytest.fixture
def world(tmp_path: Path) -> TokenWorld:
    return make_token_world(tmp_path)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fail the test if anything resolves a name or opens a connection or URL."""
    attempts: list[str] = []

    def refuse(what: str) -> Callable[..., Any]:
        def attempt(*args: Any, **kwargs: Any) -> Any:
            attempts.append(what)
            raise AssertionError(f"network access attempted: {what}")

        return attempt

    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(urllib.request, "urlopen", refuse("urllib.request.urlopen"))
    yield attempts
    # Also catches a library that swallowed the AssertionError raised above.
    assert attempts == []


def refused(world: TokenWorld, token: Any, code: str) -> TokenInvalid:
    """Verify ``token``, expecting TokenInvalid with ``code``; return the error for more checks."""
    result: Principal | None = None
    with pytest.raises(TokenInvalid) as caught:
        result = world.verifier.verify(token)
    assert result is None
    assert caught.value.code == code, caught.value.message
    return caught.value


# --- accepted ------------------------------------------------------------------------------------


def test_node_issuer_token_is_accepted(world: TokenWorld) -> None:
    token = world.issuer.issue("police-nl", [Scope.CASES_PULL, Scope.LOG_READ], token_id="t-42")

    principal = world.verifier.verify(token)

    assert principal == Principal(
        subject="police-nl",
        issuer=NODE_ISSUER,
        scopes=frozenset({Scope.CASES_PULL, Scope.LOG_READ}),
        token_id="t-42",
        expires_at=NOW + timedelta(minutes=15),
    )


def test_issued_token_header_names_the_node_key(world: TokenWorld) -> None:
    token = world.issuer.issue("police-nl", [Scope.CASES_PULL])
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "EdDSA", "kid": world.key.key_id, "typ": "JWT"}


def test_issued_tokens_get_distinct_token_ids(world: TokenWorld) -> None:
    first = world.verifier.verify(world.issuer.issue("police-nl", [Scope.CASES_PULL]))
    second = world.verifier.verify(world.issuer.issue("police-nl", [Scope.CASES_PULL]))
    assert first.token_id
    assert second.token_id
    assert first.token_id != second.token_id


@pytest.mark.parametrize(
    ("iss", "kid", "alg", "key_name"),
    [
        (POLICE_ISSUER, POLICE_KID, "RS256", "rsa:police"),
        (EUROPOL_ISSUER, EUROPOL_KID, "ES256", "ec:europol"),
        (A_ISSUER, SHARED_KID, "EdDSA", "ed:a"),
    ],
)
def test_jwks_issuer_tokens_are_accepted(
    world: TokenWorld, iss: str, kid: str, alg: str, key_name: str
) -> None:
    kind, name = key_name.split(":")
    makers: dict[str, Callable[[str], PrivateKey]] = {
        "rsa": rsa_key,
        "ec": ec_key,
        "ed": ed25519_key,
    }
    key = makers[kind](name)
    token = external_token(iss, kid, alg, key, scope="cases:pull log:read")

    principal = world.verifier.verify(token)

    assert principal.issuer == iss
    assert principal.subject == "police-nl"
    assert principal.scopes == {Scope.CASES_PULL, Scope.LOG_READ}


def test_scope_may_be_a_list_and_aud_a_list_containing_ours(world: TokenWorld) -> None:
    token = node_token(claims(scope=["cases:pull", "admin"], aud=["other-node", AUDIENCE]))
    assert world.verifier.verify(token).scopes == {Scope.CASES_PULL, Scope.ADMIN}


def test_optional_nbf_in_the_past_is_accepted(world: TokenWorld) -> None:
    token = node_token(claims(nbf=ts(NOW - timedelta(seconds=5))))
    assert world.verifier.verify(token).subject == "police-nl"


def test_token_without_jti_has_no_token_id(world: TokenWorld) -> None:
    assert world.verifier.verify(node_token(claims(jti=OMIT))).token_id is None


# --- time ----------------------------------------------------------------------------------------


def test_expired_within_leeway_is_accepted(world: TokenWorld) -> None:
    token = node_token()
    world.clock.advance(timedelta(minutes=5) + LEEWAY - timedelta(seconds=1))
    assert world.verifier.verify(token).subject == "police-nl"


def test_expired_beyond_leeway_is_refused(world: TokenWorld) -> None:
    token = node_token()
    world.clock.advance(timedelta(minutes=5) + LEEWAY)
    refused(world, token, "token-expired")


def test_long_expired_token_is_refused(world: TokenWorld) -> None:
    refused(world, node_token(claims(exp=ts(NOW - timedelta(hours=1)))), "token-expired")


def test_nbf_in_the_future_is_refused(world: TokenWorld) -> None:
    token = node_token(claims(nbf=ts(NOW + LEEWAY + timedelta(seconds=1))))
    refused(world, token, "token-not-yet-valid")


def test_nbf_within_leeway_is_accepted(world: TokenWorld) -> None:
    token = node_token(claims(nbf=ts(NOW + LEEWAY)))
    assert world.verifier.verify(token).subject == "police-nl"


def test_iat_in_the_future_is_refused(world: TokenWorld) -> None:
    iat = NOW + LEEWAY + timedelta(seconds=1)
    token = node_token(claims(iat=ts(iat), exp=ts(iat + timedelta(minutes=5))))
    refused(world, token, "token-not-yet-valid")


def test_token_becomes_valid_when_the_clock_reaches_nbf(world: TokenWorld) -> None:
    token = node_token(claims(nbf=ts(NOW + timedelta(minutes=2))))
    refused(world, token, "token-not-yet-valid")
    world.clock.advance(timedelta(minutes=2))
    assert world.verifier.verify(token).subject == "police-nl"


def test_lifetime_over_the_maximum_is_refused(world: TokenWorld) -> None:
    token = node_token(claims(exp=ts(NOW + timedelta(minutes=15, seconds=1))))
    refused(world, token, "token-lifetime")


def test_lifetime_of_exactly_the_maximum_is_accepted(world: TokenWorld) -> None:
    token = node_token(claims(exp=ts(NOW + timedelta(minutes=15))))
    assert world.verifier.verify(token).expires_at == NOW + timedelta(minutes=15)


def test_old_iat_with_far_exp_is_refused_for_lifetime(world: TokenWorld) -> None:
    # A day-long token, presented in its last minutes, is still a day-long token.
    iat = NOW - timedelta(hours=24)
    token = node_token(claims(iat=ts(iat), exp=ts(NOW + timedelta(minutes=1))))
    refused(world, token, "token-lifetime")


def test_max_lifetime_comes_from_the_policy(world: TokenWorld) -> None:
    token = node_token(claims(exp=ts(NOW + timedelta(minutes=5))))
    verifier = world.verifier_with(max_lifetime=timedelta(minutes=4))
    with pytest.raises(TokenInvalid) as caught:
        verifier.verify(token)
    assert caught.value.code == "token-lifetime"


def test_exp_not_after_iat_is_refused(world: TokenWorld) -> None:
    refused(world, node_token(claims(iat=ts(NOW), exp=ts(NOW))), "token-claims")


def test_cached_token_is_refused_once_it_expires(world: TokenWorld) -> None:
    token = node_token()
    assert world.verifier.verify(token).subject == "police-nl"
    world.clock.advance(timedelta(minutes=6))
    refused(world, token, "token-expired")


def test_verification_is_cached_but_claims_are_checked_every_time(
    world: TokenWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original = tokens._PYJWT.decode

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append("decode")
        return original(*args, **kwargs)

    monkeypatch.setattr(tokens._PYJWT, "decode", counting)
    token = node_token()
    for _ in range(3):
        world.verifier.verify(token)
    assert calls == ["decode"]

    uncached = TokenVerifier(world.policy, world.clock, cache_size=0)
    for _ in range(3):
        uncached.verify(token)
    assert len(calls) == 4


def test_clock_must_be_timezone_aware(world: TokenWorld) -> None:
    verifier = TokenVerifier(world.policy, lambda: NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="timezone-aware"):
        verifier.verify(node_token())


# --- alg -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", ["empty", "real-looking"])
def test_alg_none_is_refused(world: TokenWorld, alg: str, signature: str) -> None:
    sig = b""
    if signature == "real-looking":
        real = node_token().split(".")[2]
        sig = base64.urlsafe_b64decode(real + "==")
    header = {"alg": alg, "kid": world.key.key_id, "typ": "JWT"}
    refused(world, compact(header, claims(), sig), "token-alg")


@pytest.mark.parametrize("alg", [OMIT, None, "", 256, ["EdDSA"], "eddsa", "EDDSA", "ES256K"])
def test_missing_or_odd_alg_is_refused(world: TokenWorld, alg: Any) -> None:
    header: dict[str, Any] = {"kid": world.key.key_id}
    if alg is not OMIT:
        header["alg"] = alg
    refused(world, compact(header, claims(), b"x" * 64), "token-alg")


def _public_key_secrets() -> dict[str, bytes]:
    public = node_key().public
    return {
        "raw": public.raw,
        "pem": public.to_pem(),
        "pem-str-stripped": public.to_pem().strip(),
        "b64": public.to_b64().encode(),
        "b64url": base64.urlsafe_b64encode(public.raw).rstrip(b"="),
        "der": Ed25519PublicKey.from_public_bytes(public.raw).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }


@pytest.mark.parametrize("secret_form", sorted(_public_key_secrets()))
@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_with_our_public_key_as_secret_is_refused(
    world: TokenWorld, secret_form: str, alg: str
) -> None:
    secret = _public_key_secrets()[secret_form]
    token = hmac_token({"alg": alg, "kid": world.key.key_id}, claims(), secret)
    refused(world, token, "token-alg")


def test_hmac_with_a_jwks_issuers_rsa_public_key_as_secret_is_refused(world: TokenWorld) -> None:
    pem = (
        rsa_key("police")
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    token = hmac_token({"alg": "HS256", "kid": POLICE_KID}, claims(iss=POLICE_ISSUER), pem)
    refused(world, token, "token-alg")


def test_supported_algorithm_not_pinned_for_the_issuer_is_refused(world: TokenWorld) -> None:
    # The police issuer pins RS256; a PS256 signature by its very key is still refused.
    token = external_token(POLICE_ISSUER, POLICE_KID, "PS256", rsa_key("police"))
    error = refused(world, token, "token-alg")
    assert "issuer" in error.message


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_unsafe_alg_is_refused_before_the_issuer_is_even_looked_up(
    world: TokenWorld, alg: str
) -> None:
    header = {"alg": alg, "kid": "k"}
    refused(world, compact(header, claims(iss="https://nobody.example")), "token-alg")
    refused(world, compact(header, claims(iss=OMIT)), "token-alg")


def test_algorithm_of_another_key_family_is_refused(world: TokenWorld) -> None:
    # An issuer pinning RS256 and ES256: an ES256 header on the RSA key's kid is refused before
    # the key ever meets the wrong algorithm.
    trusted = TrustedIssuer(
        issuer=POLICE_ISSUER,
        keys={POLICE_KID: rsa_key("police").public_key()},
        algorithms=("RS256", "ES256"),
    )
    verifier = world.verifier_with(issuers={POLICE_ISSUER: trusted})
    token = external_token(POLICE_ISSUER, POLICE_KID, "ES256", ec_key("europol"))
    with pytest.raises(TokenInvalid) as caught:
        verifier.verify(token)
    assert caught.value.code == "token-alg"
    assert "key" in caught.value.message


def test_jwk_alg_narrows_what_its_key_verifies(tmp_path: Path, world: TokenWorld) -> None:
    document = issuers_document()
    police = document["issuers"][0]
    police["algorithms"] = ["RS256", "PS256"]
    police["jwks"]["keys"][0]["alg"] = "RS256"
    issuers = load_jwks_issuers(write_json(tmp_path / "narrow.json", document))
    verifier = world.verifier_with(issuers=issuers)
    key = rsa_key("police")

    assert verifier.verify(external_token(POLICE_ISSUER, POLICE_KID, "RS256", key))
    with pytest.raises(TokenInvalid) as caught:
        verifier.verify(external_token(POLICE_ISSUER, POLICE_KID, "PS256", key))
    assert caught.value.code == "token-alg"


# --- crit, kid and key-carrying headers ----------------------------------------------------------


@pytest.mark.parametrize(
    "header_changes",
    [
        {"crit": ["exp"], "exp": 1},
        {"crit": ["x-ihx"], "x-ihx": True},
        {"crit": ["b64"], "b64": True},
        {"crit": []},
        {"crit": "x-ihx"},
        {"crit": None},
    ],
    ids=["exp", "private", "b64", "empty", "string", "null"],
)
def test_any_crit_header_is_refused(world: TokenWorld, header_changes: dict[str, Any]) -> None:
    refused(world, node_token(**header_changes), "token-crit")


@pytest.mark.parametrize(
    "kid",
    [
        OMIT,
        None,
        "",
        42,
        ["kid"],
        {"kid": "x"},
        "unknown-kid",
        "../../../../etc/passwd",
        "/dev/null",
        "file:///etc/passwd",
        "..%2f..%2fetc%2fpasswd",
        "' OR 1=1 --",
        '" OR ""="',
        "x'; DROP TABLE reports; --",
        "ed25519:*",
        "%",
        "\u0000",
    ],
)
def test_bad_or_unknown_kid_is_refused(world: TokenWorld, kid: Any) -> None:
    error = refused(world, node_token(kid=kid), "token-kid")
    if isinstance(kid, str) and kid:
        assert kid not in error.message


def test_kid_of_our_key_with_different_case_is_refused(world: TokenWorld) -> None:
    refused(world, node_token(kid=world.key.key_id.upper()), "token-kid")


def test_kid_lookup_never_touches_files(world: TokenWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[Any] = []

    def no_open(*args: Any, **kwargs: Any) -> Any:
        opened.append(args)
        raise AssertionError("a file was opened during verification")

    monkeypatch.setattr("builtins.open", no_open)
    monkeypatch.setattr("io.open", no_open)
    for kid in ("../../../../etc/passwd", "/etc/passwd", world.key.key_id):
        with contextlib.suppress(TokenInvalid):
            world.verifier.verify(node_token(kid=kid))
    assert opened == []


@pytest.mark.parametrize("member", ["jku", "x5u"])
def test_key_url_header_with_unknown_kid_is_refused_and_not_fetched(
    world: TokenWorld, no_network: list[str], member: str
) -> None:
    attacker = ed25519_key("attacker")
    header = {
        "alg": "EdDSA",
        "kid": "attacker-key",
        member: "https://attacker.example/jwks.json",
    }
    refused(world, sign(header, claims(), attacker), "token-kid")
    assert no_network == []


@pytest.mark.parametrize("member", ["jku", "x5u"])
def test_key_url_header_with_known_kid_is_ignored(
    world: TokenWorld, no_network: list[str], member: str
) -> None:
    token = node_token(**{member: "https://attacker.example/jwks.json"})
    assert world.verifier.verify(token).subject == "police-nl"
    assert no_network == []


def test_embedded_jwk_header_is_ignored(world: TokenWorld, no_network: list[str]) -> None:
    # The attacker signs with its own key, embeds that key, and names our kid: the embedded key
    # must not be used, so the signature fails against our key.
    attacker = ed25519_key("attacker")
    header = {
        "alg": "EdDSA",
        "kid": world.key.key_id,
        "jwk": public_jwk(attacker, world.key.key_id),
    }
    refused(world, sign(header, claims(), attacker), "token-signature")


def test_embedded_x5c_header_is_ignored(world: TokenWorld, no_network: list[str]) -> None:
    header = {"alg": "EdDSA", "kid": world.key.key_id, "x5c": ["MIIBogus"]}
    refused(world, sign(header, claims(), ed25519_key("attacker")), "token-signature")


# --- signature and issuer ------------------------------------------------------------------------


def test_another_key_with_the_same_kid_is_refused(world: TokenWorld) -> None:
    header = {"alg": "EdDSA", "kid": world.key.key_id}
    refused(world, sign(header, claims(), ed25519_key("impostor")), "token-signature")


def test_tampered_payload_is_refused(world: TokenWorld) -> None:
    head, _, sig = node_token().split(".")
    forged = segment(claims(scope="admin"))
    refused(world, f"{head}.{forged}.{sig}", "token-signature")


@pytest.mark.parametrize("cut", ["empty", "truncated", "bit-flipped"])
def test_broken_signature_is_refused(world: TokenWorld, cut: str) -> None:
    head, body, sig = node_token().split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    broken = {
        "empty": b"",
        "truncated": raw[:-1],
        "bit-flipped": bytes([raw[0] ^ 1]) + raw[1:],
    }[cut]
    token = f"{head}.{body}.{base64.urlsafe_b64encode(broken).rstrip(b'=').decode()}"
    refused(world, token, "token-signature")


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_broken_rsa_and_ec_signatures_are_refused(world: TokenWorld, alg: str) -> None:
    if alg == "RS256":
        token = external_token(POLICE_ISSUER, POLICE_KID, alg, rsa_key("police"))
    else:
        token = external_token(EUROPOL_ISSUER, EUROPOL_KID, alg, ec_key("europol"))
    head, body, _ = token.split(".")
    refused(world, f"{head}.{body}.{segment(b'not a signature')}", "token-signature")


def test_issuer_a_key_claiming_issuer_b_with_shared_kid_is_refused(world: TokenWorld) -> None:
    assert world.verifier.verify(external_token(A_ISSUER, SHARED_KID, "EdDSA", ed25519_key("a")))
    token = external_token(B_ISSUER, SHARED_KID, "EdDSA", ed25519_key("a"))
    refused(world, token, "token-signature")


def test_node_key_claiming_a_jwks_issuer_is_refused(world: TokenWorld) -> None:
    token = node_token(claims(iss=A_ISSUER))
    refused(world, token, "token-kid")


def test_jwks_issuer_claiming_to_be_the_node_is_refused(world: TokenWorld) -> None:
    token = external_token(NODE_ISSUER, SHARED_KID, "EdDSA", ed25519_key("a"))
    refused(world, token, "token-kid")


@pytest.mark.parametrize(
    "iss",
    [
        "https://police.exampl",
        "https://police",
        "police.example",
        "https://police.example/",
        "https://police.example.attacker.net",
        "https://attacker.net/https://police.example",
        "https://POLICE.example",
        "HTTPS://police.example",
        " https://police.example",
        "https://police.example ",
        "https://police.example\u0000",
        "ihx:nl-eokm-2",
        "ihx:nl",
        "IHX:NL-EOKM",
        "",
    ],
)
def test_issuer_not_exactly_trusted_is_refused(world: TokenWorld, iss: str) -> None:
    token = external_token(iss, POLICE_KID, "RS256", rsa_key("police"))
    error = refused(world, token, "token-issuer")
    if iss:
        assert iss not in error.message


@pytest.mark.parametrize("iss", [42, ["https://police.example"], {"iss": "x"}, True])
def test_issuer_of_the_wrong_type_is_refused(world: TokenWorld, iss: Any) -> None:
    refused(world, node_token(claims(iss=iss)), "token-claims")


# --- audience ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "aud",
    [
        "de-eco",
        "nl-eokm ",
        "NL-EOKM",
        "nl",
        ["de-eco", "us-ncmec"],
        ["nl-eokm-x"],
        42,
        {"aud": AUDIENCE},
        [AUDIENCE, 42],
    ],
)
def test_audience_not_ours_is_refused(world: TokenWorld, aud: Any) -> None:
    refused(world, node_token(claims(aud=aud)), "token-audience")


@pytest.mark.parametrize("aud", [OMIT, None, "", []])
def test_missing_or_empty_audience_is_refused(world: TokenWorld, aud: Any) -> None:
    refused(world, node_token(claims(aud=aud)), "token-claims")


def test_token_for_another_node_is_refused_there(world: TokenWorld) -> None:
    other = world.verifier_with(audience="de-eco")
    with pytest.raises(TokenInvalid) as caught:
        other.verify(world.issuer.issue("police-nl", [Scope.CASES_PULL]))
    assert caught.value.code == "token-audience"


# --- claims --------------------------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud", "sub", "scope"])
@pytest.mark.parametrize("how", ["missing", "null"])
def test_missing_required_claim_is_refused(world: TokenWorld, claim: str, how: str) -> None:
    payload = claims(**{claim: OMIT if how == "missing" else None})
    error = refused(world, node_token(payload), "token-claims")
    assert claim in error.message


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": str(ts(NOW + timedelta(minutes=5)))},
        {"exp": True},
        {"exp": [ts(NOW + timedelta(minutes=5))]},
        {"exp": 10**400},
        {"exp": -(10**400)},
        {"iat": str(ts(NOW))},
        {"iat": 10**400},
        {"iat": False},
        {"nbf": "yesterday"},
        {"nbf": None},
        {"sub": 42},
        {"sub": ["police-nl"]},
        {"sub": ""},
        {"sub": "police nl"},
        {"sub": "police-nl\n"},
        {"sub": "-leading-dash"},
        {"sub": "x" * 129},
        {"sub": "pölice"},
        {"sub": "police'; --"},
        {"scope": 42},
        {"scope": {"cases:pull": True}},
        {"scope": ["cases:pull", 42]},
        {"jti": 42},
        {"jti": "has space"},
        {"jti": "x" * 129},
    ],
    ids=lambda changes: f"{next(iter(changes))}={next(iter(changes.values()))!r}"[:40],
)
def test_claim_of_the_wrong_type_or_shape_is_refused(
    world: TokenWorld, changes: dict[str, Any]
) -> None:
    refused(world, node_token(claims(**changes)), "token-claims")


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": "de-eco"},
        {"aud": ["de-eco"]},
        {"aud": [AUDIENCE, 42]},
        {"aud": OMIT},
        {"sub": OMIT},
        {"sub": 42},
        {"scope": OMIT},
        {"exp": OMIT},
        {"iat": OMIT},
        {"jti": 42},
    ],
    ids=repr,
)
def test_own_claim_checks_stand_without_pyjwts(
    world: TokenWorld, monkeypatch: pytest.MonkeyPatch, changes: dict[str, Any]
) -> None:
    # Defence in depth: pyjwt checks aud/sub/jti and required claims too, but these tokens must
    # be refused by our own checks even if the library's were off or changed.
    lax = {
        **tokens._DECODE_OPTIONS,
        "verify_aud": False,
        "verify_sub": False,
        "verify_jti": False,
        "require": [],
    }
    monkeypatch.setattr(tokens, "_DECODE_OPTIONS", lax)
    assert world.verifier.verify(node_token()).subject == "police-nl"
    with pytest.raises(TokenInvalid):
        world.verifier.verify(node_token(claims(**changes)))


def test_subject_of_128_sane_characters_is_accepted(world: TokenWorld) -> None:
    subject = "auth0|" + "a" * 100 + ".b_c:d@e+f/g=h~i-j"
    assert len(subject) <= 128
    assert world.verifier.verify(node_token(claims(sub=subject))).subject == subject


def test_float_dates_are_accepted(world: TokenWorld) -> None:
    token = node_token(claims(iat=ts(NOW) + 0.5, exp=ts(NOW) + 60.25))
    assert world.verifier.verify(token).expires_at == NOW + timedelta(seconds=60.25)


@pytest.mark.parametrize(
    "scope",
    [
        "cases:pull superuser",
        "ADMIN",
        "Cases:Pull",
        "cases:pull  log:read",
        "cases:pull ",
        " cases:pull",
        "cases:pull\tlog:read",
        "",
        [],
        ["cases:pull", "root"],
        ["cases:pull log:read"],
        [""],
    ],
)
def test_unknown_or_malformed_scope_is_refused(world: TokenWorld, scope: Any) -> None:
    refused(world, node_token(claims(scope=scope)), "token-scope")


# --- malformed tokens ----------------------------------------------------------------------------


def _malformed_tokens() -> dict[str, Any]:
    good = node_token()
    head, body, sig = good.split(".")
    duplicate_alg = segment(b'{"alg":"none","alg":"EdDSA"}')
    nan = segment(b'{"exp": NaN}')
    huge_number = segment(b'{"exp": 1' + b"0" * 5000 + b"}")
    return {
        "empty": "",
        "dot": ".",
        "two-dots": "..",
        "one-segment": head,
        "two-segments": f"{head}.{body}",
        "four-segments": f"{good}.{sig}",
        "five-segments": f"{good}.{sig}.{sig}",
        "empty-header": f".{body}.{sig}",
        "empty-payload": f"{head}..{sig}",
        "non-base64-header": f"!!!!.{body}.{sig}",
        "non-base64-payload": f"{head}.{body}$.{sig}",
        "non-base64-signature": f"{head}.{body}.{sig}*",
        "padded": f"{head}=.{body}.{sig}",
        "impossible-length": f"{head}.{body}A.{sig}",
        "std-base64": f"{head}.{base64.b64encode(json.dumps(claims()).encode()).decode()}.{sig}",
        "header-not-json": f"{segment(b'alg=EdDSA')}.{body}.{sig}",
        "payload-not-json": f"{head}.{segment(b'sub=police')}.{sig}",
        "header-not-utf8": f"{segment(bytes([0xFF, 0xFE]))}.{body}.{sig}",
        "header-array": f"{segment(['EdDSA'])}.{body}.{sig}",
        "header-string": f"{segment('EdDSA')}.{body}.{sig}",
        "header-number": f"{segment(1)}.{body}.{sig}",
        "header-null": f"{segment(None)}.{body}.{sig}",
        "payload-array": f"{head}.{segment([claims()])}.{sig}",
        "payload-string": f"{head}.{segment('police-nl')}.{sig}",
        "header-duplicate-alg": f"{duplicate_alg}.{body}.{sig}",
        "payload-duplicate-iss": f"{head}.{segment(_duplicate_iss())}.{sig}",
        "payload-nan": f"{head}.{nan}.{sig}",
        "deep-nesting": f"{head}.{segment(b'[' * 3000 + b']' * 3000)}.{sig}",
        "huge-number": f"{head}.{huge_number}.{sig}",
        "whitespace": f" {good}",
        "newline": f"{good}\n",
        "bearer-prefix": f"Bearer {good}",
        "non-ascii": f"{head}.{body}.{sig}\u00e9",
        "bytes": good.encode(),
        "none": None,
        "number": 42,
    }


def _duplicate_iss() -> bytes:
    body = json.dumps(claims(iss=POLICE_ISSUER))
    return body.replace("{", '{"iss":"' + NODE_ISSUER + '",', 1).encode()


@pytest.mark.parametrize("shape", sorted(_malformed_tokens()))
def test_malformed_token_is_refused(world: TokenWorld, shape: str) -> None:
    refused(world, _malformed_tokens()[shape], "token-malformed")


def test_huge_token_is_refused_before_parsing(
    world: TokenWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_parse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a huge token was parsed")

    monkeypatch.setattr(tokens, "_decode_segment", must_not_parse)
    monkeypatch.setattr(tokens._PYJWT, "decode", must_not_parse)
    monkeypatch.setattr(tokens, "_COMPACT_JWS", None)  # any use of it would fail too
    # Validly signed, so size alone is what refuses it.
    huge = node_token(claims(padding="x" * MAX_TOKEN_LENGTH))
    error = refused(world, huge, "token-malformed")
    assert "longer" in error.message


def test_token_just_under_the_size_limit_is_accepted(world: TokenWorld) -> None:
    base = len(node_token(claims(padding="")))
    # Each 3 bytes of payload become 4 characters of base64url.
    token = node_token(claims(padding="x" * ((MAX_TOKEN_LENGTH - base) * 3 // 4)))
    assert len(token) <= MAX_TOKEN_LENGTH
    assert world.verifier.verify(token).subject == "police-nl"


# --- fuzzing: whatever arrives, the answer is a Principal or TokenInvalid ------------------------

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
_CLAIM_NAMES = st.sampled_from(["iss", "sub", "aud", "exp", "iat", "nbf", "scope", "jti", "x"])
_HEADER_NAMES = st.sampled_from(["alg", "kid", "typ", "crit", "jku", "b64", "cty", "x"])


@pytest.fixture(scope="module")
def fuzz_world(tmp_path_factory: pytest.TempPathFactory) -> TokenWorld:
    return make_token_world(tmp_path_factory.mktemp("fuzz"))


def _verify_or_refuse(world: TokenWorld, token: Any) -> Principal | None:
    try:
        return world.verifier.verify(token)
    except TokenInvalid:
        return None


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=300) | st.from_regex(r"[A-Za-z0-9_.=-]{0,200}", fullmatch=True))
def test_arbitrary_text_is_refused(fuzz_world: TokenWorld, text: str) -> None:
    assert _verify_or_refuse(fuzz_world, text) is None


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_edited_token_is_refused_or_unchanged(fuzz_world: TokenWorld, data: st.DataObject) -> None:
    good = node_token()
    index = data.draw(st.integers(0, len(good) - 1))
    char = data.draw(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0-_.="))
    edited = good[:index] + char + good[index + 1 :]
    principal = _verify_or_refuse(fuzz_world, edited)
    if edited != good:
        assert principal is None


@settings(max_examples=300, deadline=None)
@given(
    claim_changes=st.dictionaries(_CLAIM_NAMES, _JSON, max_size=3),
    header_changes=st.dictionaries(_HEADER_NAMES, _JSON, max_size=2),
)
def test_validly_signed_odd_claims_never_break_the_verifier(
    fuzz_world: TokenWorld, claim_changes: dict[str, Any], header_changes: dict[str, Any]
) -> None:
    token = node_token(claims(**claim_changes), **header_changes)
    principal = _verify_or_refuse(fuzz_world, token)
    if principal is not None:
        # Anything accepted is a sane principal for this node.
        assert principal.issuer == NODE_ISSUER
        assert principal.scopes
        assert principal.expires_at > NOW - LEEWAY


# --- error hygiene -------------------------------------------------------------------------------


def test_refusals_never_echo_the_token(world: TokenWorld) -> None:
    samples = [
        node_token(claims(aud="de-eco")),
        node_token(kid="../../etc/passwd"),
        node_token(claims(scope="cases:pull superuser")),
        node_token(claims(sub="x" * 200)),
        compact({"alg": "none"}, claims()),
        _malformed_tokens()["header-not-json"],
        external_token("https://police.example.evil", POLICE_KID, "RS256", rsa_key("police")),
    ]
    for token in samples:
        with pytest.raises(TokenInvalid) as caught:
            world.verifier.verify(token)
        error = caught.value
        text = f"{error} {error.message} {error!r}"
        for part in token.split("."):
            if len(part) >= 8:
                assert part not in text
        for leaked in ("superuser", "passwd", "evil", "de-eco", "xxxxxxxx"):
            assert leaked not in text
        assert len(error.message) < 100
        # No chained library exception carrying details to a careless logger.
        assert error.__cause__ is None
        assert error.__context__ is None or error.__suppress_context__


def test_token_errors_are_auth_errors_with_stable_codes(world: TokenWorld) -> None:
    with pytest.raises(AuthError) as caught:
        world.verifier.verify("")
    assert isinstance(caught.value, TokenInvalid)
    assert TokenInvalid("x").code == "token-invalid"
    assert PermissionDenied("x").code == "permission-denied"


# --- scopes --------------------------------------------------------------------------------------


def _principal(*scopes: Scope) -> Principal:
    return Principal(
        subject="police-nl",
        issuer=NODE_ISSUER,
        scopes=frozenset(scopes),
        token_id=None,
        expires_at=NOW,
    )


def test_require_refuses_a_missing_scope() -> None:
    principal = _principal(Scope.CASES_PULL)
    with pytest.raises(PermissionDenied) as caught:
        require(principal, Scope.LOG_READ)
    assert caught.value.code == "permission-denied"
    assert "log:read" in caught.value.message


def test_require_allows_a_granted_scope() -> None:
    require(_principal(Scope.CASES_PULL), Scope.CASES_PULL)


@pytest.mark.parametrize("scope", list(Scope))
def test_admin_implies_every_scope(scope: Scope) -> None:
    admin = _principal(Scope.ADMIN)
    assert admin.has(scope)
    require(admin, scope)


@pytest.mark.parametrize("scope", [s for s in Scope if s is not Scope.ADMIN])
def test_no_other_scope_implies_admin(scope: Scope) -> None:
    principal = _principal(*(s for s in Scope if s is not Scope.ADMIN))
    assert principal.has(scope)
    with pytest.raises(PermissionDenied):
        require(principal, Scope.ADMIN)


def test_verified_scopes_drive_require(world: TokenWorld) -> None:
    principal = world.verifier.verify(world.issuer.issue("police-nl", [Scope.CASES_PULL]))
    require(principal, Scope.CASES_PULL)
    with pytest.raises(PermissionDenied):
        require(principal, Scope.REPORTS_SUBMIT)


# --- issuing -------------------------------------------------------------------------------------


def test_issuer_refuses_ttl_over_the_maximum(world: TokenWorld) -> None:
    with pytest.raises(TokenIssueError):
        world.issuer.issue("police-nl", [Scope.CASES_PULL], ttl=timedelta(minutes=15, seconds=1))


def test_issuer_max_lifetime_is_configurable() -> None:
    issuer = TokenIssuer(
        node_key(), NODE_ISSUER, AUDIENCE, FakeClock(), max_lifetime=timedelta(minutes=5)
    )
    issuer.issue("police-nl", [Scope.CASES_PULL], ttl=timedelta(minutes=5))
    with pytest.raises(TokenIssueError):
        issuer.issue("police-nl", [Scope.CASES_PULL], ttl=timedelta(minutes=6))


def test_issued_ttl_sets_exp(world: TokenWorld) -> None:
    token = world.issuer.issue("police-nl", ["cases:pull"], ttl=timedelta(minutes=2))
    assert world.verifier.verify(token).expires_at == NOW + timedelta(minutes=2)


@pytest.mark.parametrize(
    ("subject", "scopes", "ttl", "token_id"),
    [
        ("", [Scope.CASES_PULL], timedelta(minutes=1), None),
        ("police nl", [Scope.CASES_PULL], timedelta(minutes=1), None),
        ("police-nl", [], timedelta(minutes=1), None),
        ("police-nl", ["superuser"], timedelta(minutes=1), None),
        ("police-nl", [Scope.CASES_PULL], timedelta(0), None),
        ("police-nl", [Scope.CASES_PULL], timedelta(seconds=-5), None),
        ("police-nl", [Scope.CASES_PULL], timedelta(minutes=1), "has space"),
    ],
)
def test_issuer_refuses_what_verification_would(
    world: TokenWorld, subject: str, scopes: list[Any], ttl: timedelta, token_id: str | None
) -> None:
    with pytest.raises(TokenIssueError):
        world.issuer.issue(subject, scopes, ttl=ttl, token_id=token_id)


# --- configuration -------------------------------------------------------------------------------


def test_node_issuer_trusts_exactly_the_node_key() -> None:
    key = node_key()
    trusted = node_issuer(key.public, NODE_ISSUER)
    assert trusted.issuer == NODE_ISSUER
    assert trusted.algorithms == ("EdDSA",)
    assert list(trusted.keys) == [key.key_id]


@pytest.mark.parametrize("alg", ["HS256", "HS512", "none", "None", "ES256K", "RS1", "", 7])
def test_trusted_issuer_refuses_unsafe_or_unknown_algorithms(alg: Any) -> None:
    with pytest.raises(TrustConfigError, match=r"algorithms\[0\]"):
        TrustedIssuer(
            issuer=POLICE_ISSUER,
            keys={POLICE_KID: rsa_key("police").public_key()},
            algorithms=(alg,),
        )


@pytest.mark.parametrize(
    ("make_key", "algorithms", "problem"),
    [
        (lambda: rsa_key("small", 1024).public_key(), ("RS256",), "1024 bits"),
        (lambda: rsa_key("police"), ("RS256",), "not a supported public key"),
        (lambda: ec_key("k1", "secp256k1").public_key(), ("ES256",), "curve"),
        (lambda: ec_key("p384", "P-384").public_key(), ("ES256",), "fits none"),
        (node_key().public.to_pem, ("EdDSA",), "not a supported public key"),
        (lambda: b"secret", ("EdDSA",), "not a supported public key"),
    ],
    ids=["rsa-1024", "private-key", "secp256k1", "curve-mismatch", "pem-bytes", "secret"],
)
def test_trusted_issuer_refuses_unusable_keys(
    make_key: Callable[[], Any], algorithms: tuple[str, ...], problem: str
) -> None:
    with pytest.raises(TrustConfigError, match=problem):
        TrustedIssuer(issuer=POLICE_ISSUER, keys={"k": make_key()}, algorithms=algorithms)


@pytest.mark.parametrize(
    "key_algorithms",
    [{"other": ("RS256",)}, {POLICE_KID: ()}, {POLICE_KID: ("PS256",)}, {POLICE_KID: ("ES256",)}],
    ids=["unknown-kid", "empty", "not-pinned", "not-fitting-the-key"],
)
def test_trusted_issuer_refuses_bad_key_algorithms(key_algorithms: dict[str, Any]) -> None:
    with pytest.raises(TrustConfigError, match="key_algorithms"):
        TrustedIssuer(
            issuer=POLICE_ISSUER,
            keys={POLICE_KID: rsa_key("police").public_key()},
            algorithms=("RS256", "ES256"),
            key_algorithms=key_algorithms,
        )


def test_trusted_issuer_is_immutable_after_construction() -> None:
    keys = {POLICE_KID: rsa_key("police").public_key()}
    trusted = TrustedIssuer(issuer=POLICE_ISSUER, keys=keys, algorithms=("RS256",))
    keys["attacker"] = rsa_key("attacker").public_key()
    assert list(trusted.keys) == [POLICE_KID]
    with pytest.raises(TypeError):
        trusted.keys["attacker"] = keys["attacker"]  # type: ignore[index]


def test_policy_refuses_an_issuer_filed_under_another_iss(world: TokenWorld) -> None:
    trusted = world.policy.issuers[POLICE_ISSUER]
    with pytest.raises(TrustConfigError):
        TokenPolicy(audience=AUDIENCE, issuers={"https://police.example.evil": trusted})


def test_policy_refuses_nonsense_limits(world: TokenWorld) -> None:
    with pytest.raises(TrustConfigError):
        replace(world.policy, max_lifetime=timedelta(0))
    with pytest.raises(TrustConfigError):
        replace(world.policy, leeway=timedelta(seconds=-1))
    with pytest.raises(TrustConfigError):
        replace(world.policy, audience="")


def test_jwks_file_is_loaded_without_network(tmp_path: Path, no_network: list[str]) -> None:
    document = issuers_document()
    # URL members in a JWK are ignored: nothing is fetched to "complete" the key.
    document["issuers"][0]["jwks"]["keys"][0]["x5u"] = "https://attacker.example/cert.pem"
    document["issuers"][0]["jwks"]["keys"][0]["jku"] = "https://attacker.example/jwks.json"
    issuers = load_jwks_issuers(write_json(tmp_path / "issuers.json", document))
    assert set(issuers) == {POLICE_ISSUER, EUROPOL_ISSUER, A_ISSUER, B_ISSUER, JWCRYPTO_ISSUER}
    assert issuers[POLICE_ISSUER].algorithms == ("RS256",)
    assert set(issuers[JWCRYPTO_ISSUER].keys) == set(JWCRYPTO_KIDS.values())


def _break(document: dict[str, Any], path: str, value: Any) -> None:
    """Set (or with OMIT, delete) the member at a dotted path like ``issuers.0.jwks.keys``."""
    *parents, last = path.split(".")
    target: Any = document
    for name in parents:
        target = target[int(name)] if isinstance(target, list) else target[name]
    key: Any = int(last) if isinstance(target, list) else last
    if value is OMIT:
        del target[key]
    else:
        target[key] = value


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        ("issuers", OMIT, "issuers: must be a list"),
        ("issuers", {}, "issuers: must be a list"),
        ("extra", 1, "unknown field 'extra'"),
        ("issuers.0", "police", "issuers[0]: must be an object"),
        ("issuers.0.iss", OMIT, "issuers[0].iss"),
        ("issuers.0.iss", "", "issuers[0].iss"),
        ("issuers.1.iss", POLICE_ISSUER, "issuers[1].iss: duplicate issuer"),
        ("issuers.0.issuer", "x", "issuers[0]: unknown field 'issuer'"),
        ("issuers.0.algorithms", [], "issuers[0].algorithms"),
        ("issuers.0.algorithms", "RS256", "issuers[0].algorithms"),
        ("issuers.0.algorithms", ["RS256", "HS256"], "issuers[0].algorithms[1]"),
        ("issuers.0.algorithms", ["none"], "issuers[0].algorithms[0]"),
        ("issuers.0.algorithms", ["RS256", "RS256"], "issuers[0].algorithms: duplicate"),
        ("issuers.0.algorithms", ["ES256"], "issuers[0].jwks.keys[0]: the key fits none"),
        ("issuers.0.jwks", OMIT, "issuers[0].jwks"),
        ("issuers.0.jwks.keys", [], "issuers[0].jwks.keys"),
        ("issuers.0.jwks.keys.0", "key", "issuers[0].jwks.keys[0]: must be an object"),
        ("issuers.0.jwks.keys.0.kid", OMIT, "issuers[0].jwks.keys[0].kid"),
        ("issuers.0.jwks.keys.0.kid", 7, "issuers[0].jwks.keys[0].kid"),
        ("issuers.0.jwks.keys.0.kty", "oct", "issuers[0].jwks.keys[0].kty: symmetric"),
        ("issuers.0.jwks.keys.0.kty", "XYZ", "issuers[0].jwks.keys[0].kty"),
        ("issuers.0.jwks.keys.0.d", "AQAB", "issuers[0].jwks.keys[0].d: private key material"),
        ("issuers.0.jwks.keys.0.use", "enc", "issuers[0].jwks.keys[0].use"),
        ("issuers.0.jwks.keys.0.key_ops", ["sign"], "issuers[0].jwks.keys[0].key_ops"),
        ("issuers.0.jwks.keys.0.alg", "PS256", "issuers[0].jwks.keys[0].alg"),
        ("issuers.0.jwks.keys.0.n", "!!notbase64!!", "issuers[0].jwks.keys[0]: not a valid RSA"),
        ("issuers.0.jwks.keys.0.e", OMIT, "issuers[0].jwks.keys[0]: not a valid RSA"),
        ("issuers.1.jwks.keys.0.crv", "P-192", "issuers[1].jwks.keys[0].crv"),
        ("issuers.1.jwks.keys.0.x", "AAAA", "issuers[1].jwks.keys[0]: not a valid EC"),
        ("issuers.2.jwks.keys.0.crv", "Ed448", "issuers[2].jwks.keys[0].crv"),
        ("issuers.4.jwks.keys.1.kid", JWCRYPTO_KIDS["EdDSA"], "issuers[4].jwks.keys[1].kid: dup"),
    ],
)
def test_jwks_file_problems_name_the_field(
    tmp_path: Path, path: str, value: Any, named: str
) -> None:
    document = issuers_document()
    _break(document, path, value)
    file = write_json(tmp_path / "issuers.json", document)
    with pytest.raises(TrustConfigError) as caught:
        load_jwks_issuers(file)
    assert caught.value.message.startswith(f"{file}: ")
    assert named in caught.value.message


def test_jwks_file_with_a_small_rsa_key_is_refused(tmp_path: Path) -> None:
    document = issuers_document()
    document["issuers"][0]["jwks"]["keys"][0] = public_jwk(rsa_key("small", 1024), POLICE_KID)
    with pytest.raises(TrustConfigError, match=r"issuers\[0\]\.jwks\.keys\[0\]: RSA key of 1024"):
        load_jwks_issuers(write_json(tmp_path / "issuers.json", document))


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "not valid JSON"),
        (b"{issuers: []}", "not valid JSON"),
        (b'{"issuers": [], "issuers": []}', "duplicate member"),
        (b"[]", "(top level): must be an object"),
        (b'{"issuers": [NaN]}', "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    ],
)
def test_jwks_file_that_is_not_a_document_is_refused(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    file = tmp_path / "issuers.json"
    file.write_bytes(content)
    with pytest.raises(TrustConfigError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        load_jwks_issuers(file)


def test_jwks_file_missing_or_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TrustConfigError, match="not found"):
        load_jwks_issuers(tmp_path / "absent.json")
    with pytest.raises(TrustConfigError, match="directory"):
        load_jwks_issuers(tmp_path)


def test_empty_issuer_list_trusts_nobody(tmp_path: Path) -> None:
    assert load_jwks_issuers(write_json(tmp_path / "issuers.json", {"issuers": []})) == {}


# --- interop: tokens minted by jwcrypto ----------------------------------------------------------


def _jwcrypto_token(alg: str, **changes: Any) -> str:
    key = jwcrypto_key(alg)
    token = jwcrypto_jwt.JWT(
        header={"alg": alg, "kid": JWCRYPTO_KIDS[alg], "typ": "JWT"},
        claims=claims(iss=JWCRYPTO_ISSUER, **changes),
    )
    token.make_signed_token(key)
    serialized: str = token.serialize()
    return serialized


@pytest.mark.parametrize("alg", ["EdDSA", "RS256", "ES256"])
def test_jwcrypto_tokens_are_accepted(world: TokenWorld, alg: str) -> None:
    principal = world.verifier.verify(_jwcrypto_token(alg, scope="cases:pull log:read"))
    assert principal.issuer == JWCRYPTO_ISSUER
    assert principal.scopes == {Scope.CASES_PULL, Scope.LOG_READ}


@pytest.mark.parametrize("alg", ["EdDSA", "RS256", "ES256"])
def test_expired_jwcrypto_token_is_refused(world: TokenWorld, alg: str) -> None:
    token = _jwcrypto_token(alg)
    world.clock.advance(timedelta(minutes=10))
    refused(world, token, "token-expired")


@pytest.mark.parametrize("alg", ["EdDSA", "RS256", "ES256"])
def test_jwcrypto_token_for_another_audience_is_refused(world: TokenWorld, alg: str) -> None:
    refused(world, _jwcrypto_token(alg, aud="de-eco"), "token-audience")


def test_jwcrypto_key_used_with_another_kids_algorithm_is_refused(world: TokenWorld) -> None:
    # The jwcrypto issuer pins EdDSA, RS256 and ES256; its RSA kid still only verifies RS256.
    token = jwcrypto_jwt.JWT(
        header={"alg": "ES256", "kid": JWCRYPTO_KIDS["RS256"]},
        claims=claims(iss=JWCRYPTO_ISSUER),
    )
    token.make_signed_token(jwcrypto_key("ES256"))
    refused(world, token.serialize(), "token-alg")


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_hand_built_alg_none_for_the_jwcrypto_issuer_is_refused(
    world: TokenWorld, alg: str
) -> None:
    # jwcrypto will not sign with "none", so the token is built by hand around a real signature.
    real = _jwcrypto_token("EdDSA").split(".")[2]
    header = {"alg": alg, "kid": JWCRYPTO_KIDS["EdDSA"], "typ": "JWT"}
    token = f"{segment(header)}.{segment(claims(iss=JWCRYPTO_ISSUER))}.{real}"
    refused(world, token, "token-alg")
    refused(world, f"{segment(header)}.{segment(claims(iss=JWCRYPTO_ISSUER))}.", "token-alg")


def test_jwcrypto_verifies_tokens_from_our_issuer(world: TokenWorld) -> None:
    token = world.issuer.issue("police-nl", [Scope.CASES_PULL], token_id="t-1")
    public = jwcrypto_jwk.JWK.from_pem(world.key.public.to_pem())
    jws = jwcrypto_jws.JWS()
    jws.deserialize(token)
    # Signature only: jwcrypto's claim checks would use the real clock, not the fake one.
    jws.verify(public, alg="EdDSA")
    assert json.loads(jws.payload)["sub"] == "police-nl"
    assert jws.jose_header["kid"] == world.key.key_id
