"""Scale-out: the docker-compose topology as processes (two API processes sharing PostgreSQL
and Redis, two workers with the scheduler): boards on either process see every event, and
alert jobs are spread over both workers."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import redis
from rq import Queue

from tests.reliability.conftest import RigFactory
from tests.reliability.history import LoadRun, check, load_config
from tests.reliability.rig import Sinks, print_figure, setup_cities
from tests.reliability.test_workers import ALERT_ENV, DONORS, expected_deliveries


def test_two_api_processes_and_two_workers_share_the_work(
    rig_factory: RigFactory, sinks: Sinks, tmp_path: Path
) -> None:
    rig = rig_factory(sinks=sinks, **ALERT_ENV)
    rig.api()
    rig.api()
    rig.worker()
    rig.worker()
    with rig.client() as client:
        for i, city in enumerate(DONORS):
            unit = {"city": city, "capability": "FIRE_ENGINE", "callsign": f"SO-{i}"}
            assert client.post("/api/v1/resources", json=unit).status_code == 201
            officer = {"city": city, "name": f"officer-{city}", "email": f"duty@{city}.example.org"}
            assert client.post("/api/v1/duty-officers", json=officer).status_code == 201
        incidents = setup_cities(client, ["athens", "patras", "chalkida"])
    # Boards and posts alternate between the two API processes.
    config = load_config(rig, incidents, tag="so", boards=20, burst=20, rate=5, duration=6)
    history = LoadRun(config, tmp_path).start().finish()
    verdict = check(history, rig)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        [(sent,)] = rig.sql("SELECT count(*) FROM alert_deliveries WHERE status = 'sent'")
        if sent >= expected_deliveries(rig) > 0:
            break
        time.sleep(0.5)
    connection = redis.Redis.from_url(rig.redis.url)  # type: ignore[union-attr]
    queue = Queue(f"{rig.prefix}:alerts", connection=connection)
    by_worker: Counter[str] = Counter()
    for job_id in queue.finished_job_registry.get_job_ids():
        job = queue.fetch_job(job_id)
        if job is not None and job_id.startswith("alert-"):
            by_worker[(job.worker_name or "?").rsplit("-", 1)[0]] += 1
    f = verdict.figures
    print_figure(
        "scale-out",
        {
            "api_processes": 2,
            "workers": 2,
            "boards_per_api": dict(Counter(i % 2 for i in range(config["boards"]))),
            "deliveries": expected_deliveries(rig),
            "delivery_jobs_by_worker": dict(by_worker),
            **{k: f[k] for k in ("posts", "ok", "events", "lost_events", "gaps", "foreign_events")},
        },
    )
    assert not verdict.violations, verdict.violations
    assert f["ok"] == f["posts"]
    assert sum(by_worker.values()) >= expected_deliveries(rig) > 0
    assert by_worker["worker1"] > 0, by_worker
    assert by_worker["worker2"] > 0, by_worker
