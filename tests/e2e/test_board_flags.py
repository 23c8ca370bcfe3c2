"""Lender-cover flags raised by an allocation plan show on the board, live."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, expect

from tests.conftest import ServerProcess
from tests.e2e.test_board_page import api, embedded_env, log_in


def test_a_plan_that_strips_a_city_raises_a_flag_on_the_board(
    browser: Browser, server_factory: type[ServerProcess], sqlite_url: str, artifacts: Path
) -> None:
    server = server_factory(embedded_env(sqlite_url, demo=False)).start()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, server)
    expect(page.locator("#flags-panel")).to_be_hidden()
    with api(server) as client:
        # Sofia holds the network's only firefighting helicopter; Athens asks for one.
        unit = {"city": "sofia", "capability": "FF_HELICOPTER", "callsign": "SOF-ONLY"}
        assert client.post("/api/v1/resources", json=unit).status_code == 201
        incident = client.post(
            "/api/v1/incidents",
            json={
                "city": "athens",
                "kind": "wildfire",
                "title": "Parnitha",
                "lat": 38.17,
                "lon": 23.72,
                "severity": "high",
            },
        ).json()
        request = {
            "city": "athens",
            "incident_id": incident["id"],
            "priority": "critical",
            "items": [{"capability": "FF_HELICOPTER", "quantity": 1}],
        }
        assert client.post("/api/v1/requests", json=request).status_code == 201
        plan = client.post("/api/v1/allocations/plan", json={}).json()
    assert [a["city"] for a in plan["assignments"]] == ["sofia"]
    flagged = {(f["city"], f["capability"]) for f in plan["flags"]}
    assert ("sofia", "FF_HELICOPTER") in flagged
    expect(page.locator("#flags-panel")).to_be_visible(timeout=10_000)
    expect(page.locator("#flags")).to_contain_text("Sofia FF_HELICOPTER")
    page.screenshot(path=str(artifacts / "board-flags.png"))
    page.close()
