"""Fixtures of the web view's tests: a real federation with real data, the view over de-eco's
database, tokens of every role, and Debian's Chromium driven by Playwright.

``scene`` (one per package): the partner test federation (four real nodes on loopback), nl-eokm
reporting ``REPORTS`` DE-hosted URLs (and one NL-hosted), every report delivered and receipted,
the first case assessed baseline and reported to law enforcement at de-eco, which holds them;
then ``ihx web`` for de-eco on a free loopback port. ``browser``: /usr/bin/chromium, headless,
never a downloaded browser. Screenshots go to ``test-artifacts/web/`` (gitignored).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from auth.tokens import Scope
from exchange.domain import AgeGroup, Classification
from exchange.lifecycle.model import Action, ActionKind, Assessment, Gender
from tests.exchange.factories import make_submission, url_in
from tests.exchange.web.support import Http, ShiftedClock, WebServer
from tests.integration.case_flow import deliver, quiet
from tests.integration.partner_cluster import DE_BKA, new_partner_cluster, stop_senders
from tests.integration.support import DE, NL, Cluster

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "web"
REPORTS = 30
ADMIN, MANAGER, COORDINATOR, ANALYST, STATS = (
    "web-admin",
    "de-manager",
    "inhope-coordinator",
    "de-analyst",
    "stats-reader",
)


@dataclass
class Scene:
    cluster: Cluster
    web: WebServer
    clock: ShiftedClock
    assessed_case: str  # de-eco's case, assessed and reported to law enforcement
    assessed_url: str
    case_ids: list[str]

    def token(self, subject: str, *scopes: Scope, ttl: float = 900.0) -> str:
        return self.cluster.fed.token(DE, *scopes, subject=subject, ttl=ttl)

    def admin(self) -> str:
        return self.token(ADMIN, Scope.ADMIN)

    def http(self) -> Http:
        return Http(self.web.base)


def _report(cluster: Cluster) -> tuple[list[str], str, str]:
    cases, first_url = [], ""
    for n in range(REPORTS):
        url = url_in("DE", f"/web/{n:03d}.jpg")
        first_url = first_url or url
        _, case_id = deliver(cluster, NL, make_submission(url, hashes=[f"web-{n}"]))
        cases.append(case_id)
    cluster.submit(NL, [make_submission(url_in("NL", "/web/local.jpg"), hashes=["web-local"])])
    return cases, cases[0], first_url


@pytest.fixture(scope="package")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    cluster = new_partner_cluster(tmp_path_factory.mktemp("web"))
    web: WebServer | None = None
    try:
        cases, assessed, url = _report(cluster)
        work = cluster.node(DE).case_work
        work.assess(
            assessed,
            [],
            Assessment(Classification.BASELINE, AgeGroup.PREPUBESCENT, Gender.FEMALE),
        )
        work.act(assessed, [], Action(ActionKind.REPORTED_TO_LEA, partner=DE_BKA, reference="w-1"))
        quiet(cluster, 30)
        clock = ShiftedClock()
        web = WebServer(cluster.fed.settings[DE], clock)
        web.start()
        yield Scene(cluster, web, clock, assessed, url, cases)
    finally:
        if web is not None:
            web.stop()
        stop_senders(cluster)
        cluster.close()


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    # Debian's Chromium, never a browser Playwright downloads.
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def context(browser: Browser, scene: Scene) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=scene.web.base, accept_downloads=True)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def shoot(page: Page, name: str) -> Path:
    """A full-page screenshot of ``page`` in test-artifacts/web/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page: Page, token: str, path: str = "/") -> None:
    """Log in through the form, as a person would: open a page, paste the token, submit."""
    page.goto(path)
    page.get_by_label("Token (JWT)").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
