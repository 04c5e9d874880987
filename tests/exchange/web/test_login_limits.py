"""Logging in cannot be used against other people: a full store refuses newcomers instead of
ending others' sessions, a browser's re-login ends its previous session, logins are rate-limited
per client address, and behind HTTPS the cookies are Secure, ``__Host-`` prefixed, with HSTS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from auth.tokens import Scope
from tests.exchange.web.conftest import Scene
from tests.exchange.web.support import Http, WebServer
from tests.exchange.web.test_http import login_csrf


@pytest.fixture
def server(scene: Scene, request: pytest.FixtureRequest) -> Iterator[WebServer]:
    web = WebServer(scene.web.settings, scene.clock, **request.param)
    web.start()
    try:
        yield web
    finally:
        web.stop()


def log_in(server: WebServer, token: str, http: Http | None = None) -> tuple[Http, int]:
    http = http or Http(server.base)
    answer = http.post("/login", {"csrf": login_csrf(http), "token": token, "next": "/"})
    return http, answer.status


@pytest.mark.parametrize("server", [{"max_sessions": 4}], indirect=True)
def test_flooding_logins_does_not_log_the_admin_out(scene: Scene, server: WebServer) -> None:
    """Red-team F1: logins with one stats:read token used to evict the admin's session."""
    admin, status = log_in(server, scene.admin())
    assert status == 303
    token = scene.token("flooder", Scope.STATS_READ)
    statuses = [log_in(server, token)[1] for _ in range(30)]
    assert statuses[:3] == [303, 303, 303]
    assert set(statuses[3:]) == {503}  # the store is full: refused, nobody else logged out
    assert admin.get("/log").status == 200


@pytest.mark.parametrize("server", [{"max_sessions": 4}], indirect=True)
def test_a_full_store_answers_a_clear_busy_page(scene: Scene, server: WebServer) -> None:
    for n in range(4):
        assert log_in(server, scene.token(f"person-{n}", Scope.LOG_READ))[1] == 303
    http = Http(server.base)
    answer = http.post(
        "/login", {"csrf": login_csrf(http), "token": scene.token("late", Scope.LOG_READ)}
    )
    assert answer.status == 503
    assert "too many people are logged in" in answer.body


@pytest.mark.parametrize("server", [{}], indirect=True)
def test_logging_in_again_from_the_same_browser_ends_the_previous_session(
    scene: Scene, server: WebServer
) -> None:
    http, status = log_in(server, scene.admin())
    assert status == 303
    first = http.cookies["ihx_session"]
    stolen = Http(server.base, cookies={"ihx_session": first})
    assert stolen.get("/log").status == 200
    http.get("/login")  # logged in, the page's first form is logout's: use the login cookie
    again = http.post("/login", {"csrf": http.cookies["ihx_login"], "token": scene.admin()})
    assert again.status == 303
    assert http.cookies["ihx_session"] != first
    assert stolen.get("/log").status == 303  # the earlier session is gone
    assert http.get("/log").status == 200


@pytest.mark.parametrize("server", [{"login_burst": 3}], indirect=True)
def test_logins_are_rate_limited_per_client_address(scene: Scene, server: WebServer) -> None:
    admin, status = log_in(server, scene.admin())
    assert status == 303
    with scene.clock.standing_still():
        statuses = [log_in(server, scene.token("guess", Scope.LOG_READ))[1] for _ in range(4)]
    assert statuses[:2] == [303, 303]
    assert statuses[2:] == [503, 503]
    assert admin.get("/log").status == 200  # refusing a login ends no session


@pytest.mark.parametrize("server", [{"secure_cookies": True}], indirect=True)
def test_behind_a_tls_proxy_cookies_are_secure_host_prefixed_with_hsts(
    scene: Scene, server: WebServer
) -> None:
    """Red-team F3: the Helm chart serves plain HTTP behind a TLS ingress; the cookie had no
    Secure flag and no HSTS was sent."""
    http = Http(server.base)
    form = http.get("/login")
    assert form.headers["strict-transport-security"].startswith("max-age=")
    login = form.cookie("__Secure-ihx_login")
    assert login is not None
    assert "secure" in login.lower()
    answer = http.post("/login", {"csrf": login_csrf(http), "token": scene.admin(), "next": "/"})
    assert answer.status == 303
    cookie = answer.cookie("__Host-ihx_session")
    assert cookie is not None
    attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert "secure" in attributes
    assert "path=/" in attributes
    assert not any(a.startswith("domain") for a in attributes)
    assert answer.cookie("ihx_session") is None
    assert http.get("/log").status == 200


def from_address(server: WebServer, token: str, forwarded: str) -> int:
    """A login whose request says (X-Forwarded-For) it comes from ``forwarded``."""
    http = Http(server.base)
    fields = {"csrf": login_csrf(http), "token": token, "next": "/"}
    return http.post("/login", fields, {"X-Forwarded-For": forwarded}).status


@pytest.mark.parametrize(
    "server", [{"login_burst": 2, "trusted_proxies": ["127.0.0.0/8"]}], indirect=True
)
def test_behind_a_trusted_proxy_each_client_has_its_own_login_limit(
    scene: Scene, server: WebServer
) -> None:
    """Every client behind the proxy reaches the view from the proxy's address: one of them
    using up the burst must not lock everybody else out."""
    token = scene.token("guess", Scope.LOG_READ)
    with scene.clock.standing_still():
        statuses = [from_address(server, token, "203.0.113.7") for _ in range(3)]
    assert statuses == [303, 303, 503]
    assert from_address(server, scene.admin(), "198.51.100.2") == 303


@pytest.mark.parametrize(
    "server",
    [{"login_burst": 2}, {"login_burst": 2, "trusted_proxies": ["10.0.0.0/8"]}],
    indirect=True,
)
def test_a_forwarded_address_from_an_untrusted_peer_is_ignored(
    scene: Scene, server: WebServer
) -> None:
    """A client naming a new address in each request would escape its limit if the header were
    believed from anyone: the peer (127.0.0.1) is no trusted proxy, so it is its own key."""
    token = scene.token("guess", Scope.LOG_READ)
    with scene.clock.standing_still():
        statuses = [from_address(server, token, f"203.0.113.{n}") for n in range(3)]
    assert statuses == [303, 303, 503]


@pytest.mark.parametrize(
    "server",
    [{"login_total_burst": 3, "trusted_proxies": ["127.0.0.1"]}],
    indirect=True,
)
def test_logins_from_every_address_together_are_capped(scene: Scene, server: WebServer) -> None:
    """Many addresses (each under its own limit) still meet the overall cap."""
    token = scene.token("guess", Scope.LOG_READ)
    with scene.clock.standing_still():
        statuses = [from_address(server, token, f"203.0.113.{n}") for n in range(5)]
    assert statuses[:3] == [303, 303, 303]
    assert statuses[3:] == [503, 503]
