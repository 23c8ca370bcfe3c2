"""The audit chain over the event log: the record each hash covers, verification and export."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db.tables import EventCounterRow, EventRow
from server.domain.audit import FIELDS, ChainReport, verify_chain

EXPORT_PAGE = 1_000


def record_of(values: Mapping[str, Any]) -> dict[str, Any]:
    """The hashed fields of an event, `created_at` as ISO 8601 in UTC (microseconds kept)."""
    record = {f: values[f] for f in FIELDS}
    created: datetime = record["created_at"]
    record["created_at"] = created.astimezone(UTC).isoformat()
    record["exercise"] = bool(record["exercise"])
    return record


def export_record(row: EventRow) -> dict[str, Any]:
    """One line of the export: the hashed fields, then prev_hash and hash."""
    record = record_of({f: getattr(row, f) for f in FIELDS})
    return {**record, "prev_hash": row.prev_hash, "hash": row.hash}


def export_page(session: Session, after: int, limit: int = EXPORT_PAGE) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(EventRow).where(EventRow.seq > after).order_by(EventRow.seq).limit(limit)
    )
    return [export_record(r) for r in rows]


def iter_records(
    session: Session, after: int = 0, upto: int | None = None
) -> Iterator[dict[str, Any]]:
    """Every stored event after `after` (up to `upto`) in seq order, a page at a time."""
    while True:
        page = export_page(session, after)
        for record in page:
            if upto is not None and record["seq"] > upto:
                return
            yield record
        if len(page) < EXPORT_PAGE:
            return
        after = page[-1]["seq"]


def verify_log(session: Session) -> ChainReport:
    """Recompute the whole chain and compare its end with the counter row (seq and head).

    Stops at the counter's seq as read first, so events committed meanwhile do not count.
    """
    counter = session.get(EventCounterRow, 1)
    upto = counter.seq if counter is not None else None
    return verify_chain(
        iter_records(session, 0, upto),
        expected_last_seq=upto,
        expected_head=counter.head_hash if counter is not None else None,
    )
