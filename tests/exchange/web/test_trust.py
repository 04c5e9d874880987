"""The view's verifier follows the manifest (red-team F8: it was built once at startup, so a key
revoked later stayed trusted until a restart). A newer epoch is picked up within ``REFRESH``:
a key added is trusted, a key revoked is not, and the sessions of the node's own issuer end.
Likewise a network reader's sessions end when the manifest drops the reader or revokes its key
(red-team rt2), and an epoch that narrows nothing ends no session."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from auth.keys import SigningKey
from auth.manifest import (
    MemberKey,
    add_key,
    bump_epoch,
    network_audience,
    network_issuer,
    revoke_key,
    set_network_reader,
)
from auth.tokens import Scope, TokenIssuer
from common.clock import system_clock
from exchange.web.trust import REFRESH
from tests.exchange.web.conftest import Scene
from tests.exchange.web.support import Http, ShiftedClock, WebServer
from tests.exchange.web.test_http import login_csrf
from tests.integration.support import DE, NL


@pytest.fixture
def server(scene: Scene) -> Iterator[WebServer]:
    web = WebServer(scene.web.settings, ShiftedClock())  # its own clock, moved by the test
    web.start()
    try:
        yield web
    finally:
        web.stop()


def log_in(server: WebServer, token: str) -> tuple[Http, int]:
    http = Http(server.base)
    return http, http.post("/login", {"csrf": login_csrf(http), "token": token}).status


def later(server: WebServer) -> None:
    server.clock.offset += REFRESH + timedelta(seconds=1)


def test_a_key_added_then_revoked_by_a_newer_manifest(scene: Scene, server: WebServer) -> None:
    fed = scene.cluster.fed
    second = SigningKey.generate()
    issuer = TokenIssuer(second, fed.settings[DE].token_issuer, DE, system_clock)
    token = issuer.issue("second-key", [Scope.LOG_READ], ttl=timedelta(minutes=10))
    assert log_in(server, token)[1] == 401  # not in the manifest yet

    now = datetime.now(UTC)
    key = MemberKey(second.public.key_id, second.public, not_before=now - timedelta(minutes=1))
    fed.publish(add_key(bump_epoch(fed.manifest, issued_at=now), DE, key))
    later(server)
    http, status = log_in(server, token)
    assert status == 303
    assert http.get("/log").status == 200
    admin, status = log_in(server, scene.admin())
    assert status == 303

    fed.publish(revoke_key(bump_epoch(fed.manifest, issued_at=now), DE, key.key_id, at=now))
    later(server)
    assert http.get("/log").status == 303  # its session ended with the key
    assert admin.get("/log").status == 303  # every session of the node's issuer ends
    assert log_in(server, token)[1] == 401
    again, status = log_in(server, scene.admin())  # the node's own key is still trusted
    assert status == 303
    assert again.get("/log").status == 200


READS = frozenset({"log:read", "stats:read"})


def _network_session(scene: Scene, server: WebServer) -> tuple[Http, str]:
    """A session opened with a network token of NL (granted the read scopes by a new epoch)."""
    fed = scene.cluster.fed
    now = datetime.now(UTC)
    fed.publish(set_network_reader(bump_epoch(fed.manifest, issued_at=now), NL, READS))
    later(server)
    issuer = TokenIssuer(
        fed.keys[NL], network_issuer(NL), network_audience(fed.manifest.network), system_clock,
        grant=frozenset({Scope.LOG_READ, Scope.STATS_READ}),
    )  # fmt: skip
    token = issuer.issue("coordinator", [Scope.LOG_READ], ttl=timedelta(minutes=14))
    http, status = log_in(server, token)
    assert status == 303
    assert http.get("/log").status == 200
    return http, token


def test_a_network_session_ends_with_the_readers_removal(scene: Scene, server: WebServer) -> None:
    fed = scene.cluster.fed
    http, token = _network_session(scene, server)
    own, status = log_in(server, scene.admin())
    assert status == 303

    now = datetime.now(UTC)
    fed.publish(bump_epoch(fed.manifest, issued_at=now))  # nothing narrowed: sessions stay
    later(server)
    assert http.get("/log").status == 200

    fed.publish(set_network_reader(bump_epoch(fed.manifest, issued_at=now), NL, frozenset()))
    later(server)
    assert log_in(server, token)[1] == 401  # a new login is refused ...
    assert http.get("/log").status == 303  # ... and the open session has ended
    assert own.get("/log").status == 200  # the node's own issuer is unchanged: its stay


def test_a_network_session_ends_with_the_readers_key(scene: Scene, server: WebServer) -> None:
    fed = scene.cluster.fed
    http, _token = _network_session(scene, server)
    now = datetime.now(UTC)
    key_id = fed.keys[NL].public.key_id
    fed.publish(revoke_key(bump_epoch(fed.manifest, issued_at=now), NL, key_id, at=now))
    later(server)
    assert http.get("/log").status == 303
