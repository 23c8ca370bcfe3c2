"""Alert delivery benchmark: event commit -> e-mail accepted by an SMTP sink, throughput per
worker, and a bare RQ no-op round trip as the baseline, in one run.

    .venv/bin/python -m bench.alerts            # writes its section of BENCHMARKS.md

Real PostgreSQL (a fresh database), real Redis (own prefix), real `b40 worker` processes and
an aiosmtpd sink on 127.0.0.1; the API and the alert planner run in this process.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import redis
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from rq import Queue

from config.settings import Settings
from server.app import create_app
from server.db.migrate import upgrade
from tests.conftest import free_port
from tests.factories import ADMIN_TOKEN, Api

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"
BEGIN, END = "<!-- bench/alerts.py begin -->", "<!-- bench/alerts.py end -->"
PG = os.environ.get("B40_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test").rsplit("/", 1)[
    0
]
REDIS_URL = "redis://127.0.0.1:6379/0"
LATENCY_ALERTS = 40
BURST_ALERTS = 200
NOOP_JOBS = 200


class Sink:
    def __init__(self) -> None:
        self.accepted: dict[int, float] = {}
        self.changed = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        at = time.time()
        match = re.search(rb"X-B40-Alert: (\d+)", envelope.content)
        with self.changed:
            if match:
                self.accepted.setdefault(int(match.group(1)), at)
            self.changed.notify_all()
        return "250 OK"

    def wait(self, count: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.accepted) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self.accepted)} of {count} e-mails")
                self.changed.wait(left)


def progress(message: str) -> None:
    print(f"[bench.alerts] {message}", file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def worker(env: dict[str, str], simple: bool, planner: bool = False) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "server.cli", "worker"] + (["--simple"] if simple else [])
    args += ["--planner"] if planner else []
    return subprocess.Popen(
        args, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=30)


def noop_round_trips(queue: Queue) -> list[float]:
    times = []
    for _ in range(NOOP_JOBS):
        start = time.perf_counter()
        job = queue.enqueue("workers.jobs.noop")
        result = job.latest_result(timeout=30)
        assert result is not None
        times.append(time.perf_counter() - start)
    return times


def commit_to_email(
    api: Api, sink: Sink, commits: dict[int, float], body: dict[str, Any]
) -> list[float]:
    """Post LATENCY_ALERTS requests one after another; seconds from each request's commit to
    the e-mail of its own alert (escalations of earlier alerts may arrive meanwhile)."""
    latencies = []
    for _ in range(LATENCY_ALERTS):
        before = max(list(commits), default=0)
        known = set(sink.accepted)
        api.ok(api.post("athens", "/api/v1/requests", body), 201)
        seq = min(s for s in list(commits) if s > before)  # the planner commits only after it
        while True:
            sink.wait(len(known) + 1)
            new = set(sink.accepted) - known
            ours = [a for a in new if source_seq(api, a) == seq]
            if ours:
                break
            known |= new
        latencies.append(sink.accepted[ours[0]] - commits[seq])
    return latencies


def source_seq(api: Api, alert_id: int) -> int:
    return int(api.ok(api.get("admin", f"/api/v1/alerts/{alert_id}"))["source_seq"])


def run() -> dict[str, Any]:
    name = f"b40_bench_alerts_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{PG}/test", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{PG}/{name}"
    prefix = f"b40bench:{uuid.uuid4().hex[:8]}"
    sink = Sink()
    smtp = Controller(sink, hostname="127.0.0.1", port=free_port())
    smtp.start()
    env = {
        "B40_DATABASE_URL": url,
        "B40_REDIS_URL": REDIS_URL,
        "B40_REDIS_PREFIX": prefix,
        "B40_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
        "B40_ALERT_SIGNING_SECRET": "bench",
    }
    out: dict[str, Any] = {}
    try:
        settings = Settings(
            database_url=url,
            redis_url=REDIS_URL,
            redis_prefix=prefix,
            smtp_url=env["B40_SMTP_URL"],
            alert_signing_secret="bench",
            admin_token=ADMIN_TOKEN,
            demo=False,
        )
        upgrade(settings.database_url)
        app = create_app(settings, prepare=False)
        commits: dict[int, float] = {}
        app.state.database.on_commit(lambda seq: commits.setdefault(seq, time.time()))
        connection = redis.Redis.from_url(REDIS_URL)
        queue = Queue(f"{prefix}:alerts", connection=connection)
        with TestClient(app) as client:
            api = Api(client=client, tokens={"admin": ADMIN_TOKEN})
            api.user("athens", "city_operator", "athens")
            api.user("sofia", "city_operator", "sofia")
            api.ok(
                api.post(
                    "sofia", "/api/v1/resources", {"capability": "FF_HELICOPTER", "callsign": "S-1"}
                ),
                201,
            )
            officer = {"city": "sofia", "name": "sofia-1", "email": "duty@sofia.example"}
            api.ok(api.post("admin", "/api/v1/duty-officers", officer), 201)
            incident = api.ok(
                api.post(
                    "athens",
                    "/api/v1/incidents",
                    {
                        "kind": "wildfire",
                        "title": "Bench",
                        "lat": 38.1,
                        "lon": 23.7,
                        "severity": "high",
                    },
                ),
                201,
            )
            body = {
                "incident_id": incident["id"],
                "priority": "high",
                "items": [{"capability": "FF_HELICOPTER", "quantity": 1}],
            }
            for simple in (False, True):
                mode = "simple" if simple else "fork"
                process = worker(env, simple)
                try:
                    progress(f"{mode}: no-op baseline")
                    noop_round_trips(queue)  # warm up: the worker is listening
                    out[f"noop_{mode}"] = noop_round_trips(queue)
                    progress(f"{mode}: commit -> e-mail latency")
                    latencies = commit_to_email(api, sink, commits, body)
                    out[f"latency_{mode}"] = latencies
                finally:
                    stop(process)
                progress(f"{mode}: burst of {BURST_ALERTS}")
                # Throughput: BURST_ALERTS alerts waiting in the queue, then one worker.
                extra = [
                    {"city": "sofia", "name": f"b{mode}{i}", "email": f"b{i}@sofia.example"}
                    for i in range(BURST_ALERTS - 1)
                ]
                ids = [
                    api.ok(api.post("admin", "/api/v1/duty-officers", o), 201)["id"] for o in extra
                ]
                before = len(sink.accepted)
                api.ok(api.post("athens", "/api/v1/requests", body), 201)
                deadline = time.monotonic() + 120
                while queue.count < BURST_ALERTS and time.monotonic() < deadline:
                    time.sleep(0.05)
                progress(f"{mode}: {queue.count} jobs queued, starting the worker")
                start = time.time()
                process = worker(env, simple)
                try:
                    sink.wait(before + BURST_ALERTS)
                finally:
                    stop(process)
                last = max(sorted(sink.accepted.values())[before:])
                out[f"burst_{mode}"] = BURST_ALERTS / (last - start)
                progress(
                    f"{mode}: latency p50 {ms(pct(latencies, 50))}, {out[f'burst_{mode}']:.1f} "
                    f"alerts/s, no-op p50 {ms(pct(out[f'noop_{mode}'], 50))}"
                )
                for officer_id in ids:  # back to one officer for the next mode
                    api.post(
                        "admin",
                        f"/api/v1/duty-officers/{officer_id}/active",
                        params={"active": False},
                    )
        # docker-compose.yml's topology: the API plans no alerts, a worker runs the planner
        # and learns of the API's commits from the board's stream (workers/wakeup.py).
        app = create_app(settings.model_copy(update={"alert_pipeline": False}), prepare=False)
        app.state.database.on_commit(lambda seq: commits.setdefault(seq, time.time()))
        with TestClient(app) as client:
            api = Api(client=client, tokens=api.tokens)
            process = worker(env, simple=False, planner=True)
            try:
                noop_round_trips(queue)  # the worker is listening (its planner started first)
                progress("planner in the worker: commit -> e-mail latency")
                out["latency_planner"] = commit_to_email(api, sink, commits, body)
            finally:
                stop(process)
    finally:
        smtp.stop()
        for key in redis.Redis.from_url(REDIS_URL).scan_iter(f"*{prefix}*"):
            redis.Redis.from_url(REDIS_URL).delete(key)
        with psycopg.connect(f"{PG}/test", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return out


def ms(value: float) -> str:
    return f"{value * 1000:.0f} ms"


def write(out: dict[str, Any]) -> str:
    rows = []
    for mode, label in (
        ("fork", "`b40 worker` (fork per job, default)"),
        ("simple", "`b40 worker --simple`"),
    ):
        lat, noop = out[f"latency_{mode}"], out[f"noop_{mode}"]
        rows.append(
            f"| {label} | {ms(pct(lat, 50))} | {ms(pct(lat, 99))} | {out[f'burst_{mode}']:.1f} "
            f"| {ms(pct(noop, 50))} | {ms(pct(noop, 99))} |"
        )
    lat = out["latency_planner"]
    rows.append(
        "| `b40 worker --planner`, the API without a planner (docker-compose.yml) | "
        f"{ms(pct(lat, 50))} | {ms(pct(lat, 99))} | - | - | - |"
    )
    section = (
        f"{BEGIN}\n## Alerts to duty officers (issue 4)\n\n"
        "Command: `.venv/bin/python -m bench.alerts`; "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} at the end (the cores are shared with other "
        "work, so times are upper bounds).\n\n"
        "Real PostgreSQL and Redis, one real `b40 worker` process, an aiosmtpd sink; the API "
        "and the alert planner in the bench process (last row: the planner in the worker, "
        "woken through the board's Redis Stream, as docker-compose.yml runs it). Latency: "
        "from the commit of "
        "`request.created` (the after-commit hook) to the sink's 250 for the alert's e-mail, "
        f"{LATENCY_ALERTS} requests one after another (planner wake-up, alert transaction, "
        "enqueue, job, delivery lease, SMTP, record). Throughput: "
        f"{BURST_ALERTS} alerts queued, then one worker started; alerts delivered per second "
        "from its start to the last acceptance. Baseline: a bare RQ no-op job, enqueue to "
        f"result, {NOOP_JOBS} one after another, same worker.\n\n"
        "| worker | commit -> e-mail p50 | p99 | alerts/s per worker | RQ no-op p50 | p99 |\n"
        "|---|---:|---:|---:|---:|---:|\n" + "\n".join(rows) + f"\n{END}"
    )
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    if BEGIN in text:
        text = re.sub(
            re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: section, text, flags=re.S
        )
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    BENCHMARKS.write_text(text)
    return section


def main() -> None:
    print(write(run()))


if __name__ == "__main__":
    main()
