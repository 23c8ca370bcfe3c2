"""Authorisation matrix: every role and bad token against every route, own and other city."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount, WebSocketRoute

from tests.authz_policy import ALLOW, BAD_TOKENS, POLICY, PUBLIC, ROLES, WEBSOCKETS
from tests.factories import Api, Clock, make_api

OWNER, DONOR, OTHER = "athens", "sofia", "zagreb"


@dataclass
class World:
    api: Api
    clock: Clock
    counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def callsign(self) -> str:
        return f"AZ-{next(self.counter)}"

    def unit(self, city: str = DONOR) -> dict[str, Any]:
        body = {"city": city, "capability": "FF_HELICOPTER", "callsign": self.callsign()}
        return self.api.ok(self.api.post("admin", "/api/v1/resources", body), 201)

    def incident(self) -> dict[str, Any]:
        body = {
            "city": OWNER,
            "kind": "wildfire",
            "title": "t",
            "lat": 38.0,
            "lon": 23.7,
            "severity": "high",
        }
        return self.api.ok(self.api.post("admin", "/api/v1/incidents", body), 201)

    def request(self) -> dict[str, Any]:
        body = {
            "city": OWNER,
            "incident_id": self.incident()["id"],
            "items": [{"capability": "FF_HELICOPTER", "quantity": 3}],
        }
        return self.api.ok(self.api.post("admin", "/api/v1/requests", body), 201)

    def offer(self) -> dict[str, Any]:
        item = self.request()["items"][0]["id"]
        body = {"request_item_id": item, "resource_id": self.unit()["id"]}
        return self.api.ok(self.api.post("admin", "/api/v1/offers", body), 201)

    def plan(self) -> dict[str, Any]:
        body = {"request_ids": [self.request()["id"]]}
        return self.api.ok(self.api.post("admin", "/api/v1/allocations/plan", body))

    def offer_incident(self) -> int:
        """An incident of the owner city with a donor's offer on it (so two cities are involved)."""
        offer = self.offer()
        item = self.api.ok(self.api.get("admin", f"/api/v1/offers/{offer['id']}"))[
            "request_item_id"
        ]
        requests = self.api.ok(
            self.api.get("admin", "/api/v1/requests", params={"city": OWNER, "limit": 1000})
        )
        request = next(r for r in requests["items"] if any(i["id"] == item for i in r["items"]))
        return int(request["incident_id"])

    def officer(self) -> dict[str, Any]:
        body = {
            "city": OWNER,
            "name": f"officer {next(self.counter)}",
            "email": "duty@athens.example",
        }
        return self.api.ok(self.api.post("admin", "/api/v1/duty-officers", body), 201)

    def alert(self) -> dict[str, Any]:
        """A fresh alert to the owner city: an offer on its request alerts its duty officers."""
        if not self.api.ok(self.api.get("admin", "/api/v1/duty-officers", params={"city": OWNER}))[
            "items"
        ]:
            self.officer()
        seen = {
            a["id"]
            for a in self.api.ok(self.api.get("admin", "/api/v1/alerts", params={"limit": 1000}))[
                "items"
            ]
        }
        self.offer()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = self.api.ok(
                self.api.get("admin", "/api/v1/alerts", params={"city": OWNER, "limit": 1000})
            )["items"]
            fresh = [a for a in found if a["id"] not in seen]
            if fresh:
                return fresh[0]
            time.sleep(0.05)
        raise AssertionError("the alert planner produced no alert for a new offer")

    def deployment(self) -> dict[str, Any]:
        return self.api.ok(self.api.post("admin", f"/api/v1/offers/{self.offer()['id']}/accept"))[
            "deployment"
        ]


Call = tuple[str, dict[str, Any] | None]
# Route -> a function making a fresh object owned by the route's owner and returning (path, body).
SETUPS: dict[tuple[str, str], Callable[[World, str], Call]] = {
    ("GET", "/api/v1/cities"): lambda w, who: ("/api/v1/cities", None),
    ("GET", "/api/v1/cities/{slug}"): lambda w, who: (f"/api/v1/cities/{OWNER}", None),
    ("GET", "/api/v1/capabilities"): lambda w, who: ("/api/v1/capabilities", None),
    ("GET", "/api/v1/cities/{slug}/reserves"): lambda w, who: (
        f"/api/v1/cities/{OWNER}/reserves",
        None,
    ),
    ("PUT", "/api/v1/cities/{slug}/reserves/{capability}"): lambda w, who: (
        f"/api/v1/cities/{OWNER}/reserves/FF_HELICOPTER",
        {"minimum": 1},
    ),
    ("POST", "/api/v1/resources"): lambda w, who: (
        "/api/v1/resources",
        {"city": DONOR, "capability": "AMBULANCE", "callsign": w.callsign()},
    ),
    ("POST", "/api/v1/resources/bulk"): lambda w, who: (
        "/api/v1/resources/bulk",
        {"city": DONOR, "capability": "AMBULANCE", "quantity": 2, "callsign_prefix": w.callsign()},
    ),
    ("GET", "/api/v1/resources"): lambda w, who: ("/api/v1/resources", None),
    ("GET", "/api/v1/resources/{resource_id}"): lambda w, who: (
        f"/api/v1/resources/{w.unit()['id']}",
        None,
    ),
    ("POST", "/api/v1/resources/{resource_id}/status"): lambda w, who: (
        f"/api/v1/resources/{w.unit()['id']}/status",
        {"status": "out_of_service"},
    ),
    ("POST", "/api/v1/incidents"): lambda w, who: (
        "/api/v1/incidents",
        {"city": OWNER, "kind": "flood", "title": "x", "lat": 38.0, "lon": 23.7, "severity": "low"},
    ),
    ("GET", "/api/v1/incidents"): lambda w, who: ("/api/v1/incidents", None),
    ("GET", "/api/v1/incidents/{incident_id}"): lambda w, who: (
        f"/api/v1/incidents/{w.incident()['id']}",
        None,
    ),
    ("POST", "/api/v1/requests"): lambda w, who: (
        "/api/v1/requests",
        {
            "city": OWNER,
            "incident_id": w.incident()["id"],
            "items": [{"capability": "AMBULANCE", "quantity": 1}],
        },
    ),
    ("GET", "/api/v1/requests"): lambda w, who: ("/api/v1/requests", None),
    ("GET", "/api/v1/requests/{request_id}"): lambda w, who: (
        f"/api/v1/requests/{w.request()['id']}",
        None,
    ),
    ("POST", "/api/v1/requests/{request_id}/cancel"): lambda w, who: (
        f"/api/v1/requests/{w.request()['id']}/cancel",
        None,
    ),
    ("GET", "/api/v1/requests/{request_id}/candidates"): lambda w, who: (
        f"/api/v1/requests/{w.request()['id']}/candidates",
        None,
    ),
    ("POST", "/api/v1/offers"): lambda w, who: (
        "/api/v1/offers",
        {"request_item_id": w.request()["items"][0]["id"], "resource_id": w.unit()["id"]},
    ),
    ("GET", "/api/v1/offers"): lambda w, who: ("/api/v1/offers", None),
    ("GET", "/api/v1/offers/{offer_id}"): lambda w, who: (
        f"/api/v1/offers/{w.offer()['id']}",
        None,
    ),
    ("POST", "/api/v1/offers/{offer_id}/accept"): lambda w, who: (
        f"/api/v1/offers/{w.offer()['id']}/accept",
        None,
    ),
    ("POST", "/api/v1/offers/{offer_id}/decline"): lambda w, who: (
        f"/api/v1/offers/{w.offer()['id']}/decline",
        None,
    ),
    ("POST", "/api/v1/offers/{offer_id}/withdraw"): lambda w, who: (
        f"/api/v1/offers/{w.offer()['id']}/withdraw",
        None,
    ),
    ("POST", "/api/v1/dispatches"): lambda w, who: (
        "/api/v1/dispatches",
        {"request_item_id": w.request()["items"][0]["id"], "resource_id": w.unit()["id"]},
    ),
    ("GET", "/api/v1/offers/{offer_id}/cover"): lambda w, who: (
        f"/api/v1/offers/{w.offer()['id']}/cover",
        None,
    ),
    ("POST", "/api/v1/allocations/plan"): lambda w, who: (
        "/api/v1/allocations/plan",
        {"request_ids": [w.request()["id"]]},
    ),
    ("GET", "/api/v1/allocations/{plan_id}"): lambda w, who: (
        f"/api/v1/allocations/{w.plan()['id']}",
        None,
    ),
    ("POST", "/api/v1/allocations/{plan_id}/apply"): lambda w, who: (
        f"/api/v1/allocations/{w.plan()['id']}/apply",
        {"mode": "offers"},
    ),
    ("GET", "/api/v1/deployments"): lambda w, who: ("/api/v1/deployments", None),
    ("GET", "/api/v1/deployments/{deployment_id}"): lambda w, who: (
        f"/api/v1/deployments/{w.deployment()['id']}",
        None,
    ),
    ("POST", "/api/v1/deployments/{deployment_id}/status"): lambda w, who: (
        f"/api/v1/deployments/{w.deployment()['id']}/status",
        {"status": "en_route"},
    ),
    ("GET", "/api/v1/events"): lambda w, who: ("/api/v1/events", None),
    ("GET", "/api/v1/audit/export"): lambda w, who: ("/api/v1/audit/export", None),
    ("POST", "/api/v1/users"): lambda w, who: (
        "/api/v1/users",
        {"name": f"u{next(w.counter)}", "role": "observer"},
    ),
    ("GET", "/api/v1/users/me"): lambda w, who: ("/api/v1/users/me", None),
    ("POST", "/api/v1/duty-officers"): lambda w, who: (
        "/api/v1/duty-officers",
        {"city": OWNER, "name": f"officer {next(w.counter)}", "phone": "+306900000000"},
    ),
    ("GET", "/api/v1/duty-officers"): lambda w, who: ("/api/v1/duty-officers", None),
    ("POST", "/api/v1/duty-officers/{officer_id}/active"): lambda w, who: (
        f"/api/v1/duty-officers/{w.officer()['id']}/active?active=false",
        None,
    ),
    ("GET", "/api/v1/alerts"): lambda w, who: ("/api/v1/alerts", None),
    ("GET", "/api/v1/alerts/{alert_id}"): lambda w, who: (
        f"/api/v1/alerts/{w.alert()['id']}",
        None,
    ),
    ("GET", "/api/v1/alerts/{alert_id}/cap"): lambda w, who: (
        f"/api/v1/alerts/{w.alert()['id']}/cap",
        None,
    ),
    ("POST", "/api/v1/alerts/{alert_id}/ack"): lambda w, who: (
        f"/api/v1/alerts/{w.alert()['id']}/ack",
        None,
    ),
    ("GET", "/api/v1/incidents/{incident_id}/report"): lambda w, who: (
        f"/api/v1/incidents/{w.offer_incident()}/report",
        None,
    ),
    ("POST", "/api/v1/users/{user_id}/revoke"): lambda w, who: (
        f"/api/v1/users/{w.api.ok(w.api.post('admin', '/api/v1/users', {'name': 'victim', 'role': 'observer'}), 201)['id']}/revoke",
        None,
    ),
}

# Whose operator is "own" for each route: the donor for a unit's or an offer's donor side.
DONOR_SIDE = {
    ("POST", "/api/v1/resources"),
    ("POST", "/api/v1/resources/bulk"),
    ("POST", "/api/v1/resources/{resource_id}/status"),
    ("POST", "/api/v1/offers"),
    ("POST", "/api/v1/offers/{offer_id}/withdraw"),
}


def app_routes(app: Any) -> set[tuple[str, str]]:
    """Every (method, path) the app serves, including routers included with a prefix."""
    found: set[tuple[str, str]] = set()

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            if isinstance(route, Mount):
                continue  # static files: public assets
            if isinstance(route, WebSocketRoute):
                found.add(("WS", prefix + route.path))
            elif hasattr(route, "include_context"):  # FastAPI's lazily included router
                context = route.include_context
                walk(context.included_router.routes, prefix + context.prefix)
            elif isinstance(route, APIRoute) or getattr(route, "methods", None):
                found.update((m, prefix + route.path) for m in route.methods if m != "HEAD")

    walk(app.routes, "")
    return found


@pytest.fixture(scope="module")
def world(pg_template: str) -> Iterator[World]:
    import uuid

    import psycopg

    from tests.conftest import PG_ADMIN_URL, _pg_url

    name = f"b40_authz_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    clock = Clock()
    api, client = make_api(_pg_url(name), clock=clock)
    with client:
        api.user("coordinator", "coordinator")
        api.user("observer", "observer")
        api.user("duty_officer", "duty_officer", OWNER)
        for city in (OWNER, DONOR, OTHER):
            api.user(city, "city_operator", city)
        api.user("temp", "coordinator", expires_at=clock.now + timedelta(minutes=5))
        revoked = api.ok(
            api.post("admin", "/api/v1/users", {"name": "gone", "role": "coordinator"}), 201
        )
        api.ok(api.post("admin", f"/api/v1/users/{revoked['id']}/revoke"))
        api.tokens |= {
            "expired": api.tokens["temp"],
            "revoked": revoked["token"],
            "unknown": "b40_" + "x" * 43,
            "tampered": api.tokens["coordinator"][:-1]
            + ("A" if api.tokens["coordinator"][-1] != "A" else "B"),
        }
        clock.now += timedelta(minutes=10)  # the expiring token is now past its time
        yield World(api=api, clock=clock)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def caller(route: tuple[str, str], identity: str) -> str:
    if identity == "own_operator":
        return DONOR if route in DONOR_SIDE else OWNER
    if identity == "other_operator":
        return OTHER
    return identity


@pytest.mark.parametrize("route", sorted(POLICY))
def test_every_role_gets_what_the_policy_says(world: World, route: tuple[str, str]) -> None:
    method, _ = route
    outcomes = {}
    for identity in ROLES:
        path, body = SETUPS[route](world, identity)
        response = world.api.call(caller(route, identity), method, path, json=body)
        outcomes[identity] = response.status_code
        expected = POLICY[route][identity]
        if expected == ALLOW:
            assert 200 <= response.status_code < 300, (
                identity,
                response.status_code,
                response.text,
            )
        else:
            assert response.status_code == 403, (identity, response.status_code, response.text)
            assert response.json()["detail"]
    for bad in BAD_TOKENS:
        path, body = SETUPS[route](world, "admin")
        response = world.api.call(bad, method, path, json=body)
        assert response.status_code == 401, (bad, response.status_code, response.text)
        assert response.headers.get("www-authenticate", "").lower().startswith("bearer")


def test_every_route_has_a_policy_row_and_a_setup(world: World) -> None:
    routes = app_routes(world.api.client.app)
    missing = routes - set(POLICY) - set(WEBSOCKETS) - PUBLIC
    assert not missing, f"routes without an authorisation policy row: {sorted(missing)}"
    assert set(POLICY) <= set(SETUPS), sorted(set(POLICY) - set(SETUPS))
    stale = (set(POLICY) | set(WEBSOCKETS)) - routes
    assert not stale, f"policy rows for routes that no longer exist: {sorted(stale)}"


@pytest.mark.parametrize("path", ["/healthz", "/", "/board", "/openapi.json"])
def test_public_routes_need_no_token(world: World, path: str) -> None:
    assert world.api.get("anonymous", path).status_code == 200


def test_cross_city_write_attempts_leave_no_trace(world: World) -> None:
    unit = world.unit()
    before = world.api.ok(world.api.get("observer", "/api/v1/events", params={"limit": 1}))[
        "last_seq"
    ]
    attempts = [
        ("POST", f"/api/v1/resources/{unit['id']}/status", {"status": "out_of_service"}),
        (
            "POST",
            "/api/v1/resources",
            {"city": DONOR, "capability": "AMBULANCE", "callsign": "SNEAKY"},
        ),
        ("PUT", f"/api/v1/cities/{DONOR}/reserves/AMBULANCE", {"minimum": 9}),
    ]
    for method, path, body in attempts:
        assert world.api.call(OTHER, method, path, json=body).status_code == 403
    since = world.api.ok(
        world.api.get("observer", "/api/v1/events", params={"after": before, "limit": 1000})
    )
    # Alert delivery may record its own events meanwhile; none may touch the donor's data.
    assert [e for e in since["items"] if e["entity"] in ("resource", "reserve")] == []
    assert (
        world.api.ok(world.api.get("observer", f"/api/v1/resources/{unit['id']}"))["status"]
        == "available"
    )


def test_board_stream_follows_the_policy(world: World) -> None:
    """Every role may watch the board; a missing or bad token is refused before any data."""
    from starlette.websockets import WebSocketDisconnect

    client = world.api.client
    for identity in ROLES:
        expected = WEBSOCKETS[("WS", "/ws/board")][identity]
        token = world.api.tokens[caller(("WS", "/ws/board"), identity)]
        assert expected == ALLOW
        with client.websocket_connect(f"/ws/board?token={token}") as socket:
            first = socket.receive_json()
            assert first["type"] == "snapshot", first
    for bad in BAD_TOKENS:
        path = "/ws/board" if bad == "anonymous" else f"/ws/board?token={world.api.tokens[bad]}"
        with pytest.raises(WebSocketDisconnect), client.websocket_connect(path) as socket:
            socket.receive_json()
