"""Mass assignment: fields a client must not set are refused by every write route with 422,
and nothing is stored; where `city` is a real field, an operator naming another city gets 403."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute

from tests.api.test_authz import DONOR, OTHER, OWNER, SETUPS, World
from tests.api.test_authz import world as world  # noqa: F401  (the module fixture)

HOSTILE: dict[str, Any] = {
    "city": OTHER,
    "status": "deployed",
    "id": 999_999,
    "created_by": 1,
    "version": 7,
}


def write_routes(app: Any) -> Iterator[tuple[str, str, set[str]]]:
    """(method, path, the body model's fields) for every route that takes a JSON body."""

    def walk(routes: list[Any], prefix: str) -> Iterator[tuple[str, str, set[str]]]:
        for route in routes:
            if hasattr(route, "include_context"):
                context = route.include_context
                yield from walk(context.included_router.routes, prefix + context.prefix)
            elif isinstance(route, APIRoute) and route.dependant.body_params:
                model = route.dependant.body_params[0].field_info.annotation
                fields = set(getattr(model, "model_fields", {}))
                for method in route.methods:
                    yield method, prefix + route.path, fields

    yield from walk(app.routes, "")


def cases(world: World) -> list[tuple[str, str, str]]:
    return [
        (method, path, field)
        for method, path, fields in write_routes(world.api.client.app)
        for field in HOSTILE
        if field not in fields
    ]


def last_seq(world: World) -> int:
    return int(world.api.ok(world.api.get("admin", "/api/v1/events"))["last_seq"])


def test_every_write_route_refuses_fields_it_does_not_own(world: World) -> None:
    checked = cases(world)
    assert len({(m, p) for m, p, _ in checked}) >= 10  # the routes were found
    for method, route_path, field in checked:
        setup = SETUPS.get((method, route_path))
        if setup is not None:
            path, body = setup(world, "admin")
        else:  # a route without a setup yet: any id will do, the body fails first
            path, body = re.sub(r"\{[^}]+\}", "1", route_path), {}
        before = last_seq(world)
        response = world.api.call(
            "admin", method, path, json={**(body or {}), field: HOSTILE[field]}
        )
        assert response.status_code == 422, (method, path, field, response.text)
        errors = response.json()["detail"]
        assert any(e["type"] == "extra_forbidden" and e["loc"][-1] == field for e in errors), (
            method,
            path,
            field,
            errors,
        )
        assert last_seq(world) == before, (method, path, field)


def test_status_and_ids_cannot_be_set_on_creation(world: World) -> None:
    """The same refusal seen from the stored side: the unit is not created at all."""
    callsign = world.callsign()
    body = {"city": DONOR, "capability": "AMBULANCE", "callsign": callsign}
    for field in ("status", "id", "created_by", "version"):
        response = world.api.post("admin", "/api/v1/resources", {**body, field: HOSTILE[field]})
        assert response.status_code == 422
    listed = world.api.ok(
        world.api.get("admin", "/api/v1/resources", params={"city": DONOR, "limit": 1000})
    )
    assert callsign not in {u["callsign"] for u in listed["items"]}
    created = world.api.ok(world.api.post("admin", "/api/v1/resources", body), 201)
    assert created["status"] == "available"
    assert created["id"] != HOSTILE["id"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/resources", {"capability": "AMBULANCE", "callsign": "FOREIGN-1"}),
        (
            "/api/v1/resources/bulk",
            {"capability": "AMBULANCE", "quantity": 2, "callsign_prefix": "FOREIGN-B"},
        ),
        (
            "/api/v1/incidents",
            {"kind": "flood", "title": "x", "lat": 38.0, "lon": 23.7, "severity": "low"},
        ),
    ],
)
def test_an_operator_naming_another_city_is_forbidden(
    world: World, path: str, body: dict[str, Any]
) -> None:
    before = last_seq(world)
    response = world.api.post(OTHER, path, {**body, "city": OWNER})
    assert response.status_code == 403, response.text
    assert response.json()["field"] == "city"
    assert last_seq(world) == before


def test_an_operator_cannot_post_a_request_for_another_city(world: World) -> None:
    incident = world.incident()  # OWNER's
    before = last_seq(world)
    body = {
        "city": OWNER,
        "incident_id": incident["id"],
        "items": [{"capability": "AMBULANCE", "quantity": 1}],
    }
    response = world.api.post(OTHER, "/api/v1/requests", body)
    assert response.status_code == 403, response.text
    assert last_seq(world) == before
