"""RQ entry points: thin, idempotent, addressed by ids; each calls the alert use cases."""

from __future__ import annotations

import logging
from typing import Any

from server.services import alerts
from workers import runtime
from workers.runtime import Runtime

log = logging.getLogger(__name__)


def deliver_alert(alert_id: int, channel: str, rt: Runtime | None = None) -> str:
    """Send one alert through one channel at most once: the delivery row is checked (and
    leased) before sending and marked after."""
    rt = rt or runtime.current()
    outgoing = rt.database.run(lambda tx: alerts.claim_delivery(tx, alert_id, channel, rt.config))
    if outgoing is None:
        return "nothing to send"
    try:
        receipt = rt.channels[channel].send(outgoing)
    except Exception as error:
        message = f"{type(error).__name__}: {error}"
        rt.database.run(lambda tx: alerts.record_attempt_failed(tx, alert_id, channel, message))
        raise
    timers = rt.database.run(
        lambda tx: alerts.record_sent(tx, alert_id, channel, receipt, rt.config)
    )
    rt.queue.escalate(timers)
    return receipt


def escalate_alert(alert_id: int, rt: Runtime | None = None) -> int:
    rt = rt or runtime.current()
    sends = rt.database.run(lambda tx: alerts.escalate(tx, alert_id, rt.config))
    rt.queue.deliver(sends)
    return len(sends)


def delivery_failed(job: Any, connection: Any, exc_type: Any, exc: Any, tb: Any) -> None:
    """RQ on_failure callback: runs after every failed attempt; acts on the last one only."""
    if job.retries_left:
        return
    alert_id, channel = job.args
    record_final_failure(alert_id, channel, exc)


def record_final_failure(
    alert_id: int, channel: str, error: BaseException | None, rt: Runtime | None = None
) -> None:
    if isinstance(error, alerts.DeliveryBusy):
        return  # the attempt holding the lease decides; the redelivery sweep covers a dead one
    rt = rt or runtime.current()
    text = f"{type(error).__name__}: {error}" if error is not None else "failed"
    timers = rt.database.run(lambda tx: alerts.record_failed(tx, alert_id, channel, text))
    rt.queue.escalate(timers)


def noop() -> None:
    """The benchmark's baseline: a job that does nothing."""
    return None
