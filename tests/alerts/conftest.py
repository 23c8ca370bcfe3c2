"""An alerting world on the real database: the API, a clock we move, and the planner and jobs
run by hand, with recording fakes for the queue and the channels (the RQ tests use the real
ones)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from alerts.channels import ChannelError, Outgoing
from server.app import create_app
from server.services.alerts import Escalate, Send
from tests.factories import Api, make_settings
from workers import jobs
from workers.pipeline import AlertPipeline
from workers.runtime import Runtime, build

SECRET = "test-signing-secret"
START = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)  # a Wednesday; 13:00 in Athens and Sofia
RULES = """
[defaults]
ack_minutes = { critical = 10, high = 30, normal = 120 }
wake_off_duty = ["critical"]
[defaults.request_created]
max_eta_hours = 12.0
[defaults.line_unfilled]
minutes = { critical = 30, high = 120, normal = 480 }
[defaults.deployment_overdue]
grace_minutes = 30
[cities.skopje.request_created]
max_eta_hours = 0.1
"""


@dataclass
class FakeClock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class RecordingQueue:
    sends: list[Send] = field(default_factory=list)
    timers: list[Escalate] = field(default_factory=list)

    def deliver(self, sends: Sequence[Send], *, again: bool = False) -> None:
        self.sends += [s for s in sends if not (again and s in self.sends)]

    def escalate(self, items: Sequence[Escalate]) -> None:
        self.timers += items

    def close(self) -> None:
        pass


@dataclass
class RecordingChannel:
    sent: list[Outgoing] = field(default_factory=list)
    failures: int = 0

    def send(self, outgoing: Outgoing) -> str:
        if self.failures > 0:
            self.failures -= 1
            raise ChannelError("sink down")
        self.sent.append(outgoing)
        return "ok"


@dataclass
class World:
    api: Api
    clock: FakeClock
    runtime: Runtime
    queue: RecordingQueue
    channels: dict[str, RecordingChannel]
    pipeline: AlertPipeline

    def plan(self) -> None:
        self.pipeline.run_once()

    def deliver(self) -> None:
        """Run every queued delivery once, like a worker whose jobs all succeed or fail once."""
        while self.queue.sends:
            send = self.queue.sends.pop(0)
            with contextlib.suppress(ChannelError):
                jobs.deliver_alert(send.alert_id, send.channel, self.runtime)

    def alerts(self, **params: Any) -> list[dict[str, Any]]:
        return self.api.ok(self.api.get("admin", "/api/v1/alerts", params=params))["items"]

    def officer(self, name: str, city: str | None, level: int = 1, **extra: Any) -> int:
        body = {"name": name, "city": city, "escalation_level": level, **extra}
        body.setdefault("email", f"{name}@example.org")
        return int(self.api.ok(self.api.post("admin", "/api/v1/duty-officers", body), 201)["id"])

    def to(self) -> dict[str, list[str]]:
        """Alert rule -> the officers it reached, sorted."""
        out: dict[str, list[str]] = {}
        for alert in self.alerts():
            out.setdefault(alert["rule"], []).append(alert["officer"])
        return {k: sorted(v) for k, v in out.items()}


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    rules = tmp_path / "alert_rules.toml"
    rules.write_text(RULES)
    settings = make_settings(
        database_url,
        alert_pipeline=False,
        alert_rules_file=str(rules),
        alert_signing_secret=SECRET,
        outbox_dir=str(tmp_path / "outbox"),
        base_url="http://board.test",
    )
    clock = FakeClock()
    app = create_app(settings, clock=clock, prepare=False)
    with TestClient(app) as client:
        runtime = build(settings, database=app.state.database)
        queue = RecordingQueue()
        runtime.queue = queue
        channels = {name: RecordingChannel() for name in ("email", "sms", "webhook")}
        runtime.channels = dict(channels)
        pipeline = AlertPipeline(runtime, tick_seconds=3600, redeliver_after_seconds=90)
        api = Api(client=client, tokens={"admin": "test-admin-token"})
        for city in ("athens", "sofia", "belgrade", "zagreb", "skopje"):
            api.user(city, "city_operator", city)
        yield World(api, clock, runtime, queue, channels, pipeline)
