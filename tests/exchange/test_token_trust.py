"""Network tokens as every node's token policy sees them (exchange/token_trust.py).

A network reader's token is accepted for the read scopes the signed manifest grants it, and
refused for everything else: another audience, another network, a scope beyond the grant (even
signed by the reader), a member that is no reader minting one, a key the manifest revoked, an
HMAC or ``none`` algorithm, an audience list. The policy follows the manifest: a newer one that
drops a reader or revokes its key applies at once (``ManifestVerifier.rebuild``).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from auth.errors import PermissionDenied, TokenInvalid, TokenIssueError, TrustConfigError
from auth.keys import SigningKey
from auth.manifest import (
    Manifest,
    network_audience,
    network_issuer,
    revoke_key,
    set_network_reader,
)
from auth.tokens import Scope, TokenIssuer, TokenPolicy, TokenVerifier, node_issuer
from exchange.settings import Settings, load_settings
from exchange.token_trust import ManifestVerifier, network_issuers, shrunk_issuers, token_policy
from exchange.tools.provision import write_settings
from tests.auth.factories import COORDINATOR, NETWORK, T0, make_network, signing_key
from tests.auth.token_factories import FakeClock, hmac_token, sign, ts

NOW = T0 + timedelta(days=30)
NODE = "de-eco"
READS = frozenset({"log:read", "stats:read"})


def _manifest(**changes: Any) -> Manifest:
    manifest = set_network_reader(make_network().manifest, COORDINATOR, READS)
    return dataclasses.replace(manifest, **changes) if changes else manifest


def _policy(manifest: Manifest) -> TokenPolicy:
    own = node_issuer(signing_key(NODE).public, NODE)
    return TokenPolicy(audience=NODE, issuers={NODE: own, **network_issuers(manifest)})


def _verifier(manifest: Manifest, clock: FakeClock) -> TokenVerifier:
    return TokenVerifier(_policy(manifest), clock)


def _network_issuer(clock: FakeClock, member: str = COORDINATOR, **kw: Any) -> TokenIssuer:
    grant = kw.pop("grant", frozenset({Scope.LOG_READ, Scope.STATS_READ}))
    return TokenIssuer(
        signing_key(member),
        network_issuer(member),
        kw.pop("audience", network_audience(NETWORK)),
        clock,
        grant=grant,
    )


def _claims(**changes: Any) -> dict[str, Any]:
    base = {
        "iss": network_issuer(COORDINATOR),
        "sub": "coordinator",
        "aud": network_audience(NETWORK),
        "iat": ts(NOW),
        "exp": ts(NOW + timedelta(minutes=5)),
        "scope": "log:read stats:read",
    }
    return {**base, **changes}


def _forged(claims: dict[str, Any], key: SigningKey | None = None, **header: Any) -> str:
    key = key or signing_key(COORDINATOR)
    return sign({"alg": "EdDSA", "kid": key.key_id, "typ": "JWT", **header}, claims, key)


def _refused(verifier: TokenVerifier, token: str, code: str) -> None:
    with pytest.raises(TokenInvalid) as caught:
        verifier.verify(token)
    assert caught.value.code == code, caught.value.message


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


def test_a_readers_network_token_is_accepted_for_its_read_scopes(clock: FakeClock) -> None:
    token = _network_issuer(clock).issue("coordinator", [Scope.LOG_READ, Scope.STATS_READ])

    principal = _verifier(_manifest(), clock).verify(token)

    assert principal.issuer == "ihx-member:inhope"
    assert principal.subject == "coordinator"
    assert principal.scopes == {Scope.LOG_READ, Scope.STATS_READ}
    assert not principal.has(Scope.CASES_PULL)


@pytest.mark.parametrize("scope", ["cases:pull", "reports:submit", "cases:work", "admin"])
def test_a_network_token_with_any_other_scope_is_denied_naming_the_rule(
    clock: FakeClock, scope: str
) -> None:
    # Signed by the reader's own key: only the grant stands in the way.
    token = _forged(_claims(scope=f"log:read {scope}"))

    with pytest.raises(PermissionDenied) as caught:
        _verifier(_manifest(), clock).verify(token)

    assert caught.value.code == "token-network-scope"
    assert "network_readers" in caught.value.message
    assert scope in caught.value.message


def test_a_grant_of_log_read_only_denies_stats_read(clock: FakeClock) -> None:
    manifest = set_network_reader(_manifest(), COORDINATOR, frozenset({"log:read"}))
    verifier = _verifier(manifest, clock)

    assert verifier.verify(_forged(_claims(scope="log:read"))).scopes == {Scope.LOG_READ}
    with pytest.raises(PermissionDenied, match="stats:read"):
        verifier.verify(_forged(_claims(scope="stats:read")))


def test_the_issuer_refuses_to_mint_beyond_the_grant(clock: FakeClock) -> None:
    with pytest.raises(TokenIssueError, match="network_readers"):
        _network_issuer(clock).issue("coordinator", [Scope.CASES_PULL])


def test_a_token_for_another_network_is_refused(clock: FakeClock) -> None:
    other = _network_issuer(clock, audience=network_audience("other-net"))
    token = other.issue("coordinator", [Scope.LOG_READ])

    _refused(_verifier(_manifest(), clock), token, "token-audience")
    # And the same keys in another network's manifest do not take this network's tokens.
    mine = _network_issuer(clock).issue("coordinator", [Scope.LOG_READ])
    _refused(_verifier(_manifest(network="other-net"), clock), mine, "token-audience")


@pytest.mark.parametrize(
    "aud",
    [
        [network_audience(NETWORK), NODE],
        [network_audience(NETWORK)],
        NODE,
        "ihx-network:inhope-test ",
    ],
)
def test_audience_tricks_are_refused(clock: FakeClock, aud: Any) -> None:
    _refused(_verifier(_manifest(), clock), _forged(_claims(aud=aud)), "token-audience")


def test_the_nodes_own_issuer_cannot_speak_for_the_network(clock: FakeClock) -> None:
    own = TokenIssuer(signing_key(NODE), NODE, network_audience(NETWORK), clock)
    _refused(_verifier(_manifest(), clock), own.issue("x", [Scope.LOG_READ]), "token-audience")


def test_a_member_that_is_no_reader_cannot_mint_network_tokens(clock: FakeClock) -> None:
    verifier = _verifier(_manifest(), clock)
    nl = signing_key("nl-eokm")

    # Its own name: not a reader, so not a trusted issuer at all.
    own_name = _network_issuer(clock, member="nl-eokm").issue("x", [Scope.LOG_READ])
    _refused(verifier, own_name, "token-issuer")
    # The reader's name with its own key: not one of the reader's keys.
    _refused(verifier, _forged(_claims(), nl), "token-kid")
    # The reader's name and kid, its own key: the signature does not verify.
    _refused(
        verifier, _forged(_claims(), nl, kid=signing_key(COORDINATOR).key_id), "token-signature"
    )


def test_algorithm_confusion_is_refused(clock: FakeClock) -> None:
    verifier = _verifier(_manifest(), clock)
    coordinator = signing_key(COORDINATOR)
    header = {"alg": "HS256", "kid": coordinator.key_id, "typ": "JWT"}

    _refused(verifier, hmac_token(header, _claims(), coordinator.public.raw), "token-alg")
    unsigned = _forged(_claims(), alg="none").rsplit(".", 1)[0] + "."
    _refused(verifier, unsigned, "token-alg")


def test_a_revoked_reader_key_stops_at_its_revocation(clock: FakeClock) -> None:
    token = _network_issuer(clock).issue("coordinator", [Scope.LOG_READ])
    key_id = signing_key(COORDINATOR).key_id
    revoked = revoke_key(_manifest(), COORDINATOR, key_id, at=NOW + timedelta(minutes=1))
    verifier = _verifier(revoked, clock)

    assert verifier.verify(token).subject == "coordinator"  # the memo is warm now
    clock.advance(timedelta(minutes=1))
    _refused(verifier, token, "token-key-not-valid")


def test_the_policy_follows_the_manifest(tmp_path: Path, clock: FakeClock) -> None:
    manifest = _manifest()
    own = node_issuer(signing_key(NODE).public, NODE)
    verifier = ManifestVerifier(_settings(tmp_path), NODE, own, manifest, clock)
    token = _network_issuer(clock).issue("coordinator", [Scope.LOG_READ])
    assert verifier.verify(token).scopes == {Scope.LOG_READ}

    verifier.rebuild(set_network_reader(manifest, COORDINATOR, frozenset()))
    with pytest.raises(TokenInvalid) as caught:
        verifier.verify(token)
    assert caught.value.code == "token-issuer"

    verifier.rebuild(manifest)
    assert verifier.verify(token).subject == "coordinator"


def test_settings_cannot_claim_a_network_issuer_name(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    fake = node_issuer(signing_key(NODE).public, "ihx-member:inhope")
    with pytest.raises(TrustConfigError, match="network readers"):
        token_policy(settings, NODE, fake, _manifest())


def _settings(tmp_path: Path) -> Settings:
    config = tmp_path / "node.toml"
    write_settings(
        config,
        member=NODE,
        listen="127.0.0.1:7702",
        trusted_keys=["a2V5"],
        country_db=tmp_path / "country.mmdb",
        asn_db=None,
    )
    return load_settings(config, env={})


def test_shrunk_issuers_names_the_issuers_a_newer_manifest_trusts_less() -> None:
    manifest = _manifest()
    reader = network_issuer(COORDINATOR)
    key_id = signing_key(COORDINATOR).key_id
    same = _policy(dataclasses.replace(manifest, epoch=manifest.epoch + 1))
    assert shrunk_issuers(_policy(manifest), same) == []
    narrower = set_network_reader(manifest, COORDINATOR, frozenset({"log:read"}))
    assert shrunk_issuers(_policy(manifest), _policy(narrower)) == [reader]
    dropped = set_network_reader(manifest, COORDINATOR, frozenset())
    assert shrunk_issuers(_policy(manifest), _policy(dropped)) == [reader]
    revoked = revoke_key(manifest, COORDINATOR, key_id, at=NOW)
    assert shrunk_issuers(_policy(manifest), _policy(revoked)) == [reader]
    assert shrunk_issuers(_policy(manifest), None) == [NODE, reader]
