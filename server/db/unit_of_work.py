"""One use case = one transaction: Database.run(fn) begins, runs, records events, commits once."""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Engine, Table, bindparam, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from server.db.audit import record_of
from server.db.engine import READ_ONLY
from server.db.tables import EventCounterRow, EventRow, IdempotencyRow
from server.domain.audit import event_hash
from server.domain.errors import Conflict, InvalidInput
from server.domain.model import Actor

log = logging.getLogger(__name__)
T = TypeVar("T")
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class PendingEvent:
    type: str
    entity: str
    entity_id: str
    city: str | None
    payload: dict[str, Any]
    exercise: bool


@dataclass(slots=True)
class Tx:
    """What a use case sees: the session, the time, who acts, and where to record events."""

    session: Session
    now: datetime
    actor: Actor | None
    events: list[PendingEvent] = field(default_factory=list)

    def record(
        self,
        type: str,
        entity: str,
        entity_id: int | str,
        *,
        city: str | None,
        payload: dict[str, Any],
        exercise: bool = False,
    ) -> None:
        self.events.append(PendingEvent(type, entity, str(entity_id), city, payload, exercise))


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """An Idempotency-Key with what it was sent with."""

    user_id: int
    key: str
    method: str
    path: str
    body: bytes

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for part in (self.method.encode(), self.path.encode(), self.body):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
        return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: dict[str, Any]
    replayed: bool


AfterCommit = Callable[[int], None]
# The event rows a transaction wrote, as written (seq, type, ..., payload, created_at), handed
# over after its commit.
EventRows = list[dict[str, Any]]
AfterCommitRows = Callable[[EventRows], None]


class Database:
    """The unit-of-work factory: the only place that commits."""

    def __init__(self, engine: Engine, clock: Clock = utc_now) -> None:
        self.engine = engine
        self.clock = clock
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        single: dict[str, Any] = {READ_ONLY: True}
        if engine.dialect.name == "postgresql":
            single["isolation_level"] = "AUTOCOMMIT"
        self._single_statements = engine.execution_options(**single)
        self._after_commit: list[AfterCommitRows] = []
        self.events_appended = 0  # by this process, for /metrics
        self._appended_lock = threading.Lock()

    def on_commit(self, callback: AfterCommit) -> None:
        """Called with the last seq after a transaction that recorded events commits."""
        self.on_commit_rows(lambda rows: callback(int(rows[-1]["seq"])))

    def on_commit_rows(self, callback: AfterCommitRows) -> None:
        """Called with the event rows themselves after a transaction that recorded some commits
        (the relay hands them on without reading them back)."""
        self._after_commit.append(callback)

    def run(self, fn: Callable[[Tx], T], *, actor: Actor | None = None) -> T:
        """Run a use case in one transaction; run it again when it was rolled back whole: the
        database chose it as the victim of a deadlock or a serialisation failure, or its
        connection was found dead before COMMIT was sent (engine.py: no pre-ping)."""
        for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
            try:
                return self._run_once(fn, actor)
            except _LostBeforeCommit as lost:
                if attempt == TRANSIENT_ATTEMPTS:
                    raise lost.error from None
                log.info("transaction run again on a new connection after %s", lost.error.orig)
            except DBAPIError as error:
                if attempt == TRANSIENT_ATTEMPTS or not is_transient(error):
                    raise
                log.info("transaction retried after %s (attempt %d)", error.orig, attempt)
                time.sleep(random.uniform(0.005, 0.05) * attempt)
        raise AssertionError("unreachable")

    def _run_once(self, fn: Callable[[Tx], T], actor: Actor | None) -> T:
        committing = False
        try:
            with self.sessions() as session, session.begin():
                tx = Tx(session=session, now=self.clock(), actor=actor)
                result = fn(tx)
                rows = append_events(session, tx)
                committing = True
        except DBAPIError as error:
            # A transaction commits only on COMMIT: lost before it, nothing was written. Lost
            # during COMMIT, the outcome is unknown, and the error goes to the caller (503).
            if error.connection_invalidated and not committing:
                raise _LostBeforeCommit(error) from error
            raise
        if rows:
            with self._appended_lock:
                self.events_appended += len(rows)
            self._notify(rows)
        return result

    def read(self, fn: Callable[[Session], T]) -> T:
        """A read-only transaction: every read in one snapshot, never a write lock.

        PostgreSQL: REPEATABLE READ (one snapshot for the whole transaction, not per
        statement). SQLite: a deferred BEGIN over WAL, which is a snapshot too (engine.py).
        """
        options: dict[str, Any] = {READ_ONLY: True}
        if self.engine.dialect.name == "postgresql":
            options["isolation_level"] = "REPEATABLE READ"

        def in_session() -> T:
            with self.sessions() as session, session.begin():
                session.connection(execution_options=options)
                return fn(session)

        return _again_if_connection_lost(in_session)

    def read_one(self, fn: Callable[[Connection], T]) -> T:
        """A read that is a single SELECT, on a plain connection: no Session, no transaction
        block on PostgreSQL (a statement sees one snapshot by itself), so no BEGIN and COMMIT
        round trips. For the reads that run on every request and every commit: authentication
        and the board's log reads."""
        return _again_if_connection_lost(lambda: self._read_one_once(fn))

    def _read_one_once(self, fn: Callable[[Connection], T]) -> T:
        with self._single_statements.connect() as connection:
            return fn(connection)

    def run_idempotent(
        self,
        fn: Callable[[Tx], tuple[int, dict[str, Any]]],
        *,
        actor: Actor,
        claim: IdempotencyClaim | None,
    ) -> StoredResponse:
        """Run a creating use case once per Idempotency-Key; a retry gets the first answer."""
        if claim is None:
            status, body = self.run(fn, actor=actor)
            return StoredResponse(status, body, replayed=False)
        try:
            return self.run(lambda tx: _claim_then_run(tx, claim, fn), actor=actor)
        except IntegrityError as error:
            # A concurrent request with the same key committed first; answer as it did.
            stored = self.read(lambda s: _stored(s, claim))
            if stored is None:
                raise error
            return stored

    def _notify(self, rows: EventRows) -> None:
        for callback in self._after_commit:
            try:
                callback(rows)
            except Exception:  # best effort: the relay re-reads the log anyway
                log.exception("after-commit callback failed")


def _again_if_connection_lost(read: Callable[[], T]) -> T:
    """Run a read; run it once more if its pooled connection was dead (the database
    restarted, a backend was terminated): the pool has dropped it and its elders."""
    for attempt in (1, 2):
        try:
            return read()
        except DBAPIError as error:
            if attempt == 2 or not error.connection_invalidated:
                raise
    raise AssertionError("unreachable")


class _LostBeforeCommit(Exception):
    """The connection died before COMMIT was sent: the transaction did not happen."""

    def __init__(self, error: DBAPIError) -> None:
        super().__init__(str(error))
        self.error = error


TRANSIENT_ATTEMPTS = 3
# PostgreSQL's deadlock_detected and serialization_failure: the transaction was rolled back
# whole and may simply run again.
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})


def is_transient(error: DBAPIError) -> bool:
    return getattr(error.orig, "sqlstate", None) in TRANSIENT_SQLSTATES


# Core statements built once, run on the session's connection: this runs in every writing
# transaction, and the ORM's per-object bookkeeping, building a statement and computing its
# cache key cost more than the SQL (a statement object keeps its cache key once computed).
_COUNTER = cast(Table, EventCounterRow.__table__)
_TAKE_SEQS = (
    update(_COUNTER)
    .where(_COUNTER.c.id == 1)
    .values(seq=_COUNTER.c.seq + bindparam("count"))
    .returning(_COUNTER.c.seq, _COUNTER.c.head_hash)
)
_SET_HEAD = update(_COUNTER).where(_COUNTER.c.id == 1).values(head_hash=bindparam("head"))
_EVENTS = cast(Table, EventRow.__table__)
_INSERT_EVENTS = insert(_EVENTS)
# PostgreSQL: one event (most transactions record one) and the new chain head in a single
# statement, a data-modifying CTE; a round trip fewer on every write. SQLite has no such CTE.
_APPEND_ONE = (
    update(_COUNTER)
    .where(_COUNTER.c.id == 1)
    .values(head_hash=bindparam("head"))
    .add_cte(
        insert(_EVENTS)
        .values({c.key: bindparam(f"new_{c.key}") for c in _EVENTS.columns})
        .returning(_EVENTS.c.seq)
        .cte("new_event")
    )
)


def append_events(session: Session, tx: Tx) -> EventRows:
    """Give the transaction's events their seqs and chain hashes, write them; return the rows.

    The counter row's lock is held from here to commit, so seqs become visible in commit
    order with no gaps (an auto-increment would not: 11 can commit before 10). It is taken
    last, so the lock is held for as short a time as possible. The chain head lives in the
    same row, so the hash chain follows commit order too (docs/security.md).
    """
    if not tx.events:
        return []
    count = len(tx.events)
    # The use case's pending ORM changes go out first, so the counter's lock is not held
    # while they are written (a Core statement on the connection does not autoflush).
    session.flush()
    connection = session.connection()
    last, head = connection.execute(_TAKE_SEQS, {"count": count}).one()
    first = last - count + 1
    actor = tx.actor
    rows: list[dict[str, Any]] = []
    for i, e in enumerate(tx.events):
        row: dict[str, Any] = {
            "seq": first + i,
            "type": e.type,
            "entity": e.entity,
            "entity_id": e.entity_id,
            "city": e.city,
            "actor_id": actor.user_id if actor else None,
            "actor_name": actor.name if actor else None,
            "exercise": e.exercise,
            "payload": e.payload,
            "created_at": tx.now,
            "prev_hash": head,
        }
        head = event_hash(head, record_of(row))
        row["hash"] = head
        rows.append(row)
    if len(rows) == 1 and connection.dialect.name == "postgresql":
        connection.execute(
            _APPEND_ONE, {"head": head} | {f"new_{k}": v for k, v in rows[0].items()}
        )
    else:
        connection.execute(_INSERT_EVENTS, rows)
        connection.execute(_SET_HEAD, {"head": head})
    tx.events.clear()
    return rows


def _stored(session: Session, claim: IdempotencyClaim) -> StoredResponse | None:
    row = session.scalars(
        select(IdempotencyRow).where(
            IdempotencyRow.user_id == claim.user_id, IdempotencyRow.key == claim.key
        )
    ).one_or_none()
    if row is None:
        return None
    if row.fingerprint != claim.fingerprint:
        raise InvalidInput(
            "this Idempotency-Key was already used with a different request body",
            field="Idempotency-Key",
        )
    return StoredResponse(row.status_code, row.response, replayed=True)


def _claim_then_run(
    tx: Tx, claim: IdempotencyClaim, fn: Callable[[Tx], tuple[int, dict[str, Any]]]
) -> StoredResponse:
    stored = _stored(tx.session, claim)
    if stored is not None:
        return stored
    # Insert the key before the work: a concurrent twin blocks on the unique index here,
    # then fails and replays our answer instead of doing the work again.
    row = IdempotencyRow(
        user_id=claim.user_id,
        key=claim.key,
        method=claim.method,
        path=claim.path,
        fingerprint=claim.fingerprint,
        status_code=0,
        response={},
        created_at=tx.now,
    )
    tx.session.add(row)
    tx.session.flush()
    status, body = fn(tx)
    row.status_code = status
    row.response = body
    return StoredResponse(status, body, replayed=False)


__all__ = ["Conflict", "Database", "IdempotencyClaim", "StoredResponse", "Tx", "utc_now"]


def rows_changed(result: object) -> int:
    """Rows an UPDATE matched (SQLAlchemy types execute() as Result; DML returns CursorResult)."""
    from sqlalchemy import CursorResult

    assert isinstance(result, CursorResult)
    return int(result.rowcount)
