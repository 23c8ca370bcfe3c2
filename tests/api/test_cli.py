"""The `b40` command: migrations, refusal on an un-migrated database, users, the embedded default."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import PG_ADMIN_URL, ServerProcess, _pg_url


def b40(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


@pytest.fixture
def empty_pg() -> Iterator[str]:
    name = f"b40_empty_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield _pg_url(name)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_postgres_refuses_to_serve_unmigrated_then_upgrade_and_users(
    empty_pg: str, server_factory: type[ServerProcess]
) -> None:
    env = {"B40_DATABASE_URL": empty_pg, "B40_DEMO": "0"}
    refused = b40("serve", "--port", "1", env=env)
    assert refused.returncode == 2
    assert "b40 db upgrade" in refused.stderr
    upgraded = b40("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    added = b40(
        "user", "add", "--name", "Ops Sofia", "--role", "city_operator", "--city", "sofia", env=env
    )
    assert added.returncode == 0, added.stderr
    token = next(
        line.split(": ", 1)[1] for line in added.stdout.splitlines() if line.startswith("token: ")
    )
    bad = b40("user", "add", "--name", "X", "--role", "city_operator", env=env)
    assert bad.returncode == 2
    assert "city" in bad.stderr
    server = server_factory(env).start()
    me = httpx.get(f"{server.url}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json() == {
        "id": me.json()["id"],
        "name": "Ops Sofia",
        "role": "city_operator",
        "city": "sofia",
    }
    assert httpx.get(f"{server.url}/readyz").json()["ready"] is True


def test_embedded_default_migrates_on_start_and_lists_the_cities(
    tmp_path: Path, server_factory: type[ServerProcess]
) -> None:
    env = {
        "B40_DATABASE_URL": f"sqlite:///{tmp_path}/fresh.db",
        "B40_ADMIN_TOKEN": "newcomer",
        "B40_DEMO": "0",
    }
    server = server_factory(env).start()
    cities = httpx.get(
        f"{server.url}/api/v1/cities", headers={"Authorization": "Bearer newcomer"}
    ).json()
    assert cities["total"] == 60
    assert {"slug", "name", "country", "lat", "lon"} <= set(cities["items"][0])
    assert "istanbul" in {c["slug"] for c in cities["items"]}
    capabilities = httpx.get(
        f"{server.url}/api/v1/capabilities", headers={"Authorization": "Bearer newcomer"}
    ).json()
    husar = next(c for c in capabilities["items"] if c["code"] == "HUSAR")
    assert husar["travel"] == "air"
    assert husar["readiness_hours"] == 12
    musar = next(c for c in capabilities["items"] if c["code"] == "MUSAR")
    assert "HUSAR" in musar["substitutes"]
    assert all(rule["reason"] for rule in capabilities["substitution_rules"])
    assert httpx.get(f"{server.url}/api/v1/cities").status_code == 401


def test_seed_is_repeatable(empty_pg: str) -> None:
    env = {"B40_DATABASE_URL": empty_pg}
    assert b40("db", "upgrade", env=env).returncode == 0
    assert b40("seed", env=env).returncode == 0
    assert b40("seed", env=env).returncode == 0
    with psycopg.connect(empty_pg) as conn:
        count = conn.execute("SELECT count(*) FROM cities").fetchone()
    assert count == (60,)
