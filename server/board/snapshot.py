"""A board's start without `after`: the current picture, tagged with the seq it reflects."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from sqlalchemy import inspect, select, text
from sqlalchemy.orm import Session

from server.board.frames import snapshot_frame
from server.db.tables import DeploymentRow, IncidentRow, OfferRow, ResourceRow
from server.db.unit_of_work import Database
from server.domain.model import LineStatus
from server.domain.status import DeploymentStatus, OfferStatus, UnitStatus
from server.services.events import last_seq
from server.services.requests import list_requests
from server.services.views import deployment_view, incident_view, offer_view, resource_view

OPEN_REQUEST_STATUSES = frozenset({LineStatus.OPEN.value, LineStatus.PARTIALLY_FILLED.value})
RECENT_ALERTS = 50
MAX_INCIDENTS = 500


def read_snapshot(session: Session, now: datetime) -> dict[str, Any]:
    """Every read in one database snapshot, so the picture is exactly the log up to `seq`.

    Call it through Database.read, whose transaction is one snapshot on both back-ends
    (REPEATABLE READ on PostgreSQL, a deferred BEGIN over WAL on SQLite).
    """
    seq = last_seq(session)
    requests, _ = list_requests(
        session, now=now, city=None, status=None, exercise=None, limit=100_000, offset=0
    )
    incidents = session.scalars(
        select(IncidentRow).order_by(IncidentRow.id.desc()).limit(MAX_INCIDENTS)
    )
    units = session.scalars(
        select(ResourceRow)
        .where(ResourceRow.status != UnitStatus.AVAILABLE.value)
        .order_by(ResourceRow.id)
    )
    deployments = session.scalars(
        select(DeploymentRow)
        .where(DeploymentRow.status != DeploymentStatus.RETURNED.value)
        .order_by(DeploymentRow.id)
    )
    offers = session.scalars(
        select(OfferRow).where(OfferRow.status == OfferStatus.PENDING.value).order_by(OfferRow.id)
    )
    return {
        "seq": seq,
        "at": now.isoformat(),
        "incidents": [incident_view(r) for r in incidents],
        "requests": [r for r in requests if r["status"] in OPEN_REQUEST_STATUSES],
        "units": [resource_view(r) for r in units],
        "deployments": [deployment_view(r) for r in deployments],
        "offers": [offer_view(r) for r in offers],
        "alerts": recent_alerts(session),
    }


def recent_alerts(session: Session) -> list[dict[str, Any]]:
    """The alerts table belongs to another part of the system and may not exist yet."""
    connection = session.connection()
    inspector = inspect(connection)
    if not inspector.has_table("alerts"):
        return []
    columns = {c["name"] for c in inspector.get_columns("alerts")}
    order = next((c for c in ("id", "created_at") if c in columns), None)
    order_by = f" ORDER BY {order} DESC" if order else ""
    rows = connection.execute(
        text(f"SELECT * FROM alerts{order_by} LIMIT {RECENT_ALERTS}")
    ).mappings()
    return [{k: _plain(v) for k, v in row.items()} for row in rows]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


class SharedSnapshot:
    """Boards that connect together share one snapshot read and its encoding.

    Only a read in flight is shared: a board that arrives while one runs waits for it instead
    of starting its own (a reconnect storm of 120 boards made 120 reads of every open request,
    and the encodings ran on the event loop). The picture may then be older than the board's
    subscription; its session reads the difference from the log (`BoardSession._send`).
    """

    def __init__(self, read: Callable[[], tuple[int, str]]) -> None:
        self._read = read
        self._reading: asyncio.Future[tuple[int, str]] | None = None

    @classmethod
    def of(cls, database: Database) -> SharedSnapshot:
        def read() -> tuple[int, str]:
            snapshot = database.read(lambda s: read_snapshot(s, database.clock()))
            return int(snapshot["seq"]), snapshot_frame(snapshot)  # encoded off the loop

        return cls(read)

    async def get(self) -> tuple[int, str]:
        """(seq, frame): the snapshot and the seq it reflects."""
        reading = self._reading
        if reading is None:
            reading = self._reading = asyncio.ensure_future(asyncio.to_thread(self._read))
            reading.add_done_callback(self._finished)
        # shield: a board that leaves meanwhile must not cancel the read the others wait for
        return await asyncio.shield(reading)

    def _finished(self, reading: asyncio.Future[tuple[int, str]]) -> None:
        if self._reading is reading:
            self._reading = None
        if not reading.cancelled():
            reading.exception()  # retrieved here too: no "never retrieved" warning if all left
