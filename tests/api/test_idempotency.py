"""Idempotency-Key: a retry returns the first response and creates nothing more."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import ServerProcess
from tests.factories import Api

BODY = {"capability": "AMBULANCE", "callsign": "IDEM-1"}


def test_retry_with_the_same_key_replays_the_first_answer(api: Api) -> None:
    key = {"Idempotency-Key": "retry-42"}
    first = api.post("sofia", "/api/v1/resources", BODY, headers=key)
    second = api.post("sofia", "/api/v1/resources", BODY, headers=key)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert api.ok(api.get("observer", "/api/v1/resources", params={"city": "sofia"}))["total"] == 1
    created = [
        e
        for e in api.ok(api.get("observer", "/api/v1/events", params={"limit": 1000}))["items"]
        if e["type"] == "resource.created"
    ]
    assert len(created) == 1


def test_same_key_with_another_body_is_refused(api: Api) -> None:
    key = {"Idempotency-Key": "k-1"}
    api.ok(api.post("sofia", "/api/v1/resources", BODY, headers=key), 201)
    response = api.post("sofia", "/api/v1/resources", {**BODY, "callsign": "IDEM-2"}, headers=key)
    assert response.status_code == 422
    assert response.json()["field"] == "Idempotency-Key"


def test_keys_belong_to_their_user(api: Api) -> None:
    key = {"Idempotency-Key": "shared-name"}
    api.ok(api.post("sofia", "/api/v1/resources", BODY, headers=key), 201)
    mine = api.post("belgrade", "/api/v1/resources", {**BODY, "callsign": "IDEM-B"}, headers=key)
    assert mine.status_code == 201
    assert mine.json()["city"] == "belgrade"


def test_every_creating_endpoint_honours_the_key(api: Api) -> None:
    incident_body = {
        "kind": "flood",
        "title": "river",
        "lat": 44.8,
        "lon": 20.4,
        "severity": "high",
    }
    incident = api.post(
        "athens", "/api/v1/incidents", incident_body, headers={"Idempotency-Key": "i"}
    )
    assert (
        api.post(
            "athens", "/api/v1/incidents", incident_body, headers={"Idempotency-Key": "i"}
        ).json()
        == incident.json()
    )
    request_body = {
        "incident_id": incident.json()["id"],
        "items": [{"capability": "AMBULANCE", "quantity": 1}],
    }
    request = api.post("athens", "/api/v1/requests", request_body, headers={"Idempotency-Key": "r"})
    assert (
        api.post(
            "athens", "/api/v1/requests", request_body, headers={"Idempotency-Key": "r"}
        ).json()
        == request.json()
    )
    unit = api.ok(api.post("sofia", "/api/v1/resources", BODY), 201)
    offer_body = {"request_item_id": request.json()["items"][0]["id"], "resource_id": unit["id"]}
    offer = api.post("sofia", "/api/v1/offers", offer_body, headers={"Idempotency-Key": "o"})
    replay = api.post("sofia", "/api/v1/offers", offer_body, headers={"Idempotency-Key": "o"})
    assert offer.status_code == replay.status_code == 201
    assert replay.json() == offer.json()
    assert api.ok(api.get("observer", "/api/v1/offers"))["total"] == 1
    assert api.ok(api.get("observer", "/api/v1/incidents"))["total"] == 1


async def test_concurrent_retries_create_exactly_once(
    pg_url: str, server_factory: type[ServerProcess]
) -> None:
    server = server_factory(
        {"B40_DATABASE_URL": pg_url, "B40_ADMIN_TOKEN": "idem-admin", "B40_DEMO": "0"}
    ).start()
    admin = {"Authorization": "Bearer idem-admin"}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        headers = {**admin, "Idempotency-Key": "storm"}
        body = {"city": "sofia", "capability": "AMBULANCE", "callsign": "STORM-1"}
        responses = await asyncio.gather(
            *[client.post("/api/v1/resources", json=body, headers=headers) for _ in range(20)]
        )
        assert {r.status_code for r in responses} == {201}
        assert len({r.json()["id"] for r in responses}) == 1
        listed = (
            await client.get("/api/v1/resources", params={"city": "sofia"}, headers=admin)
        ).json()
        assert listed["total"] == 1
