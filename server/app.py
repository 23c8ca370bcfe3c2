"""The composition root: settings in, a wired FastAPI app out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from config.settings import Settings, route_factors
from server.api import (
    alerts,
    allocations,
    audit,
    errors,
    events,
    incidents,
    observability,
    offers,
    reference,
    reports,
    requests,
    resources,
    users,
)
from server.api.limits import BodySizeLimit
from server.api.ratelimit import RateLimit, make_buckets, rate_limits
from server.board import socket as board_socket
from server.board.hub import Hub
from server.board.transport import make_transport
from server.db.engine import make_engine
from server.db.migrate import require_migrated, upgrade
from server.db.unit_of_work import Clock, Database, utc_now
from server.services.credentials import REVOKED, TokenCache
from server.services.demo import load_demo
from server.services.users import ensure_admin_token
from workers.pipeline import AlertPipeline
from workers.relay import Relay
from workers.runtime import build as build_alert_runtime

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "board" / "static"
API_PREFIX = "/api/v1"


def prepare_database(settings: Settings) -> None:
    """Embedded default: migrate on start. Elsewhere: refuse an un-migrated database."""
    if settings.is_sqlite:
        upgrade(settings.database_url)
        return
    engine = make_engine(settings.database_url, pool_size=1, max_overflow=0)
    try:
        require_migrated(engine, settings.database_url)
    finally:
        engine.dispose()


def create_app(
    settings: Settings | None = None, *, clock: Clock = utc_now, prepare: bool = True
) -> FastAPI:
    settings = settings or Settings()
    if prepare:
        prepare_database(settings)
    engine = make_engine(settings.database_url)
    database = Database(engine, clock=clock)
    rate_buckets = make_buckets(settings.redis_url, settings.redis_prefix)
    # Alerts (docs/alerts.md): the planner reads the log after each commit and every tick;
    # jobs go to RQ with B40_REDIS_URL, else run in-process (e-mails land in the outbox).
    alert_runtime = build_alert_runtime(settings, database=database)
    alert_pipeline = AlertPipeline(
        alert_runtime,
        tick_seconds=settings.alert_tick_seconds,
        redeliver_after_seconds=settings.alert_redeliver_after_seconds,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.admin_token:
            token = settings.admin_token
            refused = database.run(lambda tx: ensure_admin_token(tx, token))
            if refused:
                log.warning(refused)
        if settings.demo_enabled:
            load_demo(database, route_factors=route_factors(settings))
        # The live board: relay (log -> transport) and hub (transport -> boards), docs/board.md.
        transport = make_transport(settings.redis_url, settings.redis_prefix)
        hub = Hub(database, transport, check_seconds=settings.board_check_seconds)
        relay = Relay(
            database,
            transport,
            poll_seconds=settings.relay_poll_seconds,
            deliver_locally=hub.deliver_local,
        )
        app.state.board_hub = hub
        hub.watch(REVOKED, lambda event: tokens.on_events([event]))  # other processes' too
        app.state.event_relay = relay  # read by /metrics (relay lag)
        await hub.start()
        await relay.start()
        if settings.alert_pipeline:
            alert_pipeline.start()
        yield
        alert_pipeline.stop()
        alert_runtime.queue.close()
        await relay.stop()
        await hub.stop()
        await transport.close()
        await rate_buckets.close()
        engine.dispose()

    app = FastAPI(
        title="B40 Mutual Aid",
        version="1.0.0",
        description="Crisis coordination and mutual-aid dispatch, B40 Balkan Cities Network.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.database = database
    tokens = TokenCache()
    database.on_commit_rows(tokens.on_events)  # this process's revocations, before replying
    app.state.tokens = tokens
    app.state.alert_config = alert_runtime.config
    app.state.alert_queue = alert_runtime.queue
    app.state.board_options = board_socket.BoardOptions(
        heartbeat_seconds=settings.board_heartbeat_seconds,
        buffer_events=settings.board_buffer_events,
    )
    app.include_router(board_socket.router)
    errors.install(app)
    for module in (reference, resources, incidents, requests, offers, events, users, allocations):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(audit.router, prefix=API_PREFIX)
    app.include_router(alerts.router, prefix=API_PREFIX)
    app.include_router(reports.router, prefix=API_PREFIX)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers. Public."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """Readiness: the database (and Redis, when configured) answer."""
        checks: dict[str, Any] = {}
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as error:  # any failure means not ready
            checks["database"] = f"down: {type(error).__name__}"
        if settings.redis_url:
            checks["redis"] = _redis_check(settings.redis_url)
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get("/", include_in_schema=False)
    @app.get("/board", include_in_schema=False)
    def board_page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if settings.rate_limit_enabled:
        app.add_middleware(RateLimit, limits=rate_limits(settings), buckets=rate_buckets)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    observability.install(app, settings, database)  # last: its middleware sees every response
    return app


def _redis_check(url: str) -> str:
    import redis

    try:
        redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1).ping()
        return "ok"
    except Exception as error:
        return f"down: {type(error).__name__}"
