"""Viewing a case cannot flood the routing log: one ``viewed`` entry per viewer and case per
window, no entry (and no answer) for HEAD, and a per-session limit on case pages."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import timedelta

import pytest

from auth.tokens import Scope
from exchange.web.app import CASE_VIEW_BURST
from exchange.web.audit import VIEW_WINDOW
from tests.exchange.web.conftest import Scene
from tests.exchange.web.support import Http, ShiftedClock, WebServer
from tests.exchange.web.test_http import login_csrf
from tests.integration.support import DE

ANALYST = "analyst-audit"


@pytest.fixture
def server(scene: Scene) -> Iterator[WebServer]:
    web = WebServer(scene.web.settings, ShiftedClock())  # its own clock, moved by the test
    web.start()
    try:
        yield web
    finally:
        web.stop()


def views(scene: Scene, case_id: str) -> list[dict[str, object]]:
    rows = scene.cluster.rows(DE, "SELECT detail FROM routing_log WHERE kind = 'viewed'")
    details = (json.loads(r.detail) for r in rows)
    return [d for d in details if d.get("case") == case_id and d.get("viewer") == ANALYST]


def analyst(scene: Scene, server: WebServer) -> Http:
    http = Http(server.base)
    token = scene.token(ANALYST, Scope.CASES_WORK)
    assert http.post("/login", {"csrf": login_csrf(http), "token": token}).status == 303
    return http


def test_reloading_a_case_page_is_one_entry_per_window(scene: Scene, server: WebServer) -> None:
    """Red-team F4: every GET was a permanent chained entry (2000 requests → 2000 entries)."""
    case_id = scene.case_ids[3]
    before = len(views(scene, case_id))
    http = analyst(scene, server)
    for _ in range(10):
        assert http.get(f"/cases/{case_id}").status == 200
    assert len(views(scene, case_id)) == before + 1
    server.clock.offset = VIEW_WINDOW + timedelta(seconds=1)
    assert http.get(f"/cases/{case_id}").status == 200
    assert len(views(scene, case_id)) == before + 2
    assert scene.cluster.log_break(DE) is None


def test_head_of_a_case_page_is_refused_and_not_recorded(scene: Scene, server: WebServer) -> None:
    case_id = scene.case_ids[4]
    before = len(views(scene, case_id))
    http = analyst(scene, server)
    head = http._open(urllib.request.Request(f"{server.base}/cases/{case_id}", method="HEAD"))
    assert head.status == 405
    assert head.headers["allow"] == "GET"
    assert len(views(scene, case_id)) == before


def test_a_session_opening_case_pages_too_fast_is_refused(scene: Scene, server: WebServer) -> None:
    case_id = scene.case_ids[5]
    http = analyst(scene, server)
    with server.clock.standing_still():  # the server's own clock, not the scene's
        statuses = [http.get(f"/cases/{case_id}").status for _ in range(CASE_VIEW_BURST + 2)]
    assert statuses[:CASE_VIEW_BURST] == [200] * CASE_VIEW_BURST
    assert statuses[CASE_VIEW_BURST:] == [503, 503]
    assert analyst(scene, server).get(f"/cases/{case_id}").status == 200  # another session
