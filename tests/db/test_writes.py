"""insert_new: Core INSERTs of new rows built as ORM objects (the hot write paths)."""

from __future__ import annotations

from sqlalchemy import select

from config.settings import Settings
from server.db.engine import make_engine
from server.db.tables import IncidentRow, RequestItemRow, RequestRow, UserRow
from server.db.unit_of_work import Database, Tx
from server.db.writes import insert_new


def test_rows_get_their_own_ids_in_order_and_column_defaults_apply(database_url: str) -> None:
    database = Database(make_engine(Settings(database_url=database_url).database_url))

    def write(tx: Tx) -> tuple[RequestRow, list[RequestItemRow]]:
        user = UserRow(
            name="u", role="coordinator", city=None, token_hash="h" * 64, created_at=tx.now
        )
        insert_new(tx.session, [user])
        incident = IncidentRow(
            city="athens",
            kind="wildfire",
            title="t",
            lat=38.0,
            lon=23.7,
            severity="high",
            exercise=True,
            created_at=tx.now,
            created_by=user.id,
        )
        insert_new(tx.session, [incident])
        request = RequestRow(
            city="athens",
            incident_id=incident.id,
            priority="high",
            exercise=True,
            note=None,
            created_at=tx.now,
            created_by=user.id,
            cancelled_at=None,
        )
        insert_new(tx.session, [request])
        # `offered` and the other counters are left to their column defaults.
        items = [
            RequestItemRow(
                request_id=request.id,
                position=p,
                capability=c,
                quantity=q,
                substitutes=[],
                needed_by=None,
            )
            for p, (c, q) in enumerate([("GFFF", 3), ("MUSAR", 1), ("GFFF-V", 2)])
        ]
        insert_new(tx.session, items)
        return request, items

    request, items = database.run(write)
    stored = database.read(
        lambda s: list(
            s.scalars(select(RequestItemRow).where(RequestItemRow.request_id == request.id))
        )
    )
    assert {i.id: (i.position, i.capability, i.quantity) for i in items} == {
        s.id: (s.position, s.capability, s.quantity) for s in stored
    }
    assert len({i.id for i in items}) == 3
    assert all(s.offered == 0 and s.returned == 0 for s in stored)
    database.engine.dispose()


def test_one_event_and_the_new_chain_head_go_in_one_statement_on_postgresql(
    database_url: str,
) -> None:
    """append_events: a transaction's seqs (the counter row, locked), then on PostgreSQL the
    event and the head in one data-modifying CTE; SQLite has none, so two statements. Either
    way the chain verifies and the head is the event's hash."""
    from sqlalchemy import event as sa_event

    from server.db.audit import verify_log
    from server.db.tables import EventCounterRow, EventRow

    database = Database(make_engine(Settings(database_url=database_url).database_url))
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    def record(tx: Tx) -> None:
        tx.record("probe.made", "probe", 1, city=None, payload={"n": 1})
        sa_event.listen(database.engine, "before_cursor_execute", count)

    database.run(record)
    sa_event.remove(database.engine, "before_cursor_execute", count)
    appended = [s for s in statements if "event_counter" in s or "INSERT INTO events" in s]
    expected = 2 if database.engine.dialect.name == "postgresql" else 3
    assert len(appended) == expected, appended
    with database.sessions() as session:
        assert verify_log(session).ok
        head = session.get(EventCounterRow, 1)
        last = session.scalars(select(EventRow).order_by(EventRow.seq.desc())).first()
        assert head is not None
        assert last is not None
        assert (head.seq, head.head_hash) == (last.seq, last.hash)
    database.engine.dispose()


def test_a_row_and_its_children_go_in_one_statement_on_postgresql(database_url: str) -> None:
    """insert_with_children: the parent and its children in one data-modifying CTE on
    PostgreSQL (two INSERTs on SQLite); either way each object gets its own id, the children
    the parent's, and what was stored is what was built, column defaults included."""
    from datetime import UTC, datetime

    from sqlalchemy import event as sa_event

    from server.db.writes import insert_with_children

    database = Database(make_engine(Settings(database_url=database_url).database_url))
    later = datetime(2030, 1, 1, tzinfo=UTC)
    lines = [("GFFF", 3, ["GFFF-V"], later), ("MUSAR", 1, [], None), ("GFFF-V", 2, [], later)]
    inserts: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "WITH")):
            inserts.append(statement)

    def write(tx: Tx) -> tuple[RequestRow, list[RequestItemRow]]:
        user = UserRow(
            name="u", role="coordinator", city=None, token_hash="h" * 64, created_at=tx.now
        )
        incident = IncidentRow(
            city="athens", kind="wildfire", title="t", lat=38.0, lon=23.7, severity="high",
            exercise=True, created_at=tx.now, created_by=None,
        )  # fmt: skip
        insert_new(tx.session, [user])
        incident.created_by = user.id
        insert_new(tx.session, [incident])
        request = RequestRow(
            city="athens", incident_id=incident.id, priority="high", exercise=True, note="n",
            created_at=tx.now, created_by=user.id, cancelled_at=None,
        )  # fmt: skip
        # Built in the opposite order of their positions (ids are matched by the sentinel,
        # not by order), with the counters left out.
        items = [
            RequestItemRow(
                position=p, capability=c, quantity=q, substitutes=s, needed_by=n
            )  # fmt: skip
            for p, (c, q, s, n) in reversed(list(enumerate(lines)))
        ]
        sa_event.listen(database.engine, "before_cursor_execute", count)
        insert_with_children(tx.session, request, items, link="request_id", sentinel="position")
        sa_event.remove(database.engine, "before_cursor_execute", count)
        return request, items

    request, items = database.run(write)
    if database.engine.dialect.name == "postgresql":
        assert len(inserts) == 1, inserts
    assert all(i.request_id == request.id for i in items)
    stored = database.read(
        lambda s: {
            r.id: (r.request_id, r.position, r.capability, r.quantity, r.substitutes, r.needed_by)
            for r in s.scalars(
                select(RequestItemRow).where(RequestItemRow.request_id == request.id)
            )
        }
    )
    built = {
        i.id: (request.id, i.position, i.capability, i.quantity, i.substitutes, i.needed_by)
        for i in items
    }
    normalise = lambda v: v if v is None or v.tzinfo else v.replace(tzinfo=UTC)  # noqa: E731
    assert {k: (*v[:5], normalise(v[5])) for k, v in stored.items()} == built
    assert len(stored) == 3
    counters = database.read(
        lambda s: [
            (r.offered, r.accepted, r.arrived, r.released, r.returned)
            for r in s.scalars(
                select(RequestItemRow).where(RequestItemRow.request_id == request.id)
            )
        ]
    )
    assert counters == [(0, 0, 0, 0, 0)] * 3  # the columns' defaults, left to insert_with_children
    database.engine.dispose()
