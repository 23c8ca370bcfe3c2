"""Every state change writes exactly one audit event: each use case's changed rows, compared
with the events it appended (and a refused call writes none). PostgreSQL and SQLite."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import text

from config.settings import Settings
from server.db.engine import make_engine
from tests.factories import Api

# Table -> the audit entity its rows are, and how an event names a row.
ENTITIES: dict[str, tuple[str, str]] = {
    "resources": ("resource", "id"),
    "offers": ("offer", "id"),
    "deployments": ("deployment", "id"),
    "aid_requests": ("request", "id"),
    "incidents": ("incident", "id"),
    "users": ("user", "id"),
    "reserves": ("reserve", "city || ':' || capability"),
}
# request_items are not audited on their own: their counters are derived and carried in the
# payload of the offer or deployment event that moved them.


class Ledger:
    """Snapshots of the audited tables, to see which rows a call changed."""

    def __init__(self, api: Api, database_url: str) -> None:
        self.api = api
        self.engine = make_engine(Settings(database_url=database_url).database_url)

    def rows(self) -> dict[tuple[str, str], tuple[Any, ...]]:
        found = {}
        with self.engine.connect() as connection:
            for table, (entity, key) in ENTITIES.items():
                for row in connection.execute(text(f"SELECT {key} AS k, * FROM {table}")):
                    found[(entity, str(row[0]))] = tuple(str(v) for v in row[1:])
        return found

    def last_seq(self) -> int:
        return int(self.api.ok(self.api.get("admin", "/api/v1/events"))["last_seq"])

    def call(self, who: str, method: str, path: str, body: Any = None) -> tuple[Any, list[Any]]:
        before, seq = self.rows(), self.last_seq()
        response = self.api.call(who, method, path, json=body)
        after = self.rows()
        events = self.api.ok(self.api.get("admin", "/api/v1/events", params={"after": seq}))[
            "items"
        ]
        changed = {k for k in after if before.get(k) != after[k]}
        named = Counter((e["entity"], e["entity_id"]) for e in events)
        assert set(named) == changed, (path, sorted(named), sorted(changed))
        assert all(n == 1 for n in named.values()), (path, named)
        if response.status_code >= 400:
            assert not events, (path, response.status_code, events)
        return response.json(), [e["type"] for e in events]


def test_every_use_case_writes_one_event_per_changed_row(api: Api, database_url: str) -> None:
    ledger = Ledger(api, database_url)
    call = ledger.call
    try:
        unit, types = call(
            "sofia", "POST", "/api/v1/resources", {"capability": "FF_HELICOPTER", "callsign": "H1"}
        )
        assert types == ["resource.created"]
        spare, _ = call(
            "sofia", "POST", "/api/v1/resources", {"capability": "FF_HELICOPTER", "callsign": "H2"}
        )
        _, types = call(
            "sofia",
            "POST",
            "/api/v1/resources/bulk",
            {"capability": "AMBULANCE", "quantity": 3, "callsign_prefix": "AMB"},
        )
        assert types == ["resource.created"] * 3
        _, types = call(
            "sofia", "POST", f"/api/v1/resources/{spare['id']}/status", {"status": "out_of_service"}
        )
        assert types == ["resource.status_changed"]
        _, types = call("sofia", "PUT", "/api/v1/cities/sofia/reserves/AMBULANCE", {"minimum": 1})
        assert types == ["city.reserve_set"]
        incident, types = call(
            "athens",
            "POST",
            "/api/v1/incidents",
            {"kind": "wildfire", "title": "t", "lat": 38.0, "lon": 23.7, "severity": "high"},
        )
        assert types == ["incident.created"]
        request, types = call(
            "athens",
            "POST",
            "/api/v1/requests",
            {
                "incident_id": incident["id"],
                "items": [{"capability": "FF_HELICOPTER", "quantity": 2}],
            },
        )
        assert types == ["request.created"]
        offer, types = call(
            "sofia",
            "POST",
            "/api/v1/offers",
            {"request_item_id": request["items"][0]["id"], "resource_id": unit["id"]},
        )
        assert sorted(types) == ["offer.created", "resource.status_changed"]
        accepted, types = call("athens", "POST", f"/api/v1/offers/{offer['id']}/accept")
        assert sorted(types) == ["deployment.created", "offer.accepted", "resource.status_changed"]
        deployment = accepted["deployment"]["id"]
        for status in ("en_route", "on_scene"):
            _, types = call(
                "athens", "POST", f"/api/v1/deployments/{deployment}/status", {"status": status}
            )
            assert sorted(types) == ["deployment.status_changed", "resource.status_changed"]
        # Refused calls change nothing and write nothing.
        _, types = call(
            "zagreb", "POST", f"/api/v1/resources/{unit['id']}/status", {"status": "out_of_service"}
        )
        assert types == []
        _, types = call(
            "athens", "POST", f"/api/v1/deployments/{deployment}/status", {"status": "returned"}
        )
        assert types == []
        _, types = call(
            "sofia", "POST", "/api/v1/resources", {"capability": "NOPE", "callsign": "X"}
        )
        assert types == []
        _, types = call("athens", "POST", f"/api/v1/requests/{request['id']}/cancel")
        assert "request.cancelled" in types
        user, types = call("admin", "POST", "/api/v1/users", {"name": "later", "role": "observer"})
        assert types == ["user.created"]
        _, types = call("admin", "POST", f"/api/v1/users/{user['id']}/revoke")
        assert types == ["user.revoked"]
        # Reads write nothing.
        for path in ("/api/v1/resources", "/api/v1/requests", "/api/v1/users/me"):
            _, types = call("admin", "GET", path)
            assert types == []
    finally:
        ledger.engine.dispose()
