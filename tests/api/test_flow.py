"""The whole dispatch flow through the API, on PostgreSQL and on SQLite."""

from __future__ import annotations

import pytest
from pyproj import Geod

from tests.factories import Api

WGS84 = Geod(ellps="WGS84")  # an independent geodesic implementation (PROJ), not geopy
ROUTE_FACTOR = {"air": 1.0, "road": 1.3}


def independent_eta(unit: dict, incident: dict, capability: dict) -> tuple[float, float]:
    _, _, metres = WGS84.inv(unit["lon"], unit["lat"], incident["lon"], incident["lat"])
    km = metres / 1000
    eta = (
        unit["readiness_hours"]
        + km * ROUTE_FACTOR[capability["travel"]] / capability["deploy_speed_kmh"]
    )
    return km, eta


def test_register_request_rank_offer_accept_deploy_return(api: Api) -> None:
    catalogue = {c["code"]: c for c in api.ok(api.get("admin", "/api/v1/capabilities"))["items"]}
    # Units in three cities; a fourth (Athens) asks for help.
    units = {}
    for city, capability, callsign in [
        ("sofia", "FF_HELICOPTER", "SOF-H1"),
        ("belgrade", "FF_HELICOPTER", "BEG-H1"),
        ("zagreb", "FF_AMPHIBIAN", "ZAG-C1"),
        ("zagreb", "FF_PLANE_LIGHT", "ZAG-AT1"),
        ("belgrade", "WILDLAND_ENGINE", "BEG-W1"),
    ]:
        body = api.ok(
            api.post(city, "/api/v1/resources", {"capability": capability, "callsign": callsign}),
            201,
        )
        assert body["status"] == "available"
        units[callsign] = body
    athens_own = api.ok(
        api.post(
            "athens", "/api/v1/resources", {"capability": "FF_HELICOPTER", "callsign": "ATH-H1"}
        ),
        201,
    )
    incident = api.ok(
        api.post(
            "athens",
            "/api/v1/incidents",
            {
                "kind": "wildfire",
                "title": "Varympompi fire",
                "lat": 38.17,
                "lon": 23.78,
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
                    {"capability": "FF_HELICOPTER", "quantity": 1},
                    {"capability": "FF_PLANE_LIGHT", "quantity": 1},
                ],
            },
        ),
        201,
    )
    assert request["status"] == "open"
    heli_line, plane_line = request["items"]

    ranked = api.ok(api.get("athens", f"/api/v1/requests/{request['id']}/candidates"))
    by_item = {i["item_id"]: i["candidates"] for i in ranked["items"]}
    heli = by_item[heli_line["id"]]
    # Athens' own helicopter is never proposed to Athens.
    assert [c["resource_id"] for c in heli] == sorted(
        [units["SOF-H1"]["id"], units["BEG-H1"]["id"]],
        key=lambda rid: next(c["eta_hours"] for c in heli if c["resource_id"] == rid),
    )
    assert athens_own["id"] not in {c["resource_id"] for c in heli}
    for candidate in heli + by_item[plane_line["id"]]:
        unit = next(u for u in units.values() if u["id"] == candidate["resource_id"])
        km, eta = independent_eta(unit, incident, catalogue[unit["capability"]])
        assert candidate["distance_km"] == pytest.approx(km, abs=0.002)
        assert candidate["eta_hours"] == pytest.approx(eta, abs=0.0002)
    etas = [c["eta_hours"] for c in heli]
    assert etas == sorted(etas)
    # The plane line takes a scooper as a substitute (catalogue rule), ranked with the Air Tractor.
    assert {c["capability"] for c in by_item[plane_line["id"]]} == {
        "FF_PLANE_LIGHT",
        "FF_AMPHIBIAN",
    }

    best = heli[0]
    donor = best["city"]
    offer = api.ok(
        api.post(
            donor,
            "/api/v1/offers",
            {"request_item_id": heli_line["id"], "resource_id": best["resource_id"]},
        ),
        201,
    )
    assert offer["status"] == "pending"
    assert api.ok(api.get(donor, f"/api/v1/resources/{best['resource_id']}"))["status"] == "offered"

    accepted = api.ok(api.post("athens", f"/api/v1/offers/{offer['id']}/accept"))
    assert accepted["status"] == "accepted"
    deployment = accepted["deployment"]
    assert deployment["status"] == "mobilising"
    listed = api.ok(api.get("athens", "/api/v1/deployments"))["items"]
    assert {k: listed[0][k] for k in ("id", "resource_id", "request_item_id", "status")} == {
        "id": deployment["id"],
        "resource_id": best["resource_id"],
        "request_item_id": heli_line["id"],
        "status": "mobilising",
    }

    plane = by_item[plane_line["id"]][0]
    dispatched = api.ok(
        api.post(
            "coordinator",
            "/api/v1/dispatches",
            {"request_item_id": plane_line["id"], "resource_id": plane["resource_id"]},
        ),
        201,
    )
    assert dispatched["deployment"]["status"] == "mobilising"
    assert api.ok(api.get("athens", f"/api/v1/requests/{request['id']}"))["status"] == "filled"

    for dep, who in ((deployment, donor), (dispatched["deployment"], "athens")):
        for status in ("en_route", "on_scene", "released", "returned"):
            moved = api.ok(
                api.post(who, f"/api/v1/deployments/{dep['id']}/status", {"status": status})
            )
            assert moved["status"] == status
    unit_after = api.ok(api.get(donor, f"/api/v1/resources/{best['resource_id']}"))
    assert unit_after["status"] == "available"
    assert (unit_after["lat"], unit_after["lon"]) == (
        unit_after["home_lat"],
        unit_after["home_lon"],
    )
    final = api.ok(api.get("athens", f"/api/v1/requests/{request['id']}"))
    assert final["status"] == "closed"
    assert [i["status"] for i in final["items"]] == ["closed", "closed"]
    assert (
        final["items"][0]["accepted"],
        final["items"][0]["arrived"],
        final["items"][0]["returned"],
    ) == (1, 1, 1)

    events = api.ok(api.get("observer", "/api/v1/events", params={"limit": 1000}))["items"]
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "gap-free and strictly increasing"
    flow = [
        (e["type"], e["payload"].get("status"))
        for e in events
        if e["type"].startswith(("request.", "offer.", "deployment."))
        or e["type"] == "incident.created"
    ]
    assert flow[:4] == [
        ("incident.created", None),
        ("request.created", "open"),
        ("offer.created", "pending"),
        ("offer.accepted", "accepted"),
    ]
    statuses = [s for t, s in flow if t == "deployment.status_changed"]
    assert statuses == ["en_route", "on_scene", "released", "returned"] * 2
    unit_history = [
        e["payload"]["status"]
        for e in events
        if e["type"] == "resource.status_changed" and e["entity_id"] == str(best["resource_id"])
    ]
    assert unit_history == [
        "offered",
        "mobilising",
        "en_route",
        "on_scene",
        "returning",
        "available",
    ]
    # Every dispatch step is attributable (only the start-up admin user has no actor).
    assert all(e["actor"] and e["created_at"] for e in events if e["type"] != "user.created")
