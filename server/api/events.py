"""The event log, paged by seq."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from server.api.deps import CurrentActor, Db
from server.services.events import events_after, last_seq

router = APIRouter(tags=["events"])


@router.get("/events")
def get_events(
    actor: CurrentActor,
    database: Db,
    after: Annotated[int, Query(ge=0, le=2**53)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    def read(session: Any) -> dict[str, Any]:
        items = events_after(session, after, limit)
        return {
            "items": items,
            "after": after,
            "next_after": items[-1]["seq"] if items else after,
            "last_seq": last_seq(session),
        }

    return database.read(read)
