"""External issuers whose keys are fetched: OIDC discovery or a JWKS URL, on a real HTTP server.

A small identity provider runs on loopback (http on loopback only is allowed, for tests) and
serves the discovery document and the JWKS; the test changes what it serves and counts what it
is asked. Time is a fake clock (the cache and the refresh limit read it). Fetches run on the
issuer's worker thread, never in ``verify``: a test asks, sees the immediate answer, then waits
for the worker (``settle``). Checked: tokens verify with fetched keys, which are cached; a
rotation is picked up by one refresh scheduled by the new kid; a flood of random kids costs at
most one fetch per refresh interval; an IdP that is down is ``IssuerUnavailable`` for its tokens
only, and held keys stay in use while it is down, up to ``max_stale``; every
fetched key passes the trust file's checks; redirects, oversized answers, a discovery document
naming another issuer and plain http off loopback are refused.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from auth.errors import IssuerUnavailable, TokenInvalid, TrustConfigError
from auth.tokens import Scope, TokenIssuer, TokenPolicy, TokenVerifier, load_jwks_issuers
from auth.tokens.remote import RemoteIssuer, RemoteOptions
from tests.auth.token_factories import (
    AUDIENCE,
    NODE_ISSUER,
    NOW,
    FakeClock,
    PrivateKey,
    b64url,
    external_token,
    node_key,
    public_jwk,
    rsa_key,
    write_json,
)

OPTIONS = RemoteOptions(ttl=timedelta(minutes=5), min_refresh=timedelta(seconds=30), timeout=2.0)


def _huge_rsa_jwk(kid: str) -> dict[str, Any]:
    """A 16384-bit RSA public key (an odd modulus is all a public key needs): too costly to
    verify with, so refused."""
    n = (1 << 16383) | 0x10001 | 1
    raw = n.to_bytes(2048, "big")
    return {"kty": "RSA", "kid": kid, "n": b64url(raw), "e": "AQAB"}


@dataclass
class Idp:
    """What the identity provider serves, and what it was asked."""

    jwks: Any = field(default_factory=dict)
    discovery_issuer: str | None = None  # None: the server's own base URL
    discovery_jwks_uri: str | None = None  # None: the server's own /jwks.json
    jwks_status: int = 200
    asked: list[str] = field(default_factory=list)
    base: str = ""

    def serve_keys(self, *keys: tuple[PrivateKey, str]) -> None:
        self.jwks = {"keys": [public_jwk(key, kid, use="sig") for key, kid in keys]}


@pytest.fixture
def idp() -> Iterator[Idp]:
    state = Idp()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.asked.append(self.path)
            if self.path == "/.well-known/openid-configuration":
                doc = {
                    "issuer": state.discovery_issuer or state.base,
                    "jwks_uri": state.discovery_jwks_uri or f"{state.base}/jwks.json",
                }
                self._send(200, json.dumps(doc).encode())
            elif self.path == "/jwks.json":
                self._send(state.jwks_status, json.dumps(state.jwks).encode())
            elif self.path == "/big.json":
                self._send(200, b'{"keys": [' + b" " * (300 * 1024) + b"]}")
            elif self.path == "/moved.json":
                self.send_response(302)
                self.send_header("Location", f"{state.base}/jwks.json")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._send(404, b"{}")

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class World:
    clock: FakeClock
    verifier: TokenVerifier
    remote: RemoteIssuer
    own: TokenIssuer


MakeWorld = Callable[..., World]


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[MakeWorld]:
    """``make_world(iss, **source)``: a verifier trusting one fetched issuer. Its worker is
    closed after the test: left running, it would wake at the ttl and fetch from an IdP long
    gone, logging the failure into whichever test runs then."""
    made: list[RemoteIssuer] = []

    def make(iss: str, **source: Any) -> World:
        clock = FakeClock(NOW)
        entry = {"iss": iss, "algorithms": ["RS256"], **source}
        path = write_json(tmp_path / "issuers.json", {"issuers": [entry]})
        issuers = load_jwks_issuers(path, clock=clock, options=OPTIONS)
        remote = issuers[iss]
        assert isinstance(remote, RemoteIssuer)
        made.append(remote)
        own = TokenIssuer(node_key(), NODE_ISSUER, AUDIENCE, clock)
        policy = TokenPolicy(audience=AUDIENCE, issuers={NODE_ISSUER: own.trusted, **issuers})
        return World(clock, TokenVerifier(policy, clock), remote, own)

    yield make
    for remote in made:
        remote.close(timeout=OPTIONS.timeout + 1)


def settle(world: World) -> None:
    """Wait for the worker's scheduled fetch to finish."""
    assert world.remote.wait_settled(10.0)


def _first(world: World, token: str) -> Any:
    """Verify ``token`` once keys are held: the first call only schedules their fetch."""
    with pytest.raises(IssuerUnavailable, match="keys unavailable"):
        world.verifier.verify(token)
    settle(world)
    return world.verifier.verify(token)


def _token(iss: str, kid: str, key: PrivateKey, clock: FakeClock | None = None) -> str:
    at = clock.now if clock is not None else NOW
    iat = int(at.timestamp())
    return external_token(iss, kid, "RS256", key, iat=iat, exp=iat + 300)


def test_keys_are_found_by_discovery_and_cached(make_world: MakeWorld, idp: Idp) -> None:
    idp.serve_keys((rsa_key("idp-1"), "k1"))
    world = make_world(idp.base, discovery=True)

    assert _first(world, _token(idp.base, "k1", rsa_key("idp-1"))).issuer == idp.base
    assert idp.asked == ["/.well-known/openid-configuration", "/jwks.json"]
    world.clock.advance(timedelta(minutes=4))
    assert world.verifier.verify(_token(idp.base, "k1", rsa_key("idp-1"), world.clock)).subject
    settle(world)
    assert len(idp.asked) == 2  # within the ttl: no request
    world.clock.advance(timedelta(minutes=2))
    # Past it: the held keys answer at once, and discovery and keys are fetched behind.
    assert world.verifier.verify(_token(idp.base, "k1", rsa_key("idp-1"), world.clock)).subject
    settle(world)
    assert len(idp.asked) == 4


def test_a_jwks_uri_is_fetched_directly(make_world: MakeWorld, idp: Idp) -> None:
    idp.serve_keys((rsa_key("idp-1"), "k1"))
    world = make_world("https://idp.example", jwks_uri=f"{idp.base}/jwks.json")
    token = _token("https://idp.example", "k1", rsa_key("idp-1"))
    assert _first(world, token).issuer == "https://idp.example"
    assert idp.asked == ["/jwks.json"]


def test_a_rotation_is_picked_up_by_one_fetch_on_the_new_kid(
    make_world: MakeWorld, idp: Idp
) -> None:
    idp.serve_keys((rsa_key("idp-1"), "k1"))
    world = make_world(idp.base, discovery=True)
    old = _token(idp.base, "k1", rsa_key("idp-1"))
    assert _first(world, old).subject

    idp.serve_keys((rsa_key("idp-2"), "k2"))
    world.clock.advance(OPTIONS.min_refresh)
    new = _token(idp.base, "k2", rsa_key("idp-2"), world.clock)
    with pytest.raises(TokenInvalid) as unknown:  # answered at once; a refresh is scheduled
        world.verifier.verify(new)
    assert unknown.value.code == "token-kid"
    settle(world)
    assert world.verifier.verify(new).subject
    assert idp.asked.count("/jwks.json") == 2
    # The old key is gone from the set: its token (memoised as authentic) is refused now.
    with pytest.raises(TokenInvalid) as caught:
        world.verifier.verify(old)
    assert caught.value.code == "token-kid"


def test_random_kids_cannot_make_the_node_hammer_the_idp(make_world: MakeWorld, idp: Idp) -> None:
    idp.serve_keys((rsa_key("idp-1"), "k1"))
    world = make_world(idp.base, discovery=True)
    assert _first(world, _token(idp.base, "k1", rsa_key("idp-1"))).subject
    world.clock.advance(OPTIONS.min_refresh)
    asked = len(idp.asked)

    for i in range(50):
        with pytest.raises(TokenInvalid) as caught:
            world.verifier.verify(_token(idp.base, f"random-{i}", rsa_key("idp-1"), world.clock))
        assert caught.value.code == "token-kid"
        settle(world)
    assert len(idp.asked) - asked == 2  # one refresh (discovery + keys) for all fifty

    world.clock.advance(OPTIONS.min_refresh)
    with pytest.raises(TokenInvalid):
        world.verifier.verify(_token(idp.base, "random-x", rsa_key("idp-1"), world.clock))
    settle(world)
    assert len(idp.asked) - asked == 4  # the next interval: one more


def test_an_idp_that_is_down_fails_its_tokens_only(make_world: MakeWorld, idp: Idp) -> None:
    world = make_world("https://idp.example", jwks_uri="http://127.0.0.1:9/jwks.json")

    token = _token("https://idp.example", "k1", rsa_key("idp-1"))
    with pytest.raises(IssuerUnavailable):
        world.verifier.verify(token)
    settle(world)
    with pytest.raises(IssuerUnavailable) as caught:
        world.verifier.verify(token)
    assert "https://idp.example" in caught.value.message
    assert "127.0.0.1:9" not in caught.value.message  # the reason is logged, never told
    # The node's own tokens (and any other issuer's) are verified as ever.
    assert world.verifier.verify(world.own.issue("analyst", [Scope.LOG_READ])).subject


def test_held_keys_stay_while_the_idp_is_down(make_world: MakeWorld, idp: Idp) -> None:
    idp.serve_keys((rsa_key("idp-1"), "k1"))
    world = make_world(idp.base, discovery=True)
    assert _first(world, _token(idp.base, "k1", rsa_key("idp-1"))).subject

    idp.jwks_status = 503
    world.clock.advance(timedelta(minutes=6))
    assert world.verifier.verify(_token(idp.base, "k1", rsa_key("idp-1"), world.clock)).subject
    settle(world)
    assert world.verifier.verify(_token(idp.base, "k1", rsa_key("idp-1"), world.clock)).subject
    assert idp.asked.count("/jwks.json") == 2  # it did try


@pytest.mark.parametrize(
    ("jwks", "problem"),
    [
        ({"keys": [public_jwk(rsa_key("idp-1"), "k1", d="AQAB")]}, "private key material"),
        ({"keys": [public_jwk(rsa_key("weak", 1024), "k1")]}, "at least 2048"),
        ({"keys": [_huge_rsa_jwk("k1")]}, "at most 8192"),
        ({"keys": [{"kty": "oct", "kid": "k1", "k": "c2VjcmV0"}]}, "symmetric keys"),
        ({"keys": [public_jwk(rsa_key("idp-1"), "k1", alg="RS512")]}, "issuer's algorithms"),
        ({"keys": []}, "non-empty list"),
    ],
)
def test_fetched_keys_pass_the_trust_files_checks(
    make_world: MakeWorld, idp: Idp, jwks: Any, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    idp.jwks = jwks
    world = make_world(idp.base, discovery=True)
    with pytest.raises(IssuerUnavailable):
        _first(world, _token(idp.base, "k1", rsa_key("idp-1")))
    assert world.remote.peek() is None
    assert problem in caplog.text
    assert "/jwks.json" in caplog.text


def test_encryption_keys_in_a_fetched_set_are_left_out(make_world: MakeWorld, idp: Idp) -> None:
    idp.jwks = {
        "keys": [
            public_jwk(rsa_key("idp-1"), "k1", use="sig"),
            public_jwk(rsa_key("idp-enc"), "enc-1", use="enc", alg="RSA-OAEP"),
        ]
    }
    world = make_world(idp.base, discovery=True)
    assert _first(world, _token(idp.base, "k1", rsa_key("idp-1"))).subject
    held = world.remote.peek()
    assert held is not None
    assert set(held.keys) == {"k1"}


@pytest.mark.parametrize(
    ("path", "problem"), [("/moved.json", "HTTP 302"), ("/big.json", "larger than")]
)
def test_redirects_and_oversized_answers_are_refused(
    make_world: MakeWorld, idp: Idp, path: str, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    world = make_world("https://idp.example", jwks_uri=f"{idp.base}{path}")
    with pytest.raises(IssuerUnavailable):
        _first(world, _token("https://idp.example", "k1", rsa_key("idp-1")))
    assert problem in caplog.text


def test_a_discovery_document_for_another_issuer_is_refused(
    make_world: MakeWorld, idp: Idp, caplog: pytest.LogCaptureFixture
) -> None:
    idp.serve_keys((rsa_key("idp-1"), "k1"))
    idp.discovery_issuer = "https://someone-else.example"
    world = make_world(idp.base, discovery=True)
    with pytest.raises(IssuerUnavailable):
        _first(world, _token(idp.base, "k1", rsa_key("idp-1")))
    assert "its issuer is not" in caplog.text
    assert idp.asked == ["/.well-known/openid-configuration"]


@pytest.mark.parametrize(
    "elsewhere",
    [
        "http://127.0.0.1:9/internal",  # another port of the node's loopback: a port scan
        "http://localhost:{port}/jwks.json",  # another host name
        "https://127.0.0.1:{port}/jwks.json",  # another scheme
    ],
)
def test_a_discovery_document_cannot_send_the_node_to_another_host(
    make_world: MakeWorld, idp: Idp, caplog: pytest.LogCaptureFixture, elsewhere: str
) -> None:
    idp.serve_keys((rsa_key("idp-1"), "k1"))
    idp.discovery_jwks_uri = elsewhere.format(port=idp.base.rsplit(":", 1)[1])
    world = make_world(idp.base, discovery=True)
    with pytest.raises(IssuerUnavailable) as caught:
        _first(world, _token(idp.base, "k1", rsa_key("idp-1")))
    assert caught.value.message == f"issuer {idp.base}: keys unavailable (none fetched yet)"
    assert "is not on the issuer's host" in caplog.text
    assert idp.asked == ["/.well-known/openid-configuration"]


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ({"jwks_uri": "http://idp.example/jwks.json"}, "must be https"),
        ({"jwks_uri": "https://user:pw@idp.example/jwks.json"}, "credentials"),
        ({"jwks_uri": 7}, "jwks_uri: must be a URL string"),
        ({"discovery": False}, "discovery: must be true"),
        ({"jwks_uri": "https://idp.example/k", "discovery": True}, "only one of"),
    ],
)
def test_unsafe_sources_are_refused_at_load(
    tmp_path: Path, source: dict[str, Any], problem: str
) -> None:
    entry = {"iss": "http://idp.example", "algorithms": ["RS256"], **source}
    path = write_json(tmp_path / "issuers.json", {"issuers": [entry]})
    with pytest.raises(TrustConfigError, match=problem):
        load_jwks_issuers(path)


def test_discovery_needs_an_https_issuer(tmp_path: Path) -> None:
    entry = {"iss": "http://idp.example", "algorithms": ["RS256"], "discovery": True}
    path = write_json(tmp_path / "issuers.json", {"issuers": [entry]})
    with pytest.raises(TrustConfigError, match=r"issuers\[0\]: .*must be https"):
        load_jwks_issuers(path)


def test_held_keys_serve_no_longer_than_max_stale(make_world: MakeWorld, idp: Idp) -> None:
    idp.serve_keys((rsa_key("stolen"), "k1"))
    world = make_world(idp.base, jwks_uri=f"{idp.base}/jwks.json")
    token = _token(idp.base, "k1", rsa_key("stolen"))
    assert _first(world, token).subject
    # The IdP withdraws k1 (stolen), but the node cannot reach it: blocked, flooded or down.
    idp.jwks_status = 503
    world.clock.advance(OPTIONS.max_stale - timedelta(minutes=1))
    fresh = _token(idp.base, "k1", rsa_key("stolen"), world.clock)
    assert world.verifier.verify(fresh).subject  # within max_stale: the last keys serve
    settle(world)
    world.clock.advance(timedelta(minutes=1))
    with pytest.raises(IssuerUnavailable, match="keys unavailable"):
        world.verifier.verify(fresh)  # memoised as authentic, refused all the same
    settle(world)
    idp.jwks_status = 200
    idp.serve_keys((rsa_key("new"), "k2"))
    world.clock.advance(OPTIONS.min_refresh)
    with pytest.raises(IssuerUnavailable):
        world.verifier.verify(fresh)  # schedules a fetch
    settle(world)
    with pytest.raises(TokenInvalid, match="no longer a key"):
        world.verifier.verify(fresh)


def test_a_closed_issuer_stops_fetching_and_its_worker_ends(
    make_world: MakeWorld, idp: Idp
) -> None:
    idp.serve_keys((rsa_key("idp-1"), "k1"))
    world = make_world("https://idp.example", jwks_uri=f"{idp.base}/jwks.json")
    token = _token("https://idp.example", "k1", rsa_key("idp-1"), world.clock)
    assert _first(world, token).subject  # the worker fetched once
    (worker,) = [t for t in threading.enumerate() if t.name == "jwks https://idp.example"]
    world.remote.close(timeout=5.0)
    assert not worker.is_alive()
    world.clock.advance(OPTIONS.ttl * 2)  # past the ttl: an open issuer would fetch again
    world.remote.schedule()
    assert world.remote.fetches == 1
