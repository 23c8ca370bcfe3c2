"""Bad input gets a 4xx naming the field and the reason; never a 500, never a partial write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.factories import Api


def incident(api: Api, city: str = "athens") -> dict[str, Any]:
    body = {"kind": "earthquake", "title": "quake", "lat": 38.0, "lon": 23.7, "severity": "high"}
    return api.ok(api.post(city, "/api/v1/incidents", body), 201)


def field_named(response: Any) -> str:
    """The field a 4xx names: ours ({'field'}) or FastAPI's validation list ({'detail': [{'loc'}]})."""
    body = response.json()
    if "field" in body:
        return str(body["field"])
    return ".".join(str(part) for part in body["detail"][0]["loc"] if part != "body")


def last_seq(api: Api) -> int:
    return int(api.ok(api.get("observer", "/api/v1/events", params={"limit": 1}))["last_seq"])


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/api/v1/resources", {"capability": "NOPE", "callsign": "X1"}, 422, "capability"),
        ("/api/v1/resources", {"capability": "nope lower", "callsign": "X1"}, 422, "capability"),
        (
            "/api/v1/resources",
            {"city": "atlantis", "capability": "AMBULANCE", "callsign": "X1"},
            403,
            "city",
        ),
        (
            "/api/v1/resources",
            {"capability": "AMBULANCE", "callsign": "X1", "lat": 91, "lon": 20},
            422,
            "lat",
        ),
        (
            "/api/v1/resources",
            {"capability": "AMBULANCE", "callsign": "X1", "lat": 40, "lon": -181},
            422,
            "lon",
        ),
        ("/api/v1/resources", {"capability": "AMBULANCE", "callsign": "X1", "lat": 40}, 422, "lon"),
        (
            "/api/v1/resources",
            {"capability": "AMBULANCE", "callsign": "X1", "status": "available"},
            422,
            "status",
        ),
        ("/api/v1/resources", {"capability": "AMBULANCE", "callsign": "X1", "id": 5}, 422, "id"),
        ("/api/v1/resources", {"capability": "AMBULANCE"}, 422, "callsign"),
        (
            "/api/v1/resources",
            {"capability": "AMBULANCE", "callsign": "X1", "readiness_hours": -1},
            422,
            "readiness_hours",
        ),
        (
            "/api/v1/resources/bulk",
            {"capability": "AMBULANCE", "quantity": 0, "callsign_prefix": "A"},
            422,
            "quantity",
        ),
        (
            "/api/v1/resources/bulk",
            {"capability": "AMBULANCE", "quantity": -3, "callsign_prefix": "A"},
            422,
            "quantity",
        ),
        (
            "/api/v1/incidents",
            {"kind": "meteor", "title": "t", "lat": 1, "lon": 1, "severity": "low"},
            422,
            "kind",
        ),
        (
            "/api/v1/incidents",
            {"kind": "flood", "title": "t", "lat": 1, "lon": 1, "severity": "apocalyptic"},
            422,
            "severity",
        ),
        (
            "/api/v1/incidents",
            {"kind": "flood", "title": "t", "lat": -95, "lon": 1, "severity": "low"},
            422,
            "lat",
        ),
        (
            "/api/v1/incidents",
            {"kind": "flood", "title": "", "lat": 1, "lon": 1, "severity": "low"},
            422,
            "title",
        ),
        (
            "/api/v1/incidents",
            {"kind": "flood", "title": "t", "lat": 1, "lon": 1, "severity": "low", "created_by": 1},
            422,
            "created_by",
        ),
    ],
)
def test_bad_bodies_name_the_field(
    api: Api, path: str, body: dict[str, Any], status: int, field: str
) -> None:
    before = last_seq(api)
    response = api.post("athens", path, body)
    assert response.status_code == status, response.text
    assert field_named(response).startswith(field)
    assert last_seq(api) == before, "a refused request writes nothing"


def test_bad_request_lines_name_the_line_and_write_nothing(api: Api) -> None:
    incident_id = incident(api)["id"]
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    naive = datetime.now().replace(microsecond=0).isoformat()
    good = {"capability": "AMBULANCE", "quantity": 1}
    cases = [
        ([good, {"capability": "UNICORN", "quantity": 1}], "items.1.capability"),
        ([good, {"capability": "AMBULANCE", "quantity": 0}], "items.1.quantity"),
        ([{"capability": "AMBULANCE", "quantity": 1, "needed_by": past}], "items.0.needed_by"),
        ([{"capability": "AMBULANCE", "quantity": 1, "needed_by": naive}], "items.0.needed_by"),
        (
            [{"capability": "AMBULANCE", "quantity": 1, "substitutes": ["NOPE"]}],
            "items.0.substitutes",
        ),
        ([], "items"),
    ]
    before = api.ok(api.get("observer", "/api/v1/requests"))["total"]
    for items, field in cases:
        response = api.post(
            "athens", "/api/v1/requests", {"incident_id": incident_id, "items": items}
        )
        assert response.status_code == 422, response.text
        assert field_named(response).startswith(field), (field, response.json())
    assert api.ok(api.get("observer", "/api/v1/requests"))["total"] == before
    other = incident(api, "sofia")["id"]
    response = api.post("athens", "/api/v1/requests", {"incident_id": other, "items": [good]})
    assert response.status_code == 422
    assert field_named(response) == "incident_id"
    response = api.post("athens", "/api/v1/requests", {"incident_id": 999_999, "items": [good]})
    assert response.status_code == 404
    assert field_named(response) == "incident_id"


def test_malformed_json_and_oversized_bodies(api: Api) -> None:
    response = api.call(
        "athens",
        "POST",
        "/api/v1/incidents",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    huge = b'{"title": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = api.call(
        "athens",
        "POST",
        "/api/v1/incidents",
        content=huge,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["field"] == "body"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/resources/0",
        "/api/v1/resources/99999999999999999999",
        "/api/v1/requests/abc",
        "/api/v1/events?after=-1",
        "/api/v1/events?limit=0",
        "/api/v1/resources?status=flying",
        "/api/v1/requests/1/candidates?limit=100000",
    ],
)
def test_bad_paths_and_queries_are_4xx(api: Api, path: str) -> None:
    response = api.get("observer", path)
    assert 400 <= response.status_code < 500, response.text


def test_conflicts_explain_themselves(api: Api) -> None:
    unit = api.ok(
        api.post("sofia", "/api/v1/resources", {"capability": "AMBULANCE", "callsign": "SOF-A1"}),
        201,
    )
    again = api.post(
        "sofia", "/api/v1/resources", {"capability": "AMBULANCE", "callsign": "SOF-A1"}
    )
    assert again.status_code == 409
    assert again.json()["field"] == "callsign"
    bad = api.post("sofia", f"/api/v1/resources/{unit['id']}/status", {"status": "on_scene"})
    assert bad.status_code == 409
    assert bad.json()["allowed"] == ["out_of_service"]
    assert "out_of_service" in bad.json()["detail"]
    own = incident(api, "sofia")
    request = api.ok(
        api.post(
            "sofia",
            "/api/v1/requests",
            {"incident_id": own["id"], "items": [{"capability": "AMBULANCE", "quantity": 1}]},
        ),
        201,
    )
    response = api.post(
        "sofia",
        "/api/v1/offers",
        {"request_item_id": request["items"][0]["id"], "resource_id": unit["id"]},
    )
    assert response.status_code == 422
    assert "itself" in response.json()["detail"]


def test_reserves_hold_units_back_unless_a_coordinator_overrides(api: Api) -> None:
    units = api.ok(
        api.post(
            "sofia",
            "/api/v1/resources/bulk",
            {"capability": "FF_HELICOPTER", "quantity": 3, "callsign_prefix": "SOF-H"},
        ),
        201,
    )["items"]
    assert [u["callsign"] for u in units] == ["SOF-H-01", "SOF-H-02", "SOF-H-03"]
    api.ok(api.put("sofia", "/api/v1/cities/sofia/reserves/FF_HELICOPTER", {"minimum": 2}))
    request = api.ok(
        api.post(
            "athens",
            "/api/v1/requests",
            {
                "incident_id": incident(api)["id"],
                "items": [{"capability": "FF_HELICOPTER", "quantity": 3}],
            },
        ),
        201,
    )
    item = request["items"][0]["id"]
    ranked = api.ok(api.get("athens", f"/api/v1/requests/{request['id']}/candidates"))["items"][0][
        "candidates"
    ]
    assert len(ranked) == 1, "3 available, reserve 2: one candidate"
    first = api.post(
        "sofia",
        "/api/v1/offers",
        {"request_item_id": item, "resource_id": ranked[0]["resource_id"]},
    )
    assert first.status_code == 201
    others = [u["id"] for u in units if u["id"] != ranked[0]["resource_id"]]
    refused = api.post(
        "sofia", "/api/v1/offers", {"request_item_id": item, "resource_id": others[0]}
    )
    assert refused.status_code == 409
    assert refused.json()["reserve"] == 2
    not_allowed = api.post(
        "sofia",
        "/api/v1/offers",
        {"request_item_id": item, "resource_id": others[0], "override_reserve": True},
    )
    assert not_allowed.status_code == 403
    overridden = api.ok(
        api.post(
            "coordinator",
            "/api/v1/offers",
            {"request_item_id": item, "resource_id": others[0], "override_reserve": True},
        ),
        201,
    )
    assert overridden["reserve_override"] is True
    events = api.ok(api.get("observer", "/api/v1/events", params={"limit": 1000}))["items"]
    recorded = [
        e for e in events if e["type"] == "offer.created" and e["payload"]["id"] == overridden["id"]
    ]
    assert recorded[0]["payload"]["reserve_override"] is True
    assert recorded[0]["actor"]["name"] == "coordinator"
