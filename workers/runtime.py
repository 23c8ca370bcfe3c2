"""What the alert jobs run with (database, rules, channels, queue), built once per process."""

from __future__ import annotations

import logging
import os
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from alerts.channels import Channel
from alerts.channels.email import OutboxMailer, SmtpMailer
from alerts.channels.sms import HttpSmsGateway, OutboxSms
from alerts.channels.webhook import WebhookSender
from alerts.rules import RuleBook
from config.settings import Settings, route_factors
from server.db.engine import make_engine
from server.db.unit_of_work import Clock, Database, utc_now
from server.services.alerts import AlertConfig
from workers.queue import AlertQueue, InlineAlertQueue, RqAlertQueue

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    database: Database
    config: AlertConfig
    channels: dict[str, Channel]
    queue: AlertQueue = field(init=False)


_current: Runtime | None = None
_pid: int | None = None


def install(runtime: Runtime) -> None:
    """The app (or a test) hands its runtime to the job functions of this process."""
    global _current, _pid
    _current, _pid = runtime, os.getpid()


def current() -> Runtime:
    """This process's runtime, built on first use. A forked work-horse inherits the one its
    worker built before the fork (see `after_fork`) instead of building its own per job."""
    if _current is None:
        install(build(Settings()))
    elif _pid != os.getpid():
        after_fork()
    assert _current is not None
    return _current


def after_fork() -> None:
    """In a forked child: keep the parent's settings, rules, channels and engine (its dialect
    already initialised), but not its pooled database connections. `dispose(close=False)`
    (SQLAlchemy's pattern for os.fork) gives this process a fresh pool without closing the
    parent's sockets, which would end the parent's sessions. The Redis client re-creates its
    pool by itself when it sees a new pid. The channels' HTTP clients are inherited with their
    TLS contexts (the costly part); their pools are empty, as a forking worker never sends."""
    global _pid
    if _current is not None and _pid != os.getpid():
        _current.database.engine.dispose(close=False)
        _pid = os.getpid()


def prepare_to_fork(runtime: Runtime) -> None:
    """In a worker that forks a work-horse per job: do once, before forking, what every job
    would otherwise repeat: import what sending imports lazily, map the ORM classes and let the
    dialect read the server's version and settings (one connection); then close that
    connection, so the children inherit none."""
    import email.policy  # noqa: F401  (EmailMessage imports it on first use: here, not per job)

    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.orm import configure_mappers

    configure_mappers()
    try:
        with runtime.database.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except DBAPIError as error:
        # Not fatal: the worker starts and its jobs retry as before; each work-horse then
        # initialises the dialect on its own first connection.
        log.warning("database not reachable at worker start: %s", error)
    runtime.database.engine.dispose()


def signing_secret(settings: Settings) -> str:
    """B40_ALERT_SIGNING_SECRET, or a random one kept in var/ (so links survive restarts)."""
    if settings.alert_signing_secret:
        return settings.alert_signing_secret
    path = Path(settings.outbox_dir).parent / "alert-signing.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def alert_config(settings: Settings) -> AlertConfig:
    with open(settings.alert_rules_file, "rb") as handle:
        book = RuleBook.from_mapping(tomllib.load(handle))
    return AlertConfig(
        book=book,
        base_url=settings.base_url,
        secret=signing_secret(settings),
        route_factors=route_factors(settings),
        lease_seconds=settings.alert_lease_seconds,
        ack_link_hours=settings.alert_ack_link_hours,
        sender=settings.alert_cap_sender,
        radius_km=settings.alert_cap_radius_km,
    )


def channels(settings: Settings, secret: str) -> dict[str, Channel]:
    outbox = Path(settings.outbox_dir)
    email: Channel = (
        SmtpMailer(settings.smtp_url, settings.alert_mail_from)
        if settings.smtp_url
        else OutboxMailer(outbox, settings.alert_mail_from)
    )
    sms: Channel = (
        HttpSmsGateway(settings.sms_gateway_url) if settings.sms_gateway_url else OutboxSms(outbox)
    )
    webhook = WebhookSender(secret, allow_private=settings.webhook_allow_private)
    return {"email": email, "sms": sms, "webhook": webhook}


def build(
    settings: Settings, *, database: Database | None = None, clock: Clock = utc_now
) -> Runtime:
    config = alert_config(settings)
    database = database or Database(make_engine(settings.database_url), clock=clock)
    runtime = Runtime(database=database, config=config, channels=channels(settings, config.secret))
    runtime.queue = make_queue(settings)
    if isinstance(runtime.queue, InlineAlertQueue):
        runtime.queue.runtime = runtime
    return runtime


def make_queue(settings: Settings) -> AlertQueue:
    intervals = list(settings.alert_retry_intervals)
    if settings.redis_url is None:
        return InlineAlertQueue(intervals)
    import redis

    return RqAlertQueue(
        redis.Redis.from_url(settings.redis_url),
        alert_queue_name(settings),
        intervals,
        job_timeout=settings.alert_job_timeout_seconds,
    )


def alert_queue_name(settings: Settings) -> str:
    return f"{settings.redis_prefix}:alerts"
