"""The web view's answers on the wire: security headers, cookies, CSRF, forged sessions.

Raw HTTP (urllib, no redirects followed) against the real server of ``scene``, so each header
and status is the server's own and no browser behaviour hides a missing check.
"""

from __future__ import annotations

import re
import ssl
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from auth.tls import create_ca, issue_node_certificate
from auth.tokens import Scope
from exchange.settings.sections import KeysSection
from tests.auth.token_factories import (
    EUROPOL_ISSUER,
    EUROPOL_KID,
    ec_key,
    external_token,
    issuers_document,
    write_json,
)
from tests.exchange.web.conftest import COORDINATOR, Scene
from tests.exchange.web.support import Answer, Http, WebServer
from tests.integration.support import wait_until

pytestmark = pytest.mark.timeout(120)

PAGES = ("/", "/log", "/log?kind=new-case", "/cases", "/hosts", "/stats", "/log/verify")
STRICT_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def login_csrf(http: Http) -> str:
    form = http.get("/login")
    assert form.status == 200
    found = re.search(r'name="csrf" value="([^"]+)"', form.body)
    assert found is not None
    return found.group(1)


def logged_in(scene: Scene, token: str | None = None) -> Http:
    http = scene.http()
    csrf = login_csrf(http)
    answer = http.post("/login", {"csrf": csrf, "token": token or scene.admin(), "next": "/"})
    assert answer.status == 303, answer.body
    return http


def assert_secure_headers(answer: Answer, where: str) -> None:
    assert answer.headers["content-security-policy"] == STRICT_CSP, where
    assert answer.headers["x-content-type-options"] == "nosniff", where
    assert answer.headers["referrer-policy"] == "no-referrer", where
    assert answer.headers["cache-control"] == "no-store", where


def test_every_page_has_the_security_headers_and_no_inline_script(scene: Scene) -> None:
    http = logged_in(scene)
    for path in (*PAGES, f"/cases/{scene.assessed_case}"):
        answer = http.get(path)
        assert answer.status == 200, path
        assert_secure_headers(answer, path)
        assert "<script" not in answer.body.lower(), path
        assert not re.search(r"\son[a-z]+\s*=", answer.body), path  # no inline handlers
        assert " style=" not in answer.body, path  # the CSP forbids inline styles
    for path in ("/login", "/nowhere", "/log?country=xx1"):
        assert_secure_headers(scene.http().get(path) if path == "/login" else http.get(path), path)


def test_chart_images_have_their_own_narrow_policy(scene: Scene) -> None:
    http = logged_in(scene)
    answer = http.get("/stats/chart/countries.svg")
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("image/svg+xml")
    policy = answer.headers["content-security-policy"]
    assert policy.startswith("default-src 'none'")
    assert "script" not in policy
    assert "<script" not in answer.body
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert http.get("/stats/chart/nothing.svg").status == 404


def test_session_cookie_is_httponly_strict_and_only_an_id(scene: Scene) -> None:
    http = scene.http()
    csrf = login_csrf(http)
    token = scene.token(COORDINATOR, Scope.LOG_READ)
    answer = http.post("/login", {"csrf": csrf, "token": token, "next": "/log"})
    assert answer.status == 303
    assert answer.headers["location"] == "/log"
    cookie = answer.cookie("ihx_session")
    assert cookie is not None
    attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes
    assert "samesite=strict" in cookie.lower()
    assert "secure" not in attributes  # plain HTTP on loopback: Secure would never be sent
    session_id = http.cookies["ihx_session"]
    assert token not in cookie
    assert len(session_id) >= 40
    assert session_id not in token


def test_login_without_csrf_is_refused_and_opens_no_session(scene: Scene) -> None:
    http = scene.http()
    login_csrf(http)  # the login cookie is set, but the form's token is not sent
    answer = http.post("/login", {"token": scene.admin(), "next": "/"})
    assert answer.status == 403
    assert "CSRF" in answer.body
    assert answer.cookie("ihx_session") is None
    wrong = http.post("/login", {"csrf": "x" * 43, "token": scene.admin()})
    assert wrong.status == 403
    assert wrong.cookie("ihx_session") is None


def test_logout_without_csrf_is_refused_and_the_session_lives(scene: Scene) -> None:
    http = logged_in(scene)
    assert http.post("/logout", {}).status == 403
    assert http.post("/logout", {"csrf": "not-the-session-token"}).status == 403
    assert http.get("/log").status == 200
    page = http.get("/log").body
    csrf = re.search(
        r'action="/logout"[^>]*>\s*<input type="hidden" name="csrf" value="([^"]+)"', page
    )
    assert csrf is not None
    assert http.post("/logout", {"csrf": csrf.group(1)}).status == 303
    assert http.get("/log").status == 303


def test_forged_session_cookie_is_refused(scene: Scene) -> None:
    http = scene.http()
    for forged in ("A" * 43, "", "x" * 5000, "../../etc/passwd", "%00"):
        http.cookies["ihx_session"] = forged
        answer = http.get("/log")
        assert answer.status == 303, forged
        assert answer.headers["location"].startswith("/login?next=")


def test_open_redirect_after_login_is_refused(scene: Scene) -> None:
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        http = scene.http()
        csrf = login_csrf(http)
        answer = http.post("/login", {"csrf": csrf, "token": scene.admin(), "next": target})
        assert answer.status == 303
        assert answer.headers["location"] == "/", target


def test_healthz_is_open_and_says_ok(scene: Scene) -> None:
    answer = scene.http().get("/healthz")
    assert (answer.status, answer.body) == (200, "ok")


def test_bad_queries_are_precise_and_change_nothing(scene: Scene) -> None:
    http = logged_in(scene)
    size = scene.cluster.count("de-eco", "routing_log")
    for query, word in (
        ("/log?kind=nonsense", "kind"),
        ("/log?after=-5", "after"),
        ("/log?after=99999999999999999999", "after"),
        ("/log?size=0", "size"),
        ("/log?since=yesterday", "since"),
        ("/log?since=2026-01-02&until=2026-01-01", "until"),
        ("/log?report=r-zz", "report"),
        ("/log?member=" + "a" * 200, "member"),
        ("/cases?queue=everything", "queue"),
        ("/cases?after=not-a-cursor", "cursor"),
    ):
        answer = http.get(query)
        assert answer.status == 400, query
        assert word in answer.body, query
    assert http.get("/cases/c-nothing").status == 404
    assert http.get("/cases/c-" + "0" * 32).status == 404
    assert scene.cluster.count("de-eco", "routing_log") == size  # no view was audited


def test_the_view_never_needs_the_nodes_private_key(scene: Scene, tmp_path: Path) -> None:
    settings = scene.web.settings.model_copy(
        update={"keys": KeysSection(signing_key=tmp_path / "absent.key")}
    )
    other = WebServer(settings, scene.clock)
    other.start()
    try:
        http = Http(other.base)
        csrf = login_csrf(http)
        answer = http.post("/login", {"csrf": csrf, "token": scene.admin(), "next": "/log"})
        assert answer.status == 303
        assert http.get("/log").status == 200
    finally:
        other.stop()


def test_over_tls_the_session_cookie_is_secure(scene: Scene, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    ca = create_ca("web-test-ca", now=now)
    issued = issue_node_certificate(ca, "de-eco", hosts=["127.0.0.1", "localhost"], now=now)
    cert, key = tmp_path / "web.crt", tmp_path / "web.key"
    cert.write_bytes(issued.certificate_pem)
    key.write_bytes(issued.key_pem)
    server = WebServer(scene.web.settings, scene.clock, tls=(cert, key))
    server.start()
    try:
        trust = ssl.create_default_context(cadata=ca.certificate_pem.decode())
        http = Http(server.base, tls=trust)
        csrf = login_csrf(http)
        answer = http.post("/login", {"csrf": csrf, "token": scene.admin(), "next": "/"})
        assert answer.status == 303
        cookie = answer.cookie("__Host-ihx_session")
        assert cookie is not None
        assert answer.headers["strict-transport-security"].startswith("max-age=")
        assert "secure" in {a.strip().lower() for a in cookie.split(";")[1:]}
        assert http.get("/").status == 200
    finally:
        server.stop()


def test_a_token_of_a_configured_external_issuer_logs_in(scene: Scene, tmp_path: Path) -> None:
    jwks = write_json(tmp_path / "trusted-issuers.json", issuers_document())
    settings = scene.web.settings.model_copy(
        update={"auth": scene.web.settings.auth.model_copy(update={"jwks": jwks})}
    )
    server = WebServer(settings, scene.clock)
    server.start()
    try:
        now = int(time.time())
        changes = {"aud": "de-eco", "iat": now, "exp": now + 300, "sub": "europol-analyst"}
        token = external_token(
            EUROPOL_ISSUER, EUROPOL_KID, "ES256", ec_key("europol"), scope="log:read", **changes
        )
        http = Http(server.base)
        answer = http.post("/login", {"csrf": login_csrf(http), "token": token, "next": "/log"})
        assert answer.status == 303
        assert http.get("/log").status == 200
        assert "europol-analyst" in http.get("/log").body
        # The same issuer's token for another member is refused (audience).
        other = external_token(
            EUROPOL_ISSUER,
            EUROPOL_KID,
            "ES256",
            ec_key("europol"),
            scope="log:read",
            **{**changes, "aud": "nl-eokm"},
        )
        fresh = Http(server.base)
        refused = fresh.post("/login", {"csrf": login_csrf(fresh), "token": other})
        assert refused.status == 401
        assert refused.cookie("ihx_session") is None
    finally:
        server.stop()


def test_the_views_shutdown_stops_its_issuers_key_fetching(scene: Scene, tmp_path: Path) -> None:
    """Like the node's stop (tests/exchange/test_node_stop.py): a fetched issuer's worker wakes
    every ``jwks_cache_s``; after the view shut down it must not fetch (and log) on."""
    iss = "https://idp.example"
    entry = {"iss": iss, "algorithms": ["RS256"], "jwks_uri": "http://127.0.0.1:9/jwks.json"}
    jwks = write_json(tmp_path / "trusted-issuers.json", {"issuers": [entry]})
    settings = scene.web.settings.model_copy(
        update={"auth": scene.web.settings.auth.model_copy(update={"jwks": jwks})}
    )

    def fetchers() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == f"jwks {iss}" and t.is_alive()}

    before = fetchers()
    server = WebServer(settings, scene.clock)
    server.start()
    try:
        wait_until(lambda: fetchers() - before, what="the issuer's key fetcher to start")
        (fetcher,) = fetchers() - before
    finally:
        server.stop()
    assert not fetcher.is_alive()
