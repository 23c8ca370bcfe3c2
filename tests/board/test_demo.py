"""Demo data: only where allowed, once, and all of it exercise data."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from config.settings import Settings
from server.app import create_app
from tests.conftest import ADMIN_TOKEN


def count_demo_units(client: TestClient) -> int:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    units = client.get("/api/v1/resources", params={"limit": 500}, headers=headers).json()
    return sum(1 for u in units["items"] if u["callsign"].startswith("DEMO-"))


def run_once(settings: Settings) -> tuple[int, dict]:
    with TestClient(create_app(settings, prepare=False)) as client:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        requests = client.get("/api/v1/requests", headers=headers).json()["items"]
        return count_demo_units(client), {"requests": requests}


def test_the_embedded_default_loads_the_demo_once(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url, redis_url=None, admin_token=ADMIN_TOKEN)
    assert settings.demo is None
    first, seen = run_once(settings)
    again, _ = run_once(settings)  # a restart does not duplicate it
    assert first == again > 100
    [request] = seen["requests"]
    assert request["exercise"] is True
    assert request["status"] in ("open", "partially_filled")


@pytest.mark.parametrize(("demo", "loads"), [(None, False), (False, False), (True, True)])
def test_elsewhere_only_b40_demo_1_loads_it(pg_url: str, demo: bool | None, loads: bool) -> None:
    settings = Settings(database_url=pg_url, redis_url=None, admin_token=ADMIN_TOKEN, demo=demo)
    units, _ = run_once(settings)
    assert (units > 0) is loads


def test_b40_demo_0_turns_it_off_even_on_the_embedded_default(sqlite_url: str) -> None:
    settings = Settings(
        database_url=sqlite_url, redis_url=None, admin_token=ADMIN_TOKEN, demo=False
    )
    assert run_once(settings)[0] == 0


def test_b40_demo_env_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("B40_DEMO", "0")
    assert Settings().demo_enabled is False
    monkeypatch.setenv("B40_DEMO", "1")
    monkeypatch.setenv("B40_DATABASE_URL", "postgresql://x@127.0.0.1/y")
    assert Settings().demo_enabled is True
