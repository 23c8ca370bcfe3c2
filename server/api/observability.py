"""Request ids, access logs and Prometheus metrics (/metrics). docs/operations.md lists them."""

from __future__ import annotations

import hmac
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterable

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config.logs import request_id
from config.settings import Settings
from server.db.unit_of_work import Database
from server.services.telemetry import read_figures

log = logging.getLogger(__name__)
access_log = logging.getLogger("b40.access")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # anything else is replaced, not echoed
# Latency buckets (s): API calls are tens of ms; plans and exports may take seconds.
PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """One registry per app (tests build several apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "b40_http_request_duration_seconds",
            "HTTP request latency by method, route template and status.",
            ("method", "route", "status"),
            buckets=BUCKETS,
            registry=self.registry,
        )


class RequestContext:
    """Outermost middleware: X-Request-Id in and out, latency by route, one access log line."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = _incoming_id(scope) or uuid.uuid4().hex
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", rid.encode()),
                ]
            await send(message)

        # A websocket's frames skip the wrapper: a board receives every event through here,
        # and an accepted websocket has no response headers to add the id to.
        outgoing = send_with_id if scope["type"] == "http" else send
        try:
            await self.app(scope, receive, outgoing)
        except Exception:
            status = status or 500
            raise
        finally:
            if scope["type"] == "http":
                self._observe(scope, status, time.perf_counter() - started)
            request_id.reset(token)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = _route_template(scope)
        self.metrics.latency.labels(scope["method"], route, str(status)).observe(seconds)
        actor = scope.get("b40", {}).get("actor")
        access_log.info(
            "%s %s %s",
            scope["method"],
            route,
            status,
            extra={
                "method": scope["method"],
                "route": route,
                "path": scope["path"],
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "user_id": getattr(actor, "user_id", None),
                "role": getattr(getattr(actor, "role", None), "value", None),
            },
        )


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text: str = bytes(value).decode("latin-1")
            return text if REQUEST_ID.match(text) else None
    return None


def _route_template(scope: Scope) -> str:
    """The matched route's template (bounded label values); 'unmatched' for 404s and assets.

    A route of an included router knows its path without the router's prefix; the prefix is
    what the request path has in front of the route's path filled with its parameters.
    """
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str):
        return "unmatched"
    params = scope.get("path_params", {})
    rendered = PARAM.sub(lambda m: str(params.get(m.group(1), m.group(0))), template)
    path: str = scope["path"]
    if path.endswith(rendered):
        return path[: len(path) - len(rendered)] + template
    return template


class LiveFigures:
    """Collected at scrape time: the database's figures and this process's board and relay."""

    def __init__(self, app: FastAPI, database: Database) -> None:
        self.app = app
        self.database = database

    def collect(self) -> Iterable[Metric]:
        appended = CounterMetricFamily(
            "b40_events_appended", "Events appended to the log by this process."
        )
        appended.add_metric([], self.database.events_appended)
        yield appended
        hub = getattr(self.app.state, "board_hub", None)
        relay = getattr(self.app.state, "event_relay", None)
        boards = GaugeMetricFamily("b40_boards_connected", "Boards connected to this process.")
        boards.add_metric([], len(hub.subscribers) if hub is not None else 0)
        yield boards
        up = GaugeMetricFamily("b40_database_up", "1 when the scrape could read the database.")
        try:
            figures = self.database.read(lambda s: read_figures(s, self.database.clock()))
        except Exception as error:  # a scrape must not fail because the database did
            log.warning("metrics: database unreadable (%s)", type(error).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        head = GaugeMetricFamily("b40_event_log_last_seq", "Highest committed event seq.")
        head.add_metric([], figures.last_seq)
        yield head
        lag = GaugeMetricFamily(
            "b40_relay_lag_events",
            "Committed events not yet relayed (relay) or not yet fanned out to boards (hub).",
            labels=["stage"],
        )
        if relay is not None and relay.cursor is not None:
            lag.add_metric(["relay"], max(0, figures.last_seq - relay.cursor))
        if hub is not None:
            lag.add_metric(["hub"], max(0, figures.last_seq - hub.last_seq))
        yield lag
        deliveries = GaugeMetricFamily(
            "b40_alert_deliveries",
            "Alert deliveries by channel and outcome (sending, sent, failed).",
            labels=["channel", "status"],
        )
        for (channel, status), count in sorted(figures.deliveries.items()):
            deliveries.add_metric([channel, status], count)
        yield deliveries
        pending = GaugeMetricFamily(
            "b40_alert_oldest_pending_seconds",
            "Age of the oldest alert delivery still being sent (0 when none): the queue's lag.",
        )
        pending.add_metric([], figures.oldest_pending_seconds)
        yield pending
        latency = GaugeMetricFamily(
            "b40_alert_delivery_latency_seconds",
            "From an alert's creation to its channel accepting it, over the last hour's "
            "deliveries: quantile 0.5, 0.95 and 1 (the slowest), per channel.",
            labels=["channel", "quantile"],
        )
        for channel, quantiles in sorted(figures.delivery_latency.items()):
            for quantile, value in quantiles.items():
                latency.add_metric([channel, quantile], value)
        yield latency
        queue = getattr(self.app.state, "alert_queue", None)
        if queue is not None:
            depth = GaugeMetricFamily(
                "b40_alert_queue_jobs",
                "Alert jobs by state: queued (waiting for a worker), scheduled (retries and "
                "escalation timers), started, failed (RQ's failed registry).",
                labels=["state"],
            )
            try:
                for state, count in sorted(queue.depth().items()):
                    depth.add_metric([state], count)
            except Exception as error:  # Redis away: the scrape still answers
                log.warning("metrics: alert queue unreadable (%s)", type(error).__name__)
            yield depth


def install(app: FastAPI, settings: Settings, database: Database) -> None:
    """/metrics and the request middleware; call last, so the middleware sees every response."""
    metrics = Metrics()
    metrics.registry.register(LiveFigures(app, database))
    lock = threading.Lock()  # the collectors read app state; one scrape at a time

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics(request: Request) -> Response:
        """Prometheus text format. Bearer `metrics_token` when set; else for a private port."""
        if settings.metrics_token and not _token_ok(request, settings.metrics_token):
            return Response(
                "metrics need the metrics token\n",
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
                media_type="text/plain",
            )
        with lock:
            body = generate_latest(metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(RequestContext, metrics=metrics)


def _token_ok(request: Request, expected: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), expected)
