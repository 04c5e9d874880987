"""The web case page lists each PDQ item's known content apart from its near-known content, as
the view's own index holds it when the page is read — in Debian's Chromium.

A federation of its own (de-eco alone, so the shared ``scene``'s counts stay as they are): de-eco
takes a report whose PDQ hash (quality 90) opens case A, then one whose items are 20 bits from it
(quality 80) and 21 bits (quality 30, not matched) in case B. B's page names A's sighting at
distance 20 — and, after a third report 5 bits from B's item, that one first, with no restart:
the view follows the sightings as they are committed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from auth.tokens import Scope
from exchange.domain import Classification, ContentHash, HashAlgorithm
from tests.exchange.factories import make_submission, make_test_item, url_in
from tests.exchange.web.conftest import log_in, shoot
from tests.exchange.web.support import ShiftedClock, WebServer
from tests.integration.support import DE, FAST_TUNING, Cluster, provision

pytestmark = pytest.mark.timeout(120)

SEEN = "c3" * 32


def near(bits: int, quality: int) -> ContentHash:
    value = int(SEEN, 16)
    for i in range(bits):
        value ^= 1 << (11 * i % 256)
    return ContentHash(HashAlgorithm.PDQ, f"{value:064x}", quality)


def case_of(cluster: Cluster, path: str, *hashes: ContentHash) -> str:
    items = [make_test_item(h, classification=Classification.NATIONAL) for h in hashes]
    answer = cluster.submit_one(DE, make_submission(url_in("DE", path), items=items))
    case = cluster.scalar(DE, "SELECT case_id FROM reports WHERE id = :id", id=answer.report_id)
    return str(case)


@pytest.fixture(scope="module")
def pdq_scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, WebServer]]:
    root: Path = tmp_path_factory.mktemp("web-pdq")
    cluster = Cluster(provision(root, extra_settings=FAST_TUNING))
    web: WebServer | None = None
    try:
        cluster.start(DE)
        web = WebServer(cluster.fed.settings[DE], ShiftedClock())
        web.start()
        yield cluster, web
    finally:
        if web is not None:
            web.stop()
        cluster.close()


def open_case(page: Page, case_id: str) -> None:
    """The case page, once the view's index has opened (it opens beside the app)."""
    page.goto(f"/cases/{case_id}")
    for _ in range(100):
        if not page.locator("#pdq-note").count():
            break
        page.wait_for_timeout(200)
        page.goto(f"/cases/{case_id}")
    expect(page.locator("#pdq-note")).to_have_count(0)


def test_case_page_tells_known_from_near_known_content(
    pdq_scene: tuple[Cluster, WebServer], browser: Browser
) -> None:
    cluster, web = pdq_scene
    case_a = case_of(cluster, "/pdq/a.jpg", near(0, 90))
    case_b = case_of(cluster, "/pdq/b.jpg", near(20, 80), near(21, 30))
    context = browser.new_context(base_url=web.base)
    try:
        page = context.new_page()
        token = cluster.fed.token(DE, Scope.CASES_WORK, subject="de-analyst")
        log_in(page, token, "/cases")
        open_case(page, case_b)
        table = page.locator("#pdq")
        expect(
            page.get_by_role("heading", name="Known and near-known content (PDQ)")
        ).to_be_visible()
        expect(table.locator("tr.pdq-known")).to_have_count(2)
        expect(table.locator("tr.pdq-known").first).to_contain_text("not sighted in another case")
        expect(table.locator("tr.pdq-near")).to_have_count(1)
        first = table.locator("tr.pdq-near").first
        expect(first).to_contain_text(f"distance 20: {DE}, case {case_a}, national")
        expect(first.locator("td").nth(1)).to_have_text("20")
        expect(table.locator("tr.pdq-summary").nth(1)).to_contain_text(
            "pdq quality 30 below 50: not matched"
        )
        expect(table).to_contain_text(near(20, 80).hex)

        case_c = case_of(cluster, "/pdq/c.jpg", near(25, 90))  # sighted after the page
        open_case(page, case_b)
        rows = table.locator("tr.pdq-near")
        expect(rows).to_have_count(2)
        expect(rows.nth(0)).to_contain_text(re.compile(rf"distance 5: {DE}, case {case_c}"))
        expect(rows.nth(1)).to_contain_text(f"distance 20: {DE}, case {case_a}")  # nearest first
        shoot(page, "case-pdq")
    finally:
        context.close()
