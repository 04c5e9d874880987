"""Basic accessibility of every page, checked in the browser: every control labelled, headings
in order under one h1, a skip link first, every control reachable with Tab, images described."""

from __future__ import annotations

import itertools
import re

import pytest
from playwright.sync_api import Page, expect

from tests.exchange.web.conftest import Scene, log_in

pytestmark = pytest.mark.timeout(180)

UNLABELLED = """() => Array.from(document.querySelectorAll('input, select, textarea'))
  .filter(e => e.type !== 'hidden')
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
  .map(e => e.name || e.id || e.outerHTML)"""
NAMELESS_BUTTONS = """() => Array.from(document.querySelectorAll('button, a[href]'))
  .filter(e => !(e.innerText || '').trim() && !e.getAttribute('aria-label'))
  .map(e => e.outerHTML)"""
HEADINGS = """() => Array.from(document.querySelectorAll('h1, h2, h3, h4, h5, h6'))
  .map(h => Number(h.tagName[1]))"""
NO_ALT = """() => Array.from(document.querySelectorAll('img'))
  .filter(i => !(i.getAttribute('alt') || '').trim()).map(i => i.src)"""
FOCUSED = """() => { const e = document.activeElement;
  return e ? (e.id || e.name || e.innerText || e.tagName) : '' }"""


def pages(scene: Scene) -> list[str]:
    return [
        "/",
        "/log",
        "/cases",
        f"/cases/{scene.assessed_case}",
        "/hosts",
        "/stats",
        "/log/verify",
    ]


def test_every_control_is_labelled_and_every_image_described(scene: Scene, page: Page) -> None:
    page.goto("/login")
    assert page.evaluate(UNLABELLED) == []
    log_in(page, scene.admin())
    for path in pages(scene):
        page.goto(path)
        assert page.evaluate(UNLABELLED) == [], path
        assert page.evaluate(NAMELESS_BUTTONS) == [], path
        assert page.evaluate(NO_ALT) == [], path
        assert page.locator("html").get_attribute("lang") == "en"


def test_headings_are_in_order_under_one_h1(scene: Scene, page: Page) -> None:
    page.goto("/login")
    levels = page.evaluate(HEADINGS)
    assert levels[0] == 1
    log_in(page, scene.admin())
    for path in pages(scene):
        page.goto(path)
        levels = page.evaluate(HEADINGS)
        assert levels[0] == 1, path
        assert levels.count(1) == 1, path
        for before, after in itertools.pairwise(levels):
            assert after <= before + 1, f"{path}: h{before} then h{after}"


def test_skip_link_comes_first_and_moves_to_the_content(scene: Scene, page: Page) -> None:
    log_in(page, scene.admin(), "/log")
    page.keyboard.press("Tab")
    assert page.evaluate(FOCUSED) == "Skip to content"
    page.keyboard.press("Enter")
    # A same-document navigation reaches Playwright's page.url by an event after the key press
    # returns, so the URL and the focus are awaited, not read once.
    expect(page).to_have_url(re.compile(r"#main$"))
    expect(page.locator("#main")).to_be_focused()


def tab_through(page: Page, presses: int) -> list[str]:
    seen = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        seen.append(str(page.evaluate(FOCUSED)).strip())
    return seen


def test_tab_reaches_every_control_of_the_log_and_login(scene: Scene, page: Page) -> None:
    page.goto("/login")
    assert {"token", "Log in"} <= set(tab_through(page, 6))
    log_in(page, scene.admin(), "/log")
    reached = set(tab_through(page, 80))  # a datetime-local field takes a stop per part
    wanted = {"f-kind", "f-member", "f-country", "f-report", "f-since", "f-until", "f-size"}
    assert wanted <= reached
    assert "Filter" in reached
    assert "Log out" in reached
    assert "csv-link" in reached
