"""Reading the event log: the audit trail and the single source for the board and alerts."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Connection, Table, func, select
from sqlalchemy.orm import Session

from server.db.tables import EventCounterRow, EventRow
from server.services.views import iso


def event_view(row: Any) -> dict[str, Any]:
    """An event as the API and the board show it, from an `EventRow` or a plain row of it."""
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


def events_after(session: Session | Connection, after: int, limit: int) -> list[dict[str, Any]]:
    # Plain rows, not ORM objects: the relay runs this after every commit, and the event log
    # is append-only, so there is nothing to track.
    events = cast(Table, EventRow.__table__)
    rows = session.execute(
        select(events).where(events.c.seq > after).order_by(events.c.seq).limit(limit)
    )
    return [event_view(r) for r in rows]


def last_seq(session: Session | Connection) -> int:
    """The highest committed seq (the counter row, read without a lock)."""
    value = session.scalar(select(EventCounterRow.seq).where(EventCounterRow.id == 1))
    if value is None:
        value = session.scalar(select(func.max(EventRow.seq))) or 0
    return int(value)
