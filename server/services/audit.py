"""The audit trail: who may export it, the export stream, and verification of the chain."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db.audit import export_page, verify_log
from server.db.tables import EventCounterRow
from server.db.unit_of_work import Database
from server.domain.audit import ChainReport
from server.domain.model import Actor, Role
from server.domain.policy import require_role

AUDITORS = frozenset({Role.ADMIN, Role.COORDINATOR})


def require_auditor(actor: Actor) -> None:
    require_role(actor, AUDITORS, "exporting the audit log")


def committed_seq(session: Session) -> int:
    return int(session.scalar(select(EventCounterRow.seq).where(EventCounterRow.id == 1)) or 0)


def export_lines(database: Database, after: int, upto: int) -> Iterator[bytes]:
    """NDJSON lines for seqs after `after` up to `upto`, read a page per short transaction.

    The log is append-only, so pages read at different moments still form one consistent
    prefix; `upto` (the committed seq when the export began) keeps later commits out.
    """
    while after < upto:
        page = database.read(partial(export_page, after=after))
        if not page:
            return
        for record in page:
            if record["seq"] > upto:
                return
            yield json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        after = page[-1]["seq"]


def verify(database: Database) -> ChainReport:
    return database.read(verify_log)
