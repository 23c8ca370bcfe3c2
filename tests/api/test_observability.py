"""Request ids, JSON access logs and Prometheus metrics."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import httpx
import pytest

from config.logs import JsonFormatter
from tests.conftest import ServerProcess
from tests.factories import ADMIN_TOKEN, make_api

INCIDENT = {
    "city": "athens",
    "kind": "flood",
    "title": "x",
    "lat": 38.0,
    "lon": 23.7,
    "severity": "low",
}


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format."""
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        wanted = [f'{k}="{v}"' for k, v in labels.items()]
        if sample.split("{")[0] == name and all(w in sample for w in wanted):
            return float(value)
    raise AssertionError(f"no sample {name} {labels} in:\n{text}")


def test_request_id_is_echoed_or_generated(sqlite_url: str) -> None:
    api, client = make_api(sqlite_url)
    with client:
        given = api.get("admin", "/api/v1/cities", headers={"X-Request-Id": "city-cad-42"})
        assert given.headers["x-request-id"] == "city-cad-42"
        made = api.get("admin", "/api/v1/cities")
        assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
        # Unsafe ids (log injection) are replaced, not echoed.
        bad = api.get("admin", "/healthz", headers={"X-Request-Id": 'x" } {"level": "evil'})
        assert re.fullmatch(r"[0-9a-f]{32}", bad.headers["x-request-id"])
        # Errors carry it too.
        assert "x-request-id" in api.get("anonymous", "/api/v1/cities").headers


def test_access_log_is_json_with_request_id_and_route(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    api, client = make_api(sqlite_url)
    formatter = JsonFormatter()
    with client, caplog.at_level(logging.INFO, logger="b40.access"):
        api.user("coordinator", "coordinator")
        caplog.clear()
        api.get("coordinator", "/api/v1/cities/athens", headers={"X-Request-Id": "abc-1"})
        # The formatter runs in the request's context; re-create it for the captured record.
        from config.logs import request_id

        token = request_id.set("abc-1")
        try:
            lines = [json.loads(formatter.format(r)) for r in caplog.records]
        finally:
            request_id.reset(token)
    [line] = [entry for entry in lines if entry["logger"] == "b40.access"]
    assert line["route"] == "/api/v1/cities/{slug}"
    assert line["path"] == "/api/v1/cities/athens"
    assert line["status"] == 200
    assert line["role"] == "coordinator"
    assert line["request_id"] == "abc-1"
    assert line["duration_ms"] >= 0


def test_metrics_count_requests_by_route_and_events(sqlite_url: str) -> None:
    api, client = make_api(sqlite_url)
    with client:
        api.user("athens", "city_operator", "athens")
        for _ in range(3):
            api.ok(api.post("athens", "/api/v1/incidents", INCIDENT), 201)
        api.get("anonymous", "/api/v1/incidents")
        api.get("anonymous", "/no/such/page")
        with client.websocket_connect(f"/ws/board?token={ADMIN_TOKEN}") as board:
            board.receive_json()  # the snapshot: the board is connected now
            text = client.get("/metrics").text
    assert (
        metric(
            text, "b40_http_request_duration_seconds_count", route="/api/v1/incidents", status="201"
        )
        == 3
    )
    assert (
        metric(
            text, "b40_http_request_duration_seconds_count", route="/api/v1/incidents", status="401"
        )
        == 1
    )
    assert metric(text, "b40_http_request_duration_seconds_count", route="unmatched") >= 1
    # Every event of this database was appended by this process (admin, user, 3 incidents).
    assert metric(text, "b40_events_appended_total") == metric(text, "b40_event_log_last_seq") == 5
    assert metric(text, "b40_boards_connected") == 1
    assert metric(text, "b40_database_up") == 1
    assert metric(text, "b40_relay_lag_events", stage="hub") >= 0
    assert metric(text, "b40_alert_oldest_pending_seconds") == 0


def test_metrics_token_when_configured(sqlite_url: str) -> None:
    api, client = make_api(sqlite_url, metrics_token="scrape-secret")
    with client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
        assert ok.status_code == 200
        assert "b40_http_request_duration_seconds" in ok.text
        # An API token is not a metrics token.
        assert api.get("admin", "/metrics").status_code == 401


def test_served_process_logs_json_lines(server_factory: type[ServerProcess], pg_url: str) -> None:
    server = server_factory({"B40_DATABASE_URL": pg_url, "B40_ADMIN_TOKEN": "t0k"}).start()
    httpx.get(
        f"{server.url}/api/v1/users/me",
        headers={"Authorization": "Bearer t0k", "X-Request-Id": "rid-7"},
    )
    server.stop()
    lines = [json.loads(line) for line in server.log_text.splitlines() if line.startswith("{")]
    access = [entry for entry in lines if entry["logger"] == "b40.access"]
    assert any(e["request_id"] == "rid-7" and e["route"] == "/api/v1/users/me" for e in access), (
        lines
    )
    assert all({"ts", "level", "logger", "message"} <= set(e) for e in lines)


def offer_alerting_athens(api: Any) -> None:
    """A duty officer in Athens, then an offer on an Athens request: one alert e-mail to send."""
    api.user("athens", "city_operator", "athens")
    api.user("sofia", "city_operator", "sofia")
    officer = {"city": "athens", "name": "duty", "email": "duty@athens.example.org"}
    api.ok(api.post("athens", "/api/v1/duty-officers", officer), 201)
    unit = api.ok(
        api.post("sofia", "/api/v1/resources", {"capability": "AMBULANCE", "callsign": "Q-1"}), 201
    )
    incident = api.ok(api.post("athens", "/api/v1/incidents", INCIDENT), 201)
    body = {"incident_id": incident["id"], "items": [{"capability": "AMBULANCE", "quantity": 1}]}
    item = api.ok(api.post("athens", "/api/v1/requests", body), 201)["items"][0]["id"]
    api.ok(
        api.post("sofia", "/api/v1/offers", {"request_item_id": item, "resource_id": unit["id"]}),
        201,
    )


def test_alert_queue_depth_is_exported_from_rq(pg_url: str, redis_prefix: str) -> None:
    """With Redis and no worker running, the deliveries an offer causes wait in the queue."""
    import time

    from tests.conftest import REDIS_URL

    api, client = make_api(pg_url, redis_url=REDIS_URL, redis_prefix=redis_prefix)
    with client:
        offer_alerting_athens(api)
        deadline = time.monotonic() + 20  # a hang guard: the planner wakes after the commit
        queued = 0.0
        while time.monotonic() < deadline and queued < 1:
            queued = metric(client.get("/metrics").text, "b40_alert_queue_jobs", state="queued")
            time.sleep(0.1)
        assert queued >= 1
        text = client.get("/metrics").text
        assert metric(text, "b40_alert_queue_jobs", state="failed") == 0


def test_alert_delivery_outcomes_and_latency(sqlite_url: str, tmp_path: Any) -> None:
    """Embedded default: the e-mail lands in the outbox; /metrics shows it sent, and how fast."""
    import time

    api, client = make_api(sqlite_url, outbox_dir=str(tmp_path / "outbox"))
    with client:
        offer_alerting_athens(api)
        deadline = time.monotonic() + 20  # a hang guard, not a speed assertion
        text = ""
        while (
            time.monotonic() < deadline
            and 'b40_alert_delivery_latency_seconds{channel="email"' not in text
        ):
            text = client.get("/metrics").text
            time.sleep(0.1)
        assert metric(text, "b40_alert_deliveries", channel="email", status="sent") >= 1
        median = metric(text, "b40_alert_delivery_latency_seconds", channel="email", quantile="0.5")
        slowest = metric(
            text, "b40_alert_delivery_latency_seconds", channel="email", quantile="1.0"
        )
        assert 0 <= median <= slowest
