"""T5, PostgreSQL connections terminated repeatedly and the server restarted (fsync on), under
posts and racing dispatches: only 503 with Retry-After during the outage, never a 500; no
acknowledged write lost; no double booking; boards lose nothing."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.reliability.history import LoadRun, booking_violations, check, load_config
from tests.reliability.rig import (
    ADMIN_TOKEN,
    Postgres,
    RedisServer,
    city_slugs,
    full_length,
    make_rig,
    print_figure,
    setup_cities,
)

BOARDS = 30
RATE = 20
DURATION = 40 if full_length() else 20
TERMINATE_EVERY = 3.0
RESTART_AT = 8.0  # seconds into the steady load
UNITS, LINES, RACERS = 8, 40, 8


@pytest.fixture
def durable_pg() -> Iterator[Postgres]:
    pg = Postgres(fsync=True).init()
    yield pg
    pg.destroy()


class Racers:
    """Threads dispatching random units to random lines (and bringing units home again),
    recording every status they get."""

    def __init__(self, url: str, lines: list[int], units: list[int]) -> None:
        self.url, self.lines, self.units = url, lines, units
        self.statuses: Counter[str] = Counter()
        self.no_retry_after = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.race, args=(n,)) for n in range(RACERS)]

    def note(self, response: httpx.Response) -> None:
        with self.lock:
            self.statuses[str(response.status_code)] += 1
            if response.status_code == 503 and "retry-after" not in response.headers:
                self.no_retry_after += 1

    def race(self, n: int) -> None:
        rnd = random.Random(n)
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=15) as client:
            while not self.stop.is_set():
                try:
                    body = {
                        "request_item_id": rnd.choice(self.lines),
                        "resource_id": rnd.choice(self.units),
                    }
                    key = {"Idempotency-Key": uuid.uuid4().hex}
                    response = client.post("/api/v1/dispatches", json=body, headers=key)
                    self.note(response)
                    if response.status_code == 201:
                        deployment = response.json()["id"]
                        for status in ("released", "returned"):
                            moved = client.post(
                                f"/api/v1/deployments/{deployment}/status", json={"status": status}
                            )
                            self.note(moved)
                except httpx.TransportError:
                    with self.lock:
                        self.statuses["transport"] += 1
                time.sleep(rnd.uniform(0.0, 0.05))

    def __enter__(self) -> Racers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)


def test_postgres_terminations_and_restart_give_only_503(
    durable_pg: Postgres, tmp_path: Path
) -> None:
    redis_server = RedisServer(appendonly=False).start()
    rig = make_rig(durable_pg, tmp_path, redis_server=redis_server)
    try:
        rig.api()
        with rig.client() as client:
            incidents = setup_cities(client, city_slugs(client, 10))
            units = client.post(
                "/api/v1/resources/bulk",
                json={
                    "city": "athens",
                    "capability": "FIRE_ENGINE",
                    "quantity": UNITS,
                    "callsign_prefix": "PGF",
                },
            )
            assert units.status_code == 201, units.text
            unit_ids = [u["id"] for u in units.json()["items"]]
            lines = []
            for i in range(LINES):
                city = list(incidents)[i % len(incidents)]
                r = client.post(
                    "/api/v1/requests",
                    json={
                        "city": city,
                        "incident_id": incidents[city],
                        "items": [{"capability": "FIRE_ENGINE", "quantity": 1}],
                    },
                )
                assert r.status_code == 201, r.text
                lines.append(r.json()["items"][0]["id"])
        config = load_config(
            rig,
            incidents,
            tag="t5",
            boards=BOARDS,
            burst=40,
            rate=RATE,
            duration=DURATION,
            op_deadline=40,
        )
        run = LoadRun(config, tmp_path).start()
        run.wait_phase("load")
        terminated = 0
        restart_s = None
        with Racers(rig.apis[0].url, lines, unit_ids) as racers:
            start = time.monotonic()
            restarted = False
            while run.phase() == "load":
                time.sleep(TERMINATE_EVERY)
                terminated += durable_pg.terminate_backends(rig.database)
                if not restarted and time.monotonic() - start > RESTART_AT:
                    t = time.monotonic()
                    durable_pg.restart()
                    restart_s = round(time.monotonic() - t, 2)
                    restarted = True
        history = run.finish()
        verdict = check(history, rig)
        bookings = booking_violations(lambda q: rig.sql(q))
        f = verdict.figures
        print_figure(
            "T5 PostgreSQL faults",
            {
                "boards": BOARDS,
                "rate_per_s": RATE,
                "duration_s": DURATION,
                "backends_terminated": terminated,
                "pg_restart_s": restart_s,
                "dispatch_statuses": dict(racers.statuses),
                "double_booking": bookings,
                **f,
            },
        )
        assert not verdict.violations, verdict.violations
        assert not bookings, bookings
        for statuses in (f["statuses"], racers.statuses):
            assert "500" not in statuses, statuses
            assert all(not s.isdigit() or int(s) < 500 or s == "503" for s in statuses), statuses
        assert f["retry_after_missing"] == racers.no_retry_after == 0
        assert f["failed"] == 0, f
        assert racers.statuses["201"] > 0, racers.statuses
    finally:
        rig.stop()
        redis_server.destroy()
