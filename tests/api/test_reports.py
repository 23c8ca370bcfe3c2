"""The after-action report, on PostgreSQL and on SQLite: map, timeline, fill per line, flags."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.factories import Api, make_api


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    api, client = make_api(database_url)
    with client:
        api.user("coordinator", "coordinator")
        api.user("observer", "observer")
        for city in ("athens", "sofia", "belgrade", "zagreb"):
            api.user(city, "city_operator", city)
        yield api


def _incident_with_help(api: Api) -> dict[str, Any]:
    """Athens asks for 3 helicopters and 1 amphibian; Sofia and Belgrade send all 3 they have
    (a lender-cover flag each: none is left anywhere); the amphibian line stays open. One
    deployment is released, the others only arrive."""
    for city, capability, n in (("sofia", "FF_HELICOPTER", 1), ("belgrade", "FF_HELICOPTER", 2)):
        api.ok(
            api.post(
                city,
                "/api/v1/resources/bulk",
                {"capability": capability, "quantity": n, "callsign_prefix": f"R-{city}"},
            ),
            201,
        )
    incident = api.ok(
        api.post(
            "athens",
            "/api/v1/incidents",
            {
                "kind": "wildfire",
                "title": "Parnitha fire",
                "lat": 38.17,
                "lon": 23.72,
                "severity": "extreme",
            },
        ),
        201,
    )
    request = api.ok(
        api.post(
            "athens",
            "/api/v1/requests",
            {
                "incident_id": incident["id"],
                "priority": "critical",
                "items": [
                    {"capability": "FF_HELICOPTER", "quantity": 3},
                    {"capability": "FF_AMPHIBIAN", "quantity": 1, "substitutes": []},
                ],
            },
        ),
        201,
    )
    heli, amphibian = request["items"]
    plan = api.ok(
        api.post("coordinator", "/api/v1/allocations/plan", {"request_ids": [request["id"]]})
    )
    assert len(plan["assignments"]) == 3
    assert {f["city"] for f in plan["flags"]} == {"sofia", "belgrade"}
    applied = api.ok(
        api.post("coordinator", f"/api/v1/allocations/{plan['id']}/apply", {"mode": "offers"})
    )
    deployments = [
        api.ok(api.post("athens", f"/api/v1/offers/{o['id']}/accept"))["deployment"]
        for o in applied["offers"]
    ]
    for number, deployment in enumerate(deployments):
        steps = ["en_route", "on_scene"] + (["released"] if number == 0 else [])
        for status in steps:
            api.ok(
                api.post(
                    "athens", f"/api/v1/deployments/{deployment['id']}/status", {"status": status}
                )
            )
    return {
        "incident": incident,
        "request": request,
        "heli": heli,
        "amphibian": amphibian,
        "plan": plan,
        "offers": applied["offers"],
    }


def _row(html: str, item_id: int) -> dict[str, str]:
    match = re.search(rf'<tr data-item="{item_id}"([^>]*)>', html)
    assert match, f"no row for item {item_id}"
    return dict(re.findall(r'data-(\w+)="([^"]*)"', match.group(1)))


def test_report_shows_map_timeline_fill_and_flags(api: Api) -> None:
    made = _incident_with_help(api)
    incident_id = made["incident"]["id"]
    response = api.get("athens", f"/api/v1/incidents/{incident_id}/report")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "Parnitha fire" in html
    # No external resources: the page prints offline.
    assert not re.search(r'(src|href)="https?://', html)
    # The map: country outlines drawn locally, one arrow per donor city, the incident point.
    map_svg = re.search(r'<svg id="map".*?</svg>', html, re.S)
    assert map_svg
    assert map_svg.group(0).count('<polygon class="land"') >= 5
    assert "<title>Greece</title>" in map_svg.group(0)
    arrows = set(re.findall(r'<line class="arrow" data-city="([^"]+)"', map_svg.group(0)))
    donors = {o["donor_city"] for o in made["offers"]}
    names = {"sofia": "Sofia", "belgrade": "Belgrade"}
    assert arrows == {names[d] for d in donors}
    assert 'id="incident-point"' in map_svg.group(0)
    # The timeline: one request, three offers, three arrivals, one release.
    lanes = dict(re.findall(r'data-lane="(\w+)" data-count="(\d+)"', html))
    assert lanes == {"requests": "1", "offers": "3", "arrivals": "3", "releases": "1"}
    # Fill per line: the helicopters are filled, the amphibian line is empty.
    assert _row(html, made["heli"]["id"]) == {
        "asked": "3",
        "accepted": "3",
        "fill": "1.0",
    }
    assert _row(html, made["amphibian"]["id"])["fill"] == "0.0"
    # The lender-cover flags of the plan.
    flags = re.search(r'<table id="flags">.*?</table>', html, re.S)
    assert flags
    flagged = set(re.findall(r'<tr data-city="([^"]+)"', flags.group(0)))
    assert flagged == {f["city"] for f in made["plan"]["flags"]}

    data = api.ok(api.get("observer", f"/api/v1/incidents/{incident_id}/report?format=json"))
    assert data["totals"] == {
        "asked": 4,
        "accepted": 3,
        "fill_rate": 0.75,
        "offers": 3,
        "deployments": 3,
    }
    heli = next(line for line in data["lines"] if line["item_id"] == made["heli"]["id"])
    assert heli["seconds_to_first_offer"] >= 0
    assert heli["seconds_to_fill"] >= heli["seconds_to_first_offer"]
    assert heli["distance_km"] == pytest.approx(sum(o["distance_km"] for o in made["offers"]))
    amphibian = next(line for line in data["lines"] if line["item_id"] == made["amphibian"]["id"])
    assert amphibian["seconds_to_first_offer"] is None
    assert amphibian["seconds_to_fill"] is None
    assert {d["city"]: d["units"] for d in data["donors"]} == {
        d: sum(1 for o in made["offers"] if o["donor_city"] == d) for d in donors
    }
    assert data["timeline"]["counts"] == {"requests": 1, "offers": 3, "arrivals": 3, "releases": 1}


def test_report_of_a_quiet_incident(api: Api) -> None:
    incident = api.ok(
        api.post(
            "zagreb",
            "/api/v1/incidents",
            {"kind": "flood", "title": "Sava", "lat": 45.8, "lon": 15.97, "severity": "low"},
        ),
        201,
    )
    html = api.get("zagreb", f"/api/v1/incidents/{incident['id']}/report").text
    assert 'id="map"' in html
    assert "No requests yet." in html
    assert "No unit was deployed." in html
    assert 'id="flags-none"' in html


def test_report_access(api: Api) -> None:
    made = _incident_with_help(api)
    path = f"/api/v1/incidents/{made['incident']['id']}/report"
    assert api.get("anonymous", path).status_code == 401
    # A city that took no part may not read it; the involved cities and observers may.
    refused = api.get("zagreb", path)
    assert refused.status_code == 403
    assert "cities involved" in refused.json()["detail"]
    for who in ("athens", *{o["donor_city"] for o in made["offers"]}, "observer", "coordinator"):
        assert api.get(who, path).status_code == 200, who
    assert api.get("admin", "/api/v1/incidents/999999/report").status_code == 404
