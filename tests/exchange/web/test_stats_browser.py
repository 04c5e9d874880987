"""Statistics in the browser: the page's totals, every chart drawn with its series, the CSVs.

de-eco's figures in ``scene``: ``REPORTS`` reports received from nl-eokm (one DE-hosted item
each), one item assessed baseline and reported to law enforcement.
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET

import pytest
from playwright.sync_api import Page, expect

from auth.tokens import Scope
from exchange.stats.charts import Chart
from tests.exchange.web.conftest import ADMIN, MANAGER, REPORTS, STATS, Scene, log_in, shoot
from tests.integration.support import DE

pytestmark = pytest.mark.timeout(180)
# An image drawn: loaded, and decoded to a size (a refused or broken image has none).
LOADED = "id => { const i = document.getElementById(id); return i.complete && i.naturalWidth > 0 }"


def gids(svg: str) -> set[str]:
    return {e.attrib["id"] for e in ET.fromstring(svg).iter() if "id" in e.attrib}


def test_stats_page_totals_and_every_chart_render(scene: Scene, page: Page) -> None:
    log_in(page, scene.token(STATS, Scope.STATS_READ), "/stats")
    expect(page.get_by_role("heading", level=1)).to_have_text("Statistics")
    received = page.locator("#totals tr", has=page.locator("th", has_text="received"))
    expect(received.locator("td")).to_have_text(str(REPORTS))
    for chart in Chart:
        image = page.locator(f"#chart-{chart.value}")
        assert (image.get_attribute("alt") or "").strip()
        image.scroll_into_view_if_needed()
        page.wait_for_function(LOADED, arg=f"chart-{chart.value}")
    shoot(page, "stats")


def test_charts_carry_the_expected_series(scene: Scene, page: Page) -> None:
    log_in(page, scene.token(STATS, Scope.STATS_READ), "/stats")
    src = page.locator(f"#chart-{Chart.COUNTRIES.value}").get_attribute("src")
    assert src is not None
    query = src.split("?", 1)[1]

    def chart(name: Chart) -> set[str]:
        answer = page.request.get(f"/stats/chart/{name.value}.svg?{query}")
        assert answer.status == 200
        assert answer.headers["content-type"].startswith("image/svg+xml")
        assert "<script" not in answer.text()
        return gids(answer.text())

    assert "bar-DE" in chart(Chart.COUNTRIES)
    assert {"series-received", "series-items"} <= chart(Chart.VOLUME)
    assert "series-in_network" in chart(Chart.TO_LEA)
    assert "bar-baseline" in chart(Chart.ASSESSED)
    assert "no-data" in chart(Chart.TO_REMOVAL)  # nothing removed yet


def test_statistics_csv_download(scene: Scene, page: Page) -> None:
    log_in(page, scene.token(STATS, Scope.STATS_READ), "/stats?by=day")
    with page.expect_download() as info:
        page.locator("#stats-csv").click()
    rows = list(csv.DictReader(io.StringIO(info.value.path().read_text(encoding="utf-8"))))
    received = [r for r in rows if r["figure"] == "received" and r["key"] == "nl-eokm"]
    assert sum(int(r["value"]) for r in received if r["value"].isdigit()) == REPORTS


def test_stats_scope_is_required(scene: Scene, page: Page) -> None:
    log_in(page, scene.token(MANAGER, Scope.CASES_WORK), "/stats")
    for path in ("/stats", "/stats/chart/countries.svg", "/stats.csv", "/hosts"):
        response = page.goto(path)
        assert response is not None
        assert response.status == 403, path


def test_cases_csv_hides_urls_from_a_manager_and_is_audited(scene: Scene, page: Page) -> None:
    log_in(page, scene.token(MANAGER, Scope.CASES_WORK), "/cases")
    expect(page.locator("#cases-csv-urls")).to_have_count(0)
    with page.expect_download() as info:
        page.locator("#cases-csv").click()
    rows = list(csv.DictReader(io.StringIO(info.value.path().read_text(encoding="utf-8"))))
    assert len(rows) == REPORTS
    assert "url" not in rows[0]
    refused = page.goto("/cases.csv?columns=case_id,url")
    assert refused is not None
    assert refused.status == 400
    entries = scene.cluster.rows(DE, "SELECT detail FROM routing_log WHERE kind = 'viewed'")
    exports = [d for d in (json.loads(r.detail) for r in entries) if d.get("export") == "cases"]
    assert any(d["viewer"] == MANAGER and d["url_shown"] is False for d in exports)


def test_cases_csv_with_urls_for_admin(scene: Scene, page: Page) -> None:
    log_in(page, scene.admin(), "/cases")
    with page.expect_download() as info:
        page.locator("#cases-csv-urls").click()
    rows = list(csv.DictReader(io.StringIO(info.value.path().read_text(encoding="utf-8"))))
    assert scene.assessed_url in {r["url"] for r in rows}
    entries = scene.cluster.rows(DE, "SELECT detail FROM routing_log WHERE kind = 'viewed'")
    exports = [d for d in (json.loads(r.detail) for r in entries) if d.get("export") == "cases"]
    assert any(d["viewer"] == ADMIN and d["url_shown"] is True for d in exports)
    # Red-team F7: which cases' URLs left is recorded, case by case, before the rows were sent.
    parts = [d for d in exports if d["viewer"] == ADMIN and "part" in d]
    assert {r["case_id"] for r in rows} <= {c for d in parts for c in d["cases"]}
