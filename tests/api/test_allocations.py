"""Allocation plans through the API, on PostgreSQL and on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.factories import Api, make_api

HELI = "FF_HELICOPTER"


def unit(api: Api, city: str, callsign: str, capability: str = HELI, **extra: Any) -> dict:
    body = {"capability": capability, "callsign": callsign, **extra}
    return api.ok(api.post(city, "/api/v1/resources", body), 201)


def incident(api: Api, city: str, lat: float, lon: float, exercise: bool = False) -> dict:
    body = {
        "kind": "wildfire",
        "title": f"fire near {city}",
        "lat": lat,
        "lon": lon,
        "severity": "extreme",
    }
    if exercise:
        body["exercise"] = True
    return api.ok(api.post(city, "/api/v1/incidents", body), 201)


def request(api: Api, city: str, incident_id: int, priority: str, items: list[dict]) -> dict:
    body = {"incident_id": incident_id, "priority": priority, "items": items}
    return api.ok(api.post(city, "/api/v1/requests", body), 201)


def scene(api: Api) -> dict[str, Any]:
    """Athens (critical, 2 helicopters) and Zagreb (high, 1) against 3 lendable helicopters."""
    units = {
        c: unit(api, city, c)
        for city, c in [
            ("sofia", "SOF-H1"),
            ("sofia", "SOF-H2"),
            ("belgrade", "BEG-H1"),
            ("skopje", "SKP-H1"),
            ("athens", "ATH-H1"),
        ]
    }
    # Skopje keeps its only helicopter at home.
    api.ok(api.put("skopje", f"/api/v1/cities/skopje/reserves/{HELI}", {"minimum": 1}))
    athens_fire = incident(api, "athens", 38.17, 23.78)
    zagreb_fire = incident(api, "zagreb", 45.70, 16.10)
    athens = request(
        api, "athens", athens_fire["id"], "critical", [{"capability": HELI, "quantity": 2}]
    )
    zagreb = request(
        api, "zagreb", zagreb_fire["id"], "high", [{"capability": HELI, "quantity": 1}]
    )
    return {"units": units, "athens": athens, "zagreb": zagreb}


def candidates(api: Api, request_id: int) -> dict[int, dict]:
    ranked = api.ok(api.get("coordinator", f"/api/v1/requests/{request_id}/candidates"))
    return {c["resource_id"]: c for item in ranked["items"] for c in item["candidates"]}


def test_plan_is_the_best_and_uses_the_candidates_etas(api: Api) -> None:
    s = scene(api)
    units = s["units"]
    plan = api.ok(api.post("coordinator", "/api/v1/allocations/plan", {}))
    assert plan["exercise"] is False
    assert plan["objective"]["filled"] == {"critical": 2, "high": 1, "normal": 0}
    assert plan["unfilled"] == []
    given = {(a["request_id"], a["resource_id"]) for a in plan["assignments"]}
    # Sofia is nearer Athens, Belgrade nearer Zagreb: the total ETA is least this way.
    assert given == {
        (s["athens"]["id"], units["SOF-H1"]["id"]),
        (s["athens"]["id"], units["SOF-H2"]["id"]),
        (s["zagreb"]["id"], units["BEG-H1"]["id"]),
    }
    assert units["SKP-H1"]["id"] not in {a["resource_id"] for a in plan["assignments"]}
    total = 0.0
    for a in plan["assignments"]:
        ranked = candidates(api, a["request_id"])[a["resource_id"]]
        assert (a["eta_hours"], a["distance_km"]) == (ranked["eta_hours"], ranked["distance_km"])
        assert (a["city"], a["capability"]) == (ranked["city"], HELI)
        total += a["eta_hours"]
    assert plan["objective"]["total_eta_hours"] == pytest.approx(total, abs=1e-3)
    cover = {(c["city"], c["capability"]): c for c in plan["lender_cover"]}
    assert cover[("sofia", HELI)]["left_at_home"] == 0
    assert cover[("belgrade", HELI)]["left_at_home"] == 0
    # Athens' own and Skopje's reserve helicopter stay available: Sofia is still covered.
    assert cover[("sofia", HELI)]["nearest_eta_hours"] < 12
    assert plan["flags"] == []
    stored = api.ok(api.get("coordinator", f"/api/v1/allocations/{plan['id']}"))
    assert stored["assignments"] == plan["assignments"]
    assert stored["applied_at"] is None


def test_apply_as_offers_in_one_go(api: Api) -> None:
    s = scene(api)
    plan = api.ok(api.post("coordinator", "/api/v1/allocations/plan", {}))
    applied = api.ok(
        api.post("coordinator", f"/api/v1/allocations/{plan['id']}/apply", {"mode": "offers"})
    )
    assert applied["plan_id"] == plan["id"]
    offers = applied["offers"]
    assert sorted((o["request_item_id"], o["resource_id"]) for o in offers) == sorted(
        (a["request_item_id"], a["resource_id"]) for a in plan["assignments"]
    )
    assert {o["status"] for o in offers} == {"pending"}
    for o in offers:
        assert o["eta_hours"] == next(
            a["eta_hours"] for a in plan["assignments"] if a["resource_id"] == o["resource_id"]
        )
        resource = api.ok(api.get("coordinator", f"/api/v1/resources/{o['resource_id']}"))
        assert resource["status"] == "offered"
    # The requesting city accepts as usual.
    athens_offer = next(o for o in offers if o["requesting_city"] == "athens")
    api.ok(api.post("athens", f"/api/v1/offers/{athens_offer['id']}/accept"))
    again = api.post("coordinator", f"/api/v1/allocations/{plan['id']}/apply", {"mode": "offers"})
    assert again.status_code == 409
    assert "already applied" in again.json()["detail"]
    events = api.ok(api.get("observer", "/api/v1/events", params={"limit": 1000}))["items"]
    types = [e["type"] for e in events]
    assert "allocation.planned" in types
    assert "allocation.applied" in types
    planned = next(e for e in events if e["type"] == "allocation.planned")
    assert planned["payload"]["flags"] == []
    assert planned["payload"]["request_ids"] == sorted([s["athens"]["id"], s["zagreb"]["id"]])


def test_apply_as_direct_dispatch(api: Api) -> None:
    s = scene(api)
    plan = api.ok(api.post("coordinator", "/api/v1/allocations/plan", {}))
    applied = api.ok(
        api.post("coordinator", f"/api/v1/allocations/{plan['id']}/apply", {"mode": "dispatch"})
    )
    deployments = applied["deployments"]
    assert len(deployments) == 3
    assert {d["status"] for d in deployments} == {"mobilising"}
    for name in ("athens", "zagreb"):
        assert api.ok(api.get(name, f"/api/v1/requests/{s[name]['id']}"))["status"] == "filled"
    # Nothing left to plan.
    empty = api.ok(api.post("coordinator", "/api/v1/allocations/plan", {}))
    assert empty["assignments"] == []
    assert empty["unfilled"] == []


def test_a_stale_plan_is_refused_naming_the_unit(api: Api) -> None:
    s = scene(api)
    plan = api.ok(api.post("coordinator", "/api/v1/allocations/plan", {}))
    moved = s["units"]["BEG-H1"]
    api.ok(
        api.post(
            "belgrade", f"/api/v1/resources/{moved['id']}/status", {"status": "out_of_service"}
        )
    )
    response = api.post(
        "coordinator", f"/api/v1/allocations/{plan['id']}/apply", {"mode": "offers"}
    )
    assert response.status_code == 409
    body = response.json()
    assert f"resource {moved['id']} (BEG-H1) is out_of_service" in body["detail"]
    assert body["field"] == "plan_id"
    assert [u["resource_id"] for u in body["changed"]["resources"]] == [moved["id"]]
    # All or nothing: no offer was made for the plan's other units.
    assert api.ok(api.get("coordinator", "/api/v1/offers"))["total"] == 0
    # A new plan works around it: Athens' own helicopter goes to Zagreb (Skopje keeps its
    # reserve), and Athens is still filled from Sofia.
    fresh = api.ok(api.post("coordinator", "/api/v1/allocations/plan", {}))
    assert fresh["objective"]["filled"] == {"critical": 2, "high": 1, "normal": 0}
    assert (s["zagreb"]["id"], s["units"]["ATH-H1"]["id"]) in {
        (a["request_id"], a["resource_id"]) for a in fresh["assignments"]
    }


def test_a_changed_line_makes_a_plan_stale(api: Api) -> None:
    s = scene(api)
    plan = api.ok(api.post("coordinator", "/api/v1/allocations/plan", {}))
    line = s["zagreb"]["items"][0]
    # Zagreb takes Skopje's helicopter directly (a coordinator overriding the reserve).
    api.ok(
        api.post(
            "coordinator",
            "/api/v1/dispatches",
            {
                "request_item_id": line["id"],
                "resource_id": s["units"]["SKP-H1"]["id"],
                "override_reserve": True,
            },
        ),
        201,
    )
    response = api.post(
        "coordinator", f"/api/v1/allocations/{plan['id']}/apply", {"mode": "offers"}
    )
    assert response.status_code == 409
    assert f"request item {line['id']} has 1 accepted, was 0" in response.json()["detail"]


def test_only_coordinators_plan_and_apply(api: Api) -> None:
    scene(api)
    for who in ("athens", "observer", "duty"):
        response = api.post(who, "/api/v1/allocations/plan", {})
        assert response.status_code == 403, who
    plan = api.ok(api.post("admin", "/api/v1/allocations/plan", {}))
    response = api.post("sofia", f"/api/v1/allocations/{plan['id']}/apply", {"mode": "offers"})
    assert response.status_code == 403
    assert api.post("anonymous", "/api/v1/allocations/plan", {}).status_code == 401
    missing = api.post("coordinator", "/api/v1/allocations/999999/apply", {"mode": "offers"})
    assert missing.status_code == 404
    bad = api.post("coordinator", f"/api/v1/allocations/{plan['id']}/apply", {"mode": "grab"})
    assert bad.status_code == 422


def test_exercise_and_live_never_mix(api: Api) -> None:
    s = scene(api)
    drill_unit = unit(api, "belgrade", "BEG-X1", exercise=True)
    drill = incident(api, "sofia", 42.6, 23.4, exercise=True)
    drill_request = request(
        api, "sofia", drill["id"], "normal", [{"capability": HELI, "quantity": 2}]
    )
    exercise = api.ok(api.post("coordinator", "/api/v1/allocations/plan", {"exercise": True}))
    assert exercise["exercise"] is True
    assert [(a["request_id"], a["resource_id"]) for a in exercise["assignments"]] == [
        (drill_request["id"], drill_unit["id"])
    ]
    assert exercise["unfilled"][0]["quantity"] == 1
    live = api.ok(api.post("coordinator", "/api/v1/allocations/plan", {}))
    assert drill_unit["id"] not in {a["resource_id"] for a in live["assignments"]}
    assert drill_request["id"] not in {a["request_id"] for a in live["assignments"]}
    mixed = api.post(
        "coordinator",
        "/api/v1/allocations/plan",
        {"exercise": True, "request_ids": [s["athens"]["id"]]},
    )
    assert mixed.status_code == 422
    assert mixed.json()["field"] == "request_ids"


def test_plan_for_named_requests_only(api: Api) -> None:
    s = scene(api)
    plan = api.ok(
        api.post("coordinator", "/api/v1/allocations/plan", {"request_ids": [s["zagreb"]["id"]]})
    )
    # Alone, Zagreb gets the nearest helicopter (Belgrade's).
    assert [(a["request_id"], a["resource_id"]) for a in plan["assignments"]] == [
        (s["zagreb"]["id"], s["units"]["BEG-H1"]["id"])
    ]
    one_line = api.ok(
        api.post(
            "coordinator",
            "/api/v1/allocations/plan",
            {"request_item_ids": [s["athens"]["items"][0]["id"]]},
        )
    )
    assert {a["request_id"] for a in one_line["assignments"]} == {s["athens"]["id"]}
    missing = api.post("coordinator", "/api/v1/allocations/plan", {"request_ids": [999999]})
    assert missing.status_code == 404


@pytest.fixture
def strict_cover_api(database_url: str) -> Iterator[Api]:
    api, client = make_api(database_url, cover_eta_hours=4.0)
    with client:
        api.user("coordinator", "coordinator")
        for city in ("athens", "sofia", "belgrade", "zagreb", "skopje"):
            api.user(city, "city_operator", city)
        yield api


def test_plan_flags_a_lender_left_uncovered(strict_cover_api: Api) -> None:
    api = strict_cover_api
    scene(api)
    plan = api.ok(api.post("coordinator", "/api/v1/allocations/plan", {}))
    flags = {(f["city"], f["capability"]): f for f in plan["flags"]}
    # Belgrade lends its only helicopter; the nearest left (Skopje's) is over 4 h away.
    assert ("belgrade", HELI) in flags
    assert flags[("belgrade", HELI)]["nearest_eta_hours"] > 4.0
    assert "belgrade" in flags[("belgrade", HELI)]["reason"]
    # Sofia still has Skopje's helicopter within 4 h (3.9 h).
    assert ("sofia", HELI) not in flags
    events = api.ok(api.get("coordinator", "/api/v1/events", params={"limit": 1000}))["items"]
    planned = next(e for e in events if e["type"] == "allocation.planned")
    assert planned["payload"]["flags"] == plan["flags"]


def test_lender_cover_of_one_offer(strict_cover_api: Api) -> None:
    api = strict_cover_api
    s = scene(api)
    item = s["zagreb"]["items"][0]["id"]
    beg = s["units"]["BEG-H1"]["id"]
    offer = api.ok(
        api.post("belgrade", "/api/v1/offers", {"request_item_id": item, "resource_id": beg}), 201
    )
    cover = api.ok(api.get("belgrade", f"/api/v1/offers/{offer['id']}/cover"))
    assert (cover["offer_id"], cover["resource_id"], cover["offer_status"]) == (
        offer["id"],
        beg,
        "pending",
    )
    [belgrade] = cover["lender_cover"]
    assert (belgrade["city"], belgrade["capability"], belgrade["left_at_home"]) == (
        "belgrade",
        HELI,
        0,
    )
    # With its own helicopter Belgrade is covered at readiness; without it, the nearest is
    # another city's, more than the 4 h threshold away: flagged, as a plan would flag it.
    assert belgrade["nearest_eta_hours_before"] < 4.0 < belgrade["nearest_eta_hours"]
    assert [(f["city"], f["capability"]) for f in cover["flags"]] == [("belgrade", HELI)]
    assert cover["flags"][0]["nearest_eta_hours"] == belgrade["nearest_eta_hours"]
    # Read-only: asking again (another city's operator) gives the same answer.
    assert api.ok(api.get("zagreb", f"/api/v1/offers/{offer['id']}/cover")) == cover
    assert api.get("belgrade", "/api/v1/offers/999999/cover").status_code == 404
