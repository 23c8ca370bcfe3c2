"""Real RQ worker processes (`b40 worker`) against real Redis and PostgreSQL, with local sinks:
an SMTP server (aiosmtpd), a webhook receiver and a fake SMS gateway, all on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient

from config.settings import Settings
from server.app import create_app
from tests.conftest import REDIS_URL, free_port
from tests.factories import ADMIN_TOKEN, Api

SECRET = "worker-test-secret"
RULES = """
[defaults]
ack_minutes = { critical = 0.05, high = 30, normal = 120 }   # 3 s: escalation in a test
wake_off_duty = ["critical"]
[defaults.line_unfilled]
minutes = { critical = 600, high = 600, normal = 600 }
"""


def wait_for(condition: Callable[[], Any], what: str, seconds: float = 60) -> Any:
    """Wait for an outcome (not a timing assertion: the limit only stops a hung test)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class SmtpSink:
    """Counts a message as accepted only when it answers 250."""

    def __init__(self) -> None:
        self.accepted: list[bytes] = []
        self.received = 0
        self.hold_first = False
        self.holding = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.received += 1
        if self.hold_first and self.received == 1:
            self.holding.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
            return "451 4.3.0 try again later"
        self.accepted.append(envelope.content)
        return "250 OK"


@dataclass
class HttpSink:
    """Webhook receiver or SMS gateway: fails `failures` times, then records each request."""

    failures: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0
    server: ThreadingHTTPServer | None = None

    def start(self) -> HttpSink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if sink.failures > 0:
                    sink.failures -= 1
                    sink.refused += 1
                    self.send_response(503)
                    self.end_headers()
                    return
                sink.requests.append(
                    {"headers": dict(self.headers), "body": body, "json": json.loads(body)}
                )
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/in"

    def keys(self) -> list[str]:
        return [r["headers"]["Idempotency-Key"] for r in self.requests]


@dataclass
class Rig:
    api: Api
    env: dict[str, str]
    smtp: SmtpSink
    sms: HttpSink
    hook: HttpSink
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self, *, planner: bool = False) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "worker", *(["--planner"] if planner else [])],
            env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=open(os.environ.get("B40_TEST_WORKER_LOG", os.devnull), "ab"),  # noqa: SIM115
            start_new_session=True,  # its own process group: SIGKILL takes the work-horse too
        )
        self.workers.append(process)
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its work-horse (RQ puts the horse in a group of its own)."""
        for pid in [*descendants(process.pid), process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait()

    def alerts(self) -> list[dict[str, Any]]:
        return self.api.ok(self.api.get("admin", "/api/v1/alerts"))["items"]

    def events(self, type: str) -> list[dict[str, Any]]:
        items = self.api.ok(
            self.api.get("admin", "/api/v1/events", params={"after": 0, "limit": 1000})
        )["items"]
        return [e for e in items if e["type"] == type]


@pytest.fixture
def rig_factory(pg_url: str, redis_prefix: str, tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    controllers: list[Controller] = []
    rigs: list[Rig] = []
    clients: list[TestClient] = []

    def make(*, tick_seconds: float = 0.3, planner_in_api: bool = True) -> Rig:
        smtp = SmtpSink()
        controller = Controller(smtp, hostname="127.0.0.1", port=free_port())
        controller.start()
        controllers.append(controller)
        sms, hook = HttpSink().start(), HttpSink().start()
        env = {
            "B40_DATABASE_URL": pg_url,
            "B40_REDIS_URL": REDIS_URL,
            "B40_REDIS_PREFIX": redis_prefix,
            "B40_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
            "B40_SMS_GATEWAY_URL": sms.url,
            "B40_ALERT_SIGNING_SECRET": SECRET,
            "B40_ALERT_RULES_FILE": str(rules),
            "B40_ALERT_RETRY_INTERVALS": "[1, 1, 1]",
            "B40_ALERT_JOB_TIMEOUT_SECONDS": "5",
            "B40_ALERT_LEASE_SECONDS": "6",
            "B40_ALERT_REDELIVER_AFTER_SECONDS": "1",
            "B40_ALERT_TICK_SECONDS": str(tick_seconds),
            "B40_OUTBOX_DIR": str(tmp_path / "outbox"),
            "B40_WEBHOOK_ALLOW_PRIVATE": "true",  # the webhook sink listens on 127.0.0.1
        }
        settings = Settings(
            **{
                k.removeprefix("B40_").lower(): json.loads(v) if v.startswith("[") else v
                for k, v in env.items()
            },
            admin_token=ADMIN_TOKEN,
            demo=False,
            alert_pipeline=planner_in_api,
        )
        client = TestClient(create_app(settings, prepare=False))
        client.__enter__()
        clients.append(client)
        api = Api(client=client, tokens={"admin": ADMIN_TOKEN})
        rig = Rig(api, env, smtp, sms, hook)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        for process in rig.workers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
    for client in clients:
        client.__exit__(None, None, None)
    for controller in controllers:
        controller.stop()
    import redis

    connection = redis.Redis.from_url(REDIS_URL)
    for key in connection.scan_iter(f"rq:*{redis_prefix}*"):
        connection.delete(key)


def scenario(api: Api, sink_url: str, *, levels: int = 1) -> dict[str, Any]:
    """Sofia holds a helicopter; Athens asks for one. Sofia's officers: e-mail, SMS, webhook."""
    api.user("sofia", "city_operator", "sofia")
    api.user("athens", "city_operator", "athens")
    api.ok(
        api.post(
            "sofia", "/api/v1/resources", {"capability": "FF_HELICOPTER", "callsign": "SOF-H1"}
        ),
        201,
    )
    for level in range(1, levels + 1):
        api.ok(
            api.post(
                "admin",
                "/api/v1/duty-officers",
                {
                    "city": "sofia",
                    "name": f"sofia-{level}",
                    "email": f"sofia-{level}@example.org",
                    "phone": "+359888000000",
                    "webhook_url": sink_url,
                    "escalation_level": level,
                },
            ),
            201,
        )
    incident = api.ok(
        api.post(
            "athens",
            "/api/v1/incidents",
            {
                "kind": "wildfire",
                "title": "Parnitha",
                "lat": 38.17,
                "lon": 23.72,
                "severity": "extreme",
            },
        ),
        201,
    )
    return api.ok(
        api.post(
            "athens",
            "/api/v1/requests",
            {
                "incident_id": incident["id"],
                "priority": "critical",
                "items": [{"capability": "FF_HELICOPTER", "quantity": 1}],
            },
        ),
        201,
    )
