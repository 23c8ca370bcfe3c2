"""Races through a real server process: a unit is never offered or deployed twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from config.settings import Settings
from tests.conftest import ServerProcess
from tests.factories import make_api

ADMIN = {"Authorization": "Bearer race-admin"}


async def setup_world(client: httpx.AsyncClient, donors: int, quantity: int) -> dict[str, Any]:
    async def user(name: str, role: str, city: str | None) -> dict[str, str]:
        body = {"name": name, "role": role, "city": city}
        response = await client.post("/api/v1/users", json=body, headers=ADMIN)
        assert response.status_code == 201, response.text
        return {"Authorization": f"Bearer {response.json()['token']}"}

    athens = await user("athens op", "city_operator", "athens")
    sofia = await user("sofia op", "city_operator", "sofia")
    units = []
    for i in range(donors):
        body = {"capability": "FF_HELICOPTER", "callsign": f"SOF-R{i}"}
        response = await client.post("/api/v1/resources", json=body, headers=sofia)
        assert response.status_code == 201, response.text
        units.append(response.json()["id"])
    incident = await client.post(
        "/api/v1/incidents",
        json={"kind": "wildfire", "title": "race", "lat": 38.1, "lon": 23.8, "severity": "high"},
        headers=athens,
    )
    request = await client.post(
        "/api/v1/requests",
        json={
            "incident_id": incident.json()["id"],
            "priority": "critical",
            "items": [{"capability": "FF_HELICOPTER", "quantity": quantity}],
        },
        headers=athens,
    )
    assert request.status_code == 201, request.text
    return {
        "athens": athens,
        "sofia": sofia,
        "units": units,
        "item": request.json()["items"][0]["id"],
    }


def active_per_unit(database_url: str) -> dict[str, int]:
    engine = create_engine(Settings(database_url=database_url).database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT resource_id, count(*) FROM deployments WHERE status <> 'returned' "
                "GROUP BY resource_id"
            )
        ).all()
        pending = connection.execute(
            text(
                "SELECT resource_id, count(*) FROM offers WHERE status = 'pending' GROUP BY resource_id"
            )
        ).all()
    engine.dispose()
    return {
        "max_active": max((r[1] for r in rows), default=0),
        "max_pending": max((r[1] for r in pending), default=0),
    }


@pytest.fixture(params=["postgres", "sqlite"])
def race_server(
    request: pytest.FixtureRequest, server_factory: type[ServerProcess]
) -> tuple[ServerProcess, str]:
    url = str(request.getfixturevalue("pg_url" if request.param == "postgres" else "sqlite_url"))
    server = server_factory(
        {"B40_DATABASE_URL": url, "B40_ADMIN_TOKEN": "race-admin", "B40_DEMO": "0"}
    ).start()
    return server, url


async def test_thirty_simultaneous_offers_and_accepts_of_one_unit(
    race_server: tuple[ServerProcess, str],
) -> None:
    server, url = race_server
    async with httpx.AsyncClient(
        base_url=server.url, timeout=60, limits=httpx.Limits(max_connections=64)
    ) as client:
        world = await setup_world(client, donors=1, quantity=30)
        unit = world["units"][0]
        offers = await asyncio.gather(
            *[
                client.post(
                    "/api/v1/offers",
                    json={"request_item_id": world["item"], "resource_id": unit},
                    headers=world["sofia"],
                )
                for _ in range(30)
            ]
        )
        codes = Counter(r.status_code for r in offers)
        assert codes == {201: 1, 409: 29}, [
            r.text for r in offers if r.status_code not in (201, 409)
        ]
        offer_id = next(r.json()["id"] for r in offers if r.status_code == 201)

        accepts = await asyncio.gather(
            *[
                client.post(f"/api/v1/offers/{offer_id}/accept", headers=world["athens"])
                for _ in range(30)
            ]
        )
        assert Counter(r.status_code for r in accepts) == {200: 1, 409: 29}
        for loser in (r for r in accepts if r.status_code == 409):
            assert loser.json()["detail"]
        deployments = (await client.get("/api/v1/deployments", headers=world["athens"])).json()[
            "items"
        ]
        assert [d["resource_id"] for d in deployments] == [unit]
    assert active_per_unit(url) == {"max_active": 1, "max_pending": 0}


async def test_accepts_racing_for_a_one_unit_line_fill_it_once(
    race_server: tuple[ServerProcess, str],
) -> None:
    server, url = race_server
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        world = await setup_world(client, donors=6, quantity=1)
        offer_ids = []
        for unit in world["units"]:
            body = {"request_item_id": world["item"], "resource_id": unit}
            response = await client.post("/api/v1/offers", json=body, headers=world["sofia"])
            assert response.status_code == 201, response.text
            offer_ids.append(response.json()["id"])
        accepts = await asyncio.gather(
            *[
                client.post(f"/api/v1/offers/{o}/accept", headers=world["athens"])
                for o in offer_ids
                for _ in range(5)
            ]
        )
        assert Counter(r.status_code for r in accepts) == {200: 1, 409: 29}
        request_items = (
            await client.get(
                "/api/v1/offers", params={"status": "accepted"}, headers=world["athens"]
            )
        ).json()
        assert request_items["total"] == 1
    assert active_per_unit(url)["max_active"] == 1


def test_database_refuses_a_second_live_offer_even_without_the_code(database_url: str) -> None:
    """The partial unique indexes are the last line of defence, independent of Python checks."""
    api, client = make_api(database_url)
    with client:
        api.user("athens", "city_operator", "athens")
        api.user("sofia", "city_operator", "sofia")
        unit = api.ok(
            api.post(
                "sofia", "/api/v1/resources", {"capability": "FF_HELICOPTER", "callsign": "S1"}
            ),
            201,
        )
        incident = api.ok(
            api.post(
                "athens",
                "/api/v1/incidents",
                {"kind": "flood", "title": "x", "lat": 38.0, "lon": 23.7, "severity": "low"},
            ),
            201,
        )
        request = api.ok(
            api.post(
                "athens",
                "/api/v1/requests",
                {
                    "incident_id": incident["id"],
                    "items": [{"capability": "FF_HELICOPTER", "quantity": 2}],
                },
            ),
            201,
        )
        item = request["items"][0]["id"]
        offer = api.ok(
            api.post(
                "sofia", "/api/v1/offers", {"request_item_id": item, "resource_id": unit["id"]}
            ),
            201,
        )
        api.ok(
            api.post(
                "coordinator" if "coordinator" in api.tokens else "athens",
                f"/api/v1/offers/{offer['id']}/accept",
            )
        )
    engine = create_engine(Settings(database_url=database_url).database_url)
    copy_offer = (
        "INSERT INTO offers (request_item_id, resource_id, donor_city, requesting_city, status, reserve_override, "
        "distance_km, eta_hours, created_at, created_by) SELECT request_item_id, resource_id, donor_city, "
        "requesting_city, 'pending', reserve_override, distance_km, eta_hours, created_at, created_by FROM offers"
    )
    with engine.connect() as connection:
        connection.execute(text(copy_offer))  # one pending copy: allowed
        with pytest.raises(IntegrityError):
            connection.execute(text(copy_offer))  # a second pending offer of the unit
    copy_deployment = (
        "INSERT INTO deployments (offer_id, resource_id, request_item_id, donor_city, requesting_city, status, "
        "created_at, updated_at, timeline) SELECT (SELECT max(id) FROM offers), resource_id, request_item_id, "
        "donor_city, requesting_city, 'en_route', created_at, updated_at, timeline FROM deployments"
    )
    with engine.connect() as connection:
        connection.execute(text(copy_offer.replace("'pending'", "'declined'")))
        with pytest.raises(IntegrityError):
            connection.execute(text(copy_deployment))  # a second active deployment
    engine.dispose()
