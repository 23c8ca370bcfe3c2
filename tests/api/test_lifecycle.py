"""Offer and unit lifecycles beyond the happy path: decline, withdraw, cancel, out of service."""

from __future__ import annotations

from typing import Any

from tests.factories import Api


def post_request(api: Api, quantity: int = 1, exercise: bool = False) -> dict[str, Any]:
    incident = api.ok(
        api.post(
            "athens",
            "/api/v1/incidents",
            {
                "kind": "wildfire",
                "title": "fire",
                "lat": 38.1,
                "lon": 23.8,
                "severity": "high",
                "exercise": exercise,
            },
        ),
        201,
    )
    body = {
        "incident_id": incident["id"],
        "priority": "high",
        "items": [{"capability": "FF_HELICOPTER", "quantity": quantity}],
    }
    return api.ok(api.post("athens", "/api/v1/requests", body), 201)


def unit(api: Api, callsign: str, city: str = "sofia", **extra: Any) -> dict[str, Any]:
    return api.ok(
        api.post(
            city,
            "/api/v1/resources",
            {"capability": "FF_HELICOPTER", "callsign": callsign, **extra},
        ),
        201,
    )


def offer(api: Api, item: int, resource: int, who: str = "sofia") -> dict[str, Any]:
    return api.ok(
        api.post(who, "/api/v1/offers", {"request_item_id": item, "resource_id": resource}), 201
    )


def status_of(api: Api, resource: int) -> str:
    return str(api.ok(api.get("observer", f"/api/v1/resources/{resource}"))["status"])


def test_decline_and_withdraw_free_the_unit(api: Api) -> None:
    request = post_request(api)
    item = request["items"][0]["id"]
    a, b = unit(api, "S-1"), unit(api, "S-2")
    first = offer(api, item, a["id"])
    assert (
        api.ok(api.get("athens", f"/api/v1/requests/{request['id']}"))["items"][0]["offered"] == 1
    )
    assert api.post("sofia", f"/api/v1/offers/{first['id']}/decline").status_code == 403, (
        "only the requester declines"
    )
    assert (
        api.ok(api.post("athens", f"/api/v1/offers/{first['id']}/decline"))["status"] == "declined"
    )
    assert status_of(api, a["id"]) == "available"
    again = api.post("athens", f"/api/v1/offers/{first['id']}/accept")
    assert again.status_code == 409
    assert again.json()["allowed"] == []
    second = offer(api, item, b["id"])
    assert api.post("athens", f"/api/v1/offers/{second['id']}/withdraw").status_code == 403, (
        "only the donor withdraws"
    )
    assert (
        api.ok(api.post("sofia", f"/api/v1/offers/{second['id']}/withdraw"))["status"]
        == "withdrawn"
    )
    assert status_of(api, b["id"]) == "available"
    line = api.ok(api.get("athens", f"/api/v1/requests/{request['id']}"))["items"][0]
    assert (line["offered"], line["accepted"], line["status"]) == (0, 0, "open")


def test_cancelling_a_request_releases_pending_offers(api: Api) -> None:
    request = post_request(api, quantity=2)
    item = request["items"][0]["id"]
    a = unit(api, "S-1")
    offer(api, item, a["id"])
    cancelled = api.ok(api.post("athens", f"/api/v1/requests/{request['id']}/cancel"))
    assert cancelled["status"] == "cancelled"
    assert cancelled["items"][0]["status"] == "cancelled"
    assert status_of(api, a["id"]) == "available"
    assert api.post("athens", f"/api/v1/requests/{request['id']}/cancel").status_code == 409
    b = unit(api, "S-2")
    late = api.post("sofia", "/api/v1/offers", {"request_item_id": item, "resource_id": b["id"]})
    assert late.status_code == 409
    assert late.json()["line_status"] == "cancelled"


def test_a_filled_line_takes_no_more_units(api: Api) -> None:
    request = post_request(api, quantity=1)
    item = request["items"][0]["id"]
    a, b = unit(api, "S-1"), unit(api, "B-1", city="belgrade")
    first, second = offer(api, item, a["id"]), offer(api, item, b["id"], who="belgrade")
    api.ok(api.post("athens", f"/api/v1/offers/{first['id']}/accept"))
    refused = api.post("athens", f"/api/v1/offers/{second['id']}/accept")
    assert refused.status_code == 409
    assert refused.json()["line_status"] == "filled"
    assert (
        api.ok(api.post("athens", f"/api/v1/offers/{second['id']}/decline"))["status"] == "declined"
    )
    c = unit(api, "S-3")
    assert (
        api.post(
            "sofia", "/api/v1/offers", {"request_item_id": item, "resource_id": c["id"]}
        ).status_code
        == 409
    )


def test_out_of_service_and_back_by_hand_and_not_while_offered(api: Api) -> None:
    a = unit(api, "S-1")
    assert (
        api.ok(
            api.post("sofia", f"/api/v1/resources/{a['id']}/status", {"status": "out_of_service"})
        )["status"]
        == "out_of_service"
    )
    listed = api.ok(api.get("observer", "/api/v1/resources", params={"status": "out_of_service"}))
    assert [r["id"] for r in listed["items"]] == [a["id"]]
    request = post_request(api)
    refused = api.post(
        "sofia",
        "/api/v1/offers",
        {"request_item_id": request["items"][0]["id"], "resource_id": a["id"]},
    )
    assert refused.status_code == 409
    assert (
        api.ok(api.post("sofia", f"/api/v1/resources/{a['id']}/status", {"status": "available"}))[
            "status"
        ]
        == "available"
    )
    offer(api, request["items"][0]["id"], a["id"])
    busy = api.post("sofia", f"/api/v1/resources/{a['id']}/status", {"status": "out_of_service"})
    assert busy.status_code == 409
    assert busy.json()["current"] == "offered"
    events = api.ok(api.get("observer", "/api/v1/events", params={"limit": 1000}))["items"]
    changes = [e["payload"]["status"] for e in events if e["type"] == "resource.status_changed"]
    assert changes == ["out_of_service", "available", "offered"]
    assert all(
        e["payload"]["status_since"] for e in events if e["type"] == "resource.status_changed"
    )


def test_exercise_and_live_never_mix(api: Api) -> None:
    drill = post_request(api, exercise=True)
    assert drill["exercise"] is True
    live_unit = unit(api, "S-LIVE")
    drill_unit = unit(api, "S-DRILL", exercise=True)
    ranked = api.ok(api.get("athens", f"/api/v1/requests/{drill['id']}/candidates"))["items"][0][
        "candidates"
    ]
    assert [c["resource_id"] for c in ranked] == [drill_unit["id"]]
    mixed = api.post(
        "sofia",
        "/api/v1/offers",
        {"request_item_id": drill["items"][0]["id"], "resource_id": live_unit["id"]},
    )
    assert mixed.status_code == 422
    assert mixed.json()["field"] == "resource_id"
    live = post_request(api)
    ranked_live = api.ok(api.get("athens", f"/api/v1/requests/{live['id']}/candidates"))["items"][
        0
    ]["candidates"]
    assert [c["resource_id"] for c in ranked_live] == [live_unit["id"]]
    only_drills = api.ok(api.get("observer", "/api/v1/requests", params={"exercise": True}))
    assert [r["id"] for r in only_drills["items"]] == [drill["id"]]


def test_deployment_status_cannot_skip_and_lists_what_is_allowed(api: Api) -> None:
    request = post_request(api)
    a = unit(api, "S-1")
    accepted = api.ok(
        api.post(
            "athens",
            f"/api/v1/offers/{offer(api, request['items'][0]['id'], a['id'])['id']}/accept",
        )
    )
    deployment = accepted["deployment"]["id"]
    skip = api.post("sofia", f"/api/v1/deployments/{deployment}/status", {"status": "returned"})
    assert skip.status_code == 409
    assert skip.json()["allowed"] == ["en_route", "released"]
    assert (
        api.post(
            "belgrade", f"/api/v1/deployments/{deployment}/status", {"status": "en_route"}
        ).status_code
        == 403
    )
    recalled = api.ok(
        api.post("athens", f"/api/v1/deployments/{deployment}/status", {"status": "released"})
    )
    assert recalled["status"] == "released"
    assert status_of(api, a["id"]) == "returning"
    assert set(recalled["timeline"]) == {"mobilising", "released"}
