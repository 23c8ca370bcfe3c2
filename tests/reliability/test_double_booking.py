"""T8, double booking: 64 concurrent clients (direct dispatches, offers and accepts) and two
allocation processes (plan + apply) racing over 20 units and 300 requests, for randomised
rounds, on PostgreSQL and on SQLite, through two API processes: zero units with more than one
active deployment, zero lines over-filled, and no stranded capacity."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.history import booking_violations
from tests.reliability.rig import (
    ADMIN_TOKEN,
    ROOT,
    ApiServer,
    Postgres,
    full_length,
    make_rig,
    print_figure,
    setup_cities,
)

UNITS, REQUESTS, CLIENTS = 20, 300, 64
ROUNDS = 30 if full_length() else 8
RACE_SECONDS = 3.0 if full_length() else 1.5
DONORS = ["sofia", "plovdiv", "skopje", "thessaloniki"]
ASKING = ["athens", "patras", "chalkida", "tirana", "belgrade"]


def race_round(
    tmp: Path, urls: list[str], lines: list[int], units: list[int], seed: int
) -> Counter[str]:
    config = {
        "urls": urls,
        "token": ADMIN_TOKEN,
        "lines": lines,
        "units": units,
        "seed": seed,
        "seconds": RACE_SECONDS,
        "clients": CLIENTS,
    }
    path = tmp / f"race-{seed}.json"
    path.write_text(json.dumps(config))
    run = [sys.executable, "-m", "tests.reliability.race"]
    procs = [subprocess.Popen([*run, "clients", str(path)], cwd=ROOT, stdout=subprocess.PIPE)]
    procs += [
        subprocess.Popen([*run, "allocator", str(path), str(n)], cwd=ROOT, stdout=subprocess.PIPE)
        for n in range(2)
    ]
    total: Counter[str] = Counter()
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        total.update(json.loads(out.decode().strip().splitlines()[-1]))
    return total


def release_all(client: httpx.Client, sql: Callable[[str], list[tuple[Any, ...]]]) -> None:
    """Bring every unit home and withdraw open offers, for the next round."""
    for (offer,) in sql("SELECT id FROM offers WHERE status = 'pending'"):
        r = client.post(f"/api/v1/offers/{offer}/withdraw")
        assert r.status_code == 200, r.text
    for (deployment,) in sql("SELECT id FROM deployments WHERE status <> 'returned'"):
        for status in ("released", "returned"):
            r = client.post(f"/api/v1/deployments/{deployment}/status", json={"status": status})
            assert r.status_code == 200, r.text


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_no_double_booking_under_racing_clients_and_allocators(
    backend: str, own_pg: Postgres, tmp_path: Path
) -> None:
    if backend == "postgres":
        rig = make_rig(own_pg, tmp_path)
        env = rig.env()
        sql: Callable[[str], list[tuple[Any, ...]]] = lambda q: rig.sql(q)  # noqa: E731
    else:
        db = tmp_path / "b40.db"
        env = {
            "B40_DATABASE_URL": f"sqlite:///{db}",
            "B40_REDIS_URL": "",
            "B40_ADMIN_TOKEN": ADMIN_TOKEN,
            "B40_DEMO": "0",
            "B40_ALERT_PIPELINE": "0",
            "B40_RATE_LIMIT_WRITES_PER_SECOND": "5000",
            "B40_RATE_LIMIT_WRITE_BURST": "5000",
        }

        def sql(q: str) -> list[tuple[Any, ...]]:
            with sqlite3.connect(db, timeout=30) as conn:
                return conn.execute(q).fetchall()

    apis = [ApiServer(f"{backend}-api{n}", env, tmp_path) for n in range(2)]
    apis[0].start()  # the first one migrates an embedded SQLite file
    apis[1].start()
    try:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        with httpx.Client(base_url=apis[0].url, headers=headers, timeout=60) as client:
            units: list[int] = []
            for city in DONORS:
                body = {
                    "city": city,
                    "capability": "FIRE_ENGINE",
                    "quantity": UNITS // len(DONORS),
                    "callsign_prefix": f"DB-{city}",
                }
                r = client.post("/api/v1/resources/bulk", json=body)
                assert r.status_code == 201, r.text
                units += [u["id"] for u in r.json()["items"]]
            incidents = setup_cities(client, ASKING)
            lines: list[int] = []
            for i in range(REQUESTS):
                city = ASKING[i % len(ASKING)]
                body = {
                    "city": city,
                    "incident_id": incidents[city],
                    "items": [{"capability": "FIRE_ENGINE", "quantity": 2}],
                }
                r = client.post("/api/v1/requests", json=body)
                assert r.status_code == 201, r.text
                lines.append(r.json()["items"][0]["id"])
            statuses: Counter[str] = Counter()
            worst: dict[str, list[Any]] = {}
            stranded = 0
            for seed in range(ROUNDS):
                statuses.update(race_round(tmp_path, [a.url for a in apis], lines, units, seed))
                found = booking_violations(sql)
                worst.update({f"round {seed}: {k}": v for k, v in found.items()})
                # Settle: one more plan; then no unit may stay idle while lines wait for one.
                plan = client.post("/api/v1/allocations/plan", json={})
                assert plan.status_code == 200, plan.text
                applied = client.post(
                    f"/api/v1/allocations/{plan.json()['id']}/apply", json={"mode": "dispatch"}
                )
                assert applied.status_code in (200, 409), applied.text
                [(idle,)] = sql("SELECT count(*) FROM resources WHERE status = 'available'")
                stranded += idle
                release_all(client, sql)
                worst.update(
                    {
                        f"round {seed} after release: {k}": v
                        for k, v in booking_violations(sql).items()
                    }
                )
        print_figure(
            f"T8 double booking ({backend})",
            {
                "units": UNITS,
                "requests": REQUESTS,
                "clients": CLIENTS,
                "allocators": 2,
                "api_processes": 2,
                "rounds": ROUNDS,
                "race_s": RACE_SECONDS,
                "statuses": dict(statuses),
                "http_500": sum(n for s, n in statuses.items() if s.endswith(" 500")),
                "violations": worst,
                "stranded_units": stranded,
            },
        )
        assert not worst, worst
        assert stranded == 0
        assert not any(s.endswith(" 500") for s in statuses), statuses
        assert statuses["dispatch 201"] + statuses["accept 200"] + statuses["apply 200"] > 0
    finally:
        for api in apis:
            api.stop()
