"""The audit trail export (admins and coordinators): the hash-chained event log as NDJSON."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from server.api.deps import CurrentActor, Db
from server.services import audit

router = APIRouter(prefix="/audit", tags=["audit"])
NDJSON = "application/x-ndjson"


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One JSON event per line, in seq order, with prev_hash and hash "
            "(verify with `b40 audit verify --file`).",
            "content": {NDJSON: {"schema": {"type": "string"}}},
        }
    },
)
def export_audit_log(
    actor: CurrentActor,
    database: Db,
    after: Annotated[int, Query(ge=0, le=2**53, description="Start after this seq.")] = 0,
) -> StreamingResponse:
    audit.require_auditor(actor)
    upto = database.read(audit.committed_seq)
    return StreamingResponse(
        audit.export_lines(database, after, upto),
        media_type=NDJSON,
        headers={"X-Audit-Last-Seq": str(upto)},
    )
