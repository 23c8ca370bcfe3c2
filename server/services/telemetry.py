"""Figures read from the database when Prometheus scrapes: the log's head and alert deliveries.

Read from the rows, not counted in memory, because deliveries happen in worker processes and
every API process must report the same truth.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.db.alert_tables import AlertRow, DeliveryRow
from server.services.events import last_seq


@dataclass(frozen=True, slots=True)
class Figures:
    last_seq: int
    deliveries: dict[tuple[str, str], int]  # (channel, status) -> count
    oldest_pending_seconds: float  # age of the oldest delivery still being sent; 0 if none
    # channel -> {"0.5": s, "0.95": s, "1": s}: from the alert's creation to its channel's
    # acceptance, over deliveries sent in the last LATENCY_WINDOW
    delivery_latency: dict[str, dict[str, float]] = field(default_factory=dict)


LATENCY_WINDOW = timedelta(hours=1)
QUANTILES = (0.5, 0.95, 1.0)


def read_figures(session: Session, now: datetime) -> Figures:
    counts = session.execute(
        select(DeliveryRow.channel, DeliveryRow.status, func.count()).group_by(
            DeliveryRow.channel, DeliveryRow.status
        )
    ).all()
    oldest = session.scalar(
        select(func.min(DeliveryRow.created_at)).where(DeliveryRow.status == "sending")
    )
    age = 0.0
    if oldest is not None:
        if oldest.tzinfo is None:  # min() bypasses the column type on SQLite
            oldest = datetime.fromisoformat(str(oldest)).replace(tzinfo=now.tzinfo)
        age = max(0.0, (now - oldest).total_seconds())
    return Figures(
        last_seq=last_seq(session),
        deliveries={(str(c), str(s)): int(n) for c, s, n in counts},
        oldest_pending_seconds=age,
        delivery_latency=_latency(session, now),
    )


def _latency(session: Session, now: datetime) -> dict[str, dict[str, float]]:
    rows = session.execute(
        select(DeliveryRow.channel, DeliveryRow.sent_at, AlertRow.created_at)
        .join(AlertRow, AlertRow.id == DeliveryRow.alert_id)
        .where(DeliveryRow.status == "sent", DeliveryRow.sent_at >= now - LATENCY_WINDOW)
    ).all()
    seconds: dict[str, list[float]] = defaultdict(list)
    for channel, sent_at, created_at in rows:
        if sent_at is not None:
            seconds[str(channel)].append(max(0.0, (sent_at - created_at).total_seconds()))
    return {channel: _quantiles(sorted(values)) for channel, values in seconds.items()}


def _quantiles(ordered: list[float]) -> dict[str, float]:
    return {str(q): ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in QUANTILES}
