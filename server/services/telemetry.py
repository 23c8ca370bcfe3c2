"""Figures read from the database when Prometheus scrapes: the log's head and alert deliveries.

Read from the rows, not counted in memory, because deliveries happen in worker processes and
every API process must report the same truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.db.alert_tables import DeliveryRow
from server.services.events import last_seq


@dataclass(frozen=True, slots=True)
class Figures:
    last_seq: int
    deliveries: dict[tuple[str, str], int]  # (channel, status) -> count
    oldest_pending_seconds: float  # age of the oldest delivery still being sent; 0 if none


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
    )
