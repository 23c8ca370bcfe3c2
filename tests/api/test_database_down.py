"""The database goes away mid-test: 503 with Retry-After (never a 500), readiness false, and
service again once it is back. Only on a PostgreSQL database this test created."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import PG_ADMIN_URL, _pg_url
from tests.factories import Api, make_api

INCIDENT = {
    "city": "athens",
    "kind": "flood",
    "title": "x",
    "lat": 38.0,
    "lon": 23.7,
    "severity": "low",
}


@pytest.fixture
def own_database(pg_template: str) -> Iterator[str]:
    name = f"b40_down_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield name
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def admin_sql(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def cut_off(name: str) -> None:
    """Refuse new connections to our database and terminate the ones the app holds."""
    admin_sql(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
    admin_sql(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' "
        "AND pid <> pg_backend_pid()"
    )


def assert_unavailable(response: object) -> None:
    assert response.status_code == 503, response.text  # type: ignore[attr-defined]
    assert int(response.headers["retry-after"]) >= 1  # type: ignore[attr-defined]
    assert response.json()["code"] == "unavailable"  # type: ignore[attr-defined]


def calls(api: Api) -> list[tuple[str, str, str, dict[str, object] | None]]:
    return [
        ("unseen", "GET", "/api/v1/users/me", None),  # fails in the auth dependency
        ("coordinator", "GET", "/api/v1/incidents", None),  # and in the read
        ("coordinator", "POST", "/api/v1/incidents", INCIDENT),  # and in the unit of work
        ("admin", "POST", "/api/v1/users", {"name": "x", "role": "observer"}),
        ("coordinator", "GET", "/api/v1/audit/export", None),
    ]


def test_terminated_and_refused_connections_map_to_503(own_database: str) -> None:
    api, client = make_api(_pg_url(own_database))
    with client:
        api.user("coordinator", "coordinator")
        api.user("unseen", "observer")  # a token this process has not authenticated yet
        api.ok(api.post("coordinator", "/api/v1/incidents", INCIDENT), 201)
        assert api.get("anonymous", "/readyz").json()["ready"] is True

        cut_off(own_database)
        for who, method, path, body in calls(api):
            assert_unavailable(api.call(who, method, path, json=body))
        # A token seen lately is known from memory (services/credentials.py): who it is can be
        # answered; everything that reads or writes data is 503 above.
        assert api.ok(api.get("coordinator", "/api/v1/users/me"))["name"] == "coordinator"
        ready = api.get("anonymous", "/readyz")
        assert ready.status_code == 503
        assert ready.json()["ready"] is False
        assert ready.json()["checks"]["database"].startswith("down")
        assert api.get("anonymous", "/healthz").status_code == 200  # alive, not ready

        admin_sql(f'ALTER DATABASE "{own_database}" WITH ALLOW_CONNECTIONS true')
        assert api.get("anonymous", "/readyz").json()["ready"] is True
        api.ok(api.post("coordinator", "/api/v1/incidents", INCIDENT), 201)
        # Nothing half-written while it was down: two incidents, each with its event.
        incidents = api.ok(api.get("coordinator", "/api/v1/incidents"))["items"]
        assert len(incidents) == 2


def test_a_dropped_database_maps_to_503(own_database: str) -> None:
    api, client = make_api(_pg_url(own_database))
    with client:
        api.user("coordinator", "coordinator")
        api.user("unseen", "observer")
        admin_sql(f'DROP DATABASE "{own_database}" WITH (FORCE)')
        for who, method, path, body in calls(api):
            assert_unavailable(api.call(who, method, path, json=body))
        assert api.get("anonymous", "/readyz").json()["ready"] is False
