"""The web view in a real browser (Debian's Chromium, headless, driven by Playwright).

Against de-eco's real database (``scene``): a person logs in by pasting a token, opens every
page, filters and pages the routing log, opens a case and its timeline, downloads a CSV; tokens
that are missing, expired or lack the scope are refused; a non-admin never sees a case's URL;
every case view is a routing-log entry naming the viewer. Each page is screenshotted to
test-artifacts/web/.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from auth.tokens import Scope
from tests.exchange.web.conftest import (
    COORDINATOR,
    MANAGER,
    REPORTS,
    STATS,
    Scene,
    log_in,
    shoot,
)
from tests.integration.support import DE

pytestmark = pytest.mark.timeout(180)


def test_login_then_every_page_opens(scene: Scene, page: Page) -> None:
    log_in(page, scene.admin())
    expect(page.get_by_role("heading", level=1)).to_have_text("Network overview")
    shoot(page, "overview")
    pages = {
        "/log": "Routing log",
        "/cases": "Case queues",
        f"/cases/{scene.assessed_case}": f"Case {scene.assessed_case}",
        "/hosts": "Hoster scorecard",
        "/stats": "Statistics",
        "/log/verify": "Routing log verification",
    }
    for path, heading in pages.items():
        response = page.goto(path)
        assert response is not None
        assert response.status == 200, path
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        shoot(page, re.sub(r"[^a-z0-9]+", "-", path.strip("/")) or "overview")
    expect(page.locator("#verdict")).to_contain_text("Intact")


def test_overview_shows_members_epoch_and_peers(scene: Scene, page: Page) -> None:
    log_in(page, scene.token(COORDINATOR, Scope.LOG_READ))
    manifest = scene.cluster.node(DE).manifests.current()
    expect(page.locator("#manifest-epoch")).to_have_text(str(manifest.epoch))
    members = page.locator("#members tbody th")
    expect(members).to_have_count(len(manifest.members))
    expect(page.locator("#countries-served")).to_have_text("DE, NL, US")
    peer_rows = page.locator("#peers tbody tr")
    expect(peer_rows).to_have_count(len(manifest.members) - 1)
    nl = page.locator("#peers tbody tr", has=page.locator("th", has_text="nl-eokm"))
    # de-eco receipted nl-eokm's reports; it sent events back, which nl-eokm receipted.
    expect(nl.locator("td").nth(5)).not_to_have_text("—")


def test_log_filters_and_pages(scene: Scene, page: Page) -> None:
    log_in(page, scene.token(COORDINATOR, Scope.LOG_READ), "/log")
    page.get_by_label("Kind").select_option("new-case")
    page.get_by_label("Per page").fill("10")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("#entries tbody tr")
    expect(rows).to_have_count(10)
    kinds = rows.locator("td:nth-child(3)").all_inner_texts()
    assert set(kinds) == {"new-case"}
    seen = [int(t) for t in rows.locator("th").all_inner_texts()]
    shoot(page, "log-filtered")
    pages = 1
    while page.locator("#next-page").count():
        page.locator("#next-page").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Routing log")
        seen += [int(t) for t in page.locator("#entries tbody tr th").all_inner_texts()]
        pages += 1
    # Every case de-eco opened once, in index order, over pages of 10.
    assert len(seen) == REPORTS == len(set(seen))
    assert seen == sorted(seen)
    assert pages == (REPORTS + 9) // 10
    expect(page.locator("#checkpoint-state")).to_contain_text("holds")


def test_log_filter_by_country_and_report(scene: Scene, page: Page) -> None:
    log_in(page, scene.token(COORDINATOR, Scope.LOG_READ), "/log?country=DE&kind=new-case")
    rows = page.locator("#entries tbody tr")
    expect(rows).to_have_count(REPORTS)
    assert set(rows.locator("td:nth-child(6)").all_inner_texts()) == {"DE"}
    report = rows.first.locator("td:nth-child(4)").inner_text()
    page.goto(f"/log?report={report}")
    kinds = set(page.locator("#entries tbody tr td:nth-child(3)").all_inner_texts())
    assert "new-case" in kinds
    assert set(page.locator("#entries tbody tr td:nth-child(4)").all_inner_texts()) == {report}


def test_bad_filter_is_a_precise_error(scene: Scene, page: Page) -> None:
    log_in(page, scene.token(COORDINATOR, Scope.LOG_READ))
    response = page.goto("/log?country=Netherlands")
    assert response is not None
    assert response.status == 400
    expect(page.locator(".problem")).to_contain_text("country")


def test_case_page_shows_timeline_and_url_to_admin(scene: Scene, page: Page) -> None:
    log_in(page, scene.admin(), "/cases?queue=unactioned")
    page.goto(f"/cases/{scene.assessed_case}")
    expect(page.locator("#case-url")).to_have_text(scene.assessed_url)
    timeline = page.locator("#timeline li")
    expect(timeline).to_have_count(2)
    expect(timeline.nth(0)).to_contain_text("assessed baseline")
    expect(timeline.nth(1)).to_contain_text(f"reported to law enforcement ({'de-bka'})")
    expect(page.locator("#items tbody tr")).to_have_count(1)
    shoot(page, "case-admin")


def test_case_url_hidden_from_a_non_admin(scene: Scene, page: Page) -> None:
    log_in(page, scene.token(MANAGER, Scope.CASES_WORK), "/cases")
    page.get_by_role("link", name=scene.case_ids[1]).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Case {scene.case_ids[1]}")
    expect(page.locator("#case-url")).to_contain_text("hidden")
    assert scene.assessed_url.split("/")[2] not in page.content()
    shoot(page, "case-manager")


def test_case_view_is_audited_in_the_routing_log(scene: Scene, page: Page) -> None:
    case_id = scene.case_ids[2]

    def views() -> list[dict[str, object]]:
        rows = scene.cluster.rows(DE, "SELECT detail FROM routing_log WHERE kind = 'viewed'")
        return [d for d in (json.loads(r.detail) for r in rows) if d.get("case") == case_id]

    before = len(views())
    log_in(page, scene.token(MANAGER, Scope.CASES_WORK), f"/cases/{case_id}")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Case {case_id}")
    page.reload()  # within the window: covered by the first view's entry
    seen = views()[before:]
    assert [(v["viewer"], v["url_shown"]) for v in seen] == [(MANAGER, False)]
    assert scene.cluster.log_break(DE) is None  # the web's entries continue the node's chain


def test_csv_download_of_the_filtered_log(scene: Scene, page: Page) -> None:
    log_in(page, scene.token(COORDINATOR, Scope.LOG_READ), "/log?kind=new-case&country=DE")
    with page.expect_download() as info:
        page.locator("#csv-link").click()
    download = info.value
    assert download.suggested_filename == "routing-log.csv"
    path = download.path()
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert len(rows) == REPORTS
    assert {r["kind"] for r in rows} == {"new-case"}
    assert {r["country"] for r in rows} == {"DE"}


def test_missing_token_sends_every_page_to_login(scene: Scene, page: Page) -> None:
    for path in ("/", "/log", "/cases", f"/cases/{scene.assessed_case}", "/hosts", "/stats"):
        page.goto(path)
        assert page.url.startswith(scene.web.base + "/login?next="), path
        expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
    shoot(page, "login")


def test_wrong_scope_is_refused(scene: Scene, page: Page) -> None:
    log_in(page, scene.token(STATS, Scope.STATS_READ))
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    expect(page.locator(".problem")).to_contain_text("log:read")
    for path in ("/log", "/cases"):
        response = page.goto(path)
        assert response is not None
        assert response.status == 403
    response = page.goto("/hosts")
    assert response is not None
    assert response.status == 200
    shoot(page, "refused-scope")


def test_token_without_any_web_scope_cannot_log_in(scene: Scene, page: Page) -> None:
    log_in(page, scene.token("an-analyst", Scope.REPORTS_SUBMIT))
    expect(page.locator("#login-problem")).to_contain_text("grants none of")
    assert "ihx_session" not in {c["name"] for c in page.context.cookies()}


def test_garbage_token_is_refused(scene: Scene, page: Page) -> None:
    log_in(page, "not.a.token")
    expect(page.locator("#login-problem")).to_contain_text("token refused")


def test_expired_token_and_session_are_refused(scene: Scene, context: BrowserContext) -> None:
    page = context.new_page()
    log_in(page, scene.token(COORDINATOR, Scope.LOG_READ, ttl=60))
    expect(page.get_by_role("heading", level=1)).to_have_text("Network overview")
    scene.clock.offset = timedelta(minutes=10)  # past the token's expiry and its leeway
    try:
        page.goto("/log")
        assert "/login" in page.url
        log_in(page, scene.token(COORDINATOR, Scope.LOG_READ, ttl=60))
        expect(page.locator("#login-problem")).to_contain_text("expired")
    finally:
        scene.clock.offset = timedelta(0)


def test_logout_ends_the_session(scene: Scene, context: BrowserContext) -> None:
    page = context.new_page()
    log_in(page, scene.token(COORDINATOR, Scope.LOG_READ))
    session = next(c for c in context.cookies() if c["name"] == "ihx_session")
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert session["path"] == "/"
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
    # The old session id is dead on the server, not only forgotten by the browser.
    context.add_cookies([{**session}])
    page.goto("/log")
    assert "/login" in page.url
