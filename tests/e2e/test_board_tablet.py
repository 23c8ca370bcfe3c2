"""The board on a tablet: every panel on screen, no sideways scrolling, exercise marked."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, expect

from tests.conftest import ServerProcess
from tests.e2e.test_board_page import embedded_env, log_in


def test_board_fits_a_tablet_in_portrait(
    browser: Browser, server_factory: type[ServerProcess], sqlite_url: str, artifacts: Path
) -> None:
    server = server_factory(embedded_env(sqlite_url, demo=True)).start()
    page = browser.new_page(viewport={"width": 768, "height": 1024}, has_touch=True)
    log_in(page, server)
    expect(page.locator("#requests .exercise-tag").first).to_be_visible()
    for panel in ("#map", "#requests", "#conn"):
        expect(page.locator(panel)).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow} px on a tablet"
    shot = artifacts / "board-tablet.png"
    page.screenshot(path=str(shot), full_page=True)
    page.close()
