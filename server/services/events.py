"""Reading the event log: the audit trail and the single source for the board and alerts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.db.tables import EventCounterRow, EventRow
from server.services.views import iso


def event_view(row: EventRow) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "type": row.type,
        "entity": row.entity,
        "entity_id": row.entity_id,
        "city": row.city,
        "actor": {"id": row.actor_id, "name": row.actor_name} if row.actor_id is not None else None,
        "exercise": row.exercise,
        "payload": row.payload,
        "created_at": iso(row.created_at),
    }


def events_after(session: Session, after: int, limit: int) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(EventRow).where(EventRow.seq > after).order_by(EventRow.seq).limit(limit)
    )
    return [event_view(r) for r in rows]


def last_seq(session: Session) -> int:
    """The highest committed seq (the counter row, read without a lock)."""
    value = session.scalar(select(EventCounterRow.seq).where(EventCounterRow.id == 1))
    if value is None:
        value = session.scalar(select(func.max(EventRow.seq))) or 0
    return int(value)
