"""On SQLite, writers serialise (BEGIN IMMEDIATE) but reads never wait for them."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import text

from server.db.engine import make_engine
from server.db.unit_of_work import Database, Tx


def test_a_read_does_not_wait_for_a_writer_holding_the_lock(sqlite_url: str) -> None:
    database = Database(make_engine(sqlite_url))
    holding, release = threading.Event(), threading.Event()

    def long_write(tx: Tx) -> None:
        tx.session.execute(text("UPDATE event_counter SET seq = seq"))
        holding.set()
        assert release.wait(30)

    writer = threading.Thread(target=lambda: database.run(long_write))
    writer.start()
    assert holding.wait(10)
    try:
        # Runs while the writer holds SQLite's write lock; with BEGIN IMMEDIATE for reads too
        # this would block until busy_timeout (30 s).
        count = database.read(lambda s: s.execute(text("SELECT count(*) FROM cities")).scalar())
        assert count == 60
        second_writer_done = threading.Event()
        threading.Thread(
            target=lambda: (
                database.run(
                    lambda tx: tx.session.execute(text("UPDATE event_counter SET seq = seq"))
                ),
                second_writer_done.set(),
            )
        ).start()
        assert not second_writer_done.wait(0.5), "a second writer waits for the first"
    finally:
        release.set()
        writer.join(30)
    assert second_writer_done.wait(30)
    database.engine.dispose()


def test_a_read_is_one_snapshot_even_when_a_commit_lands_between_its_statements(
    database_url: str,
) -> None:
    """The board snapshot relies on it: its seq and its rows must be one picture."""
    from config.settings import Settings

    database = Database(make_engine(Settings(database_url=database_url).database_url))
    count = "SELECT count(*) FROM events"

    def record(tx: Tx) -> None:
        tx.record("probe.made", "probe", 1, city=None, payload={})

    def two_reads(session: Any) -> tuple[int, int]:
        first = session.execute(text(count)).scalar()
        committer = threading.Thread(target=lambda: database.run(record))
        committer.start()
        committer.join(30)
        return first, session.execute(text(count)).scalar()

    first, second = database.read(two_reads)
    assert first == second, "the commit made meanwhile is not visible inside the read"
    assert database.read(lambda s: s.execute(text(count)).scalar()) == first + 1
    database.engine.dispose()


def test_a_single_statement_read_runs_outside_a_transaction_block_and_sees_the_latest_commit(
    pg_url: str,
) -> None:
    """Authentication and the board's log reads are single SELECTs: on PostgreSQL they run in
    autocommit (no BEGIN and COMMIT round trips), and a statement is one snapshot by itself."""
    import psycopg

    from config.settings import Settings

    database = Database(make_engine(Settings(database_url=pg_url).database_url))

    def record(tx: Tx) -> None:
        tx.record("probe.made", "probe", 1, city=None, payload={})

    def count_and_state(connection: Any) -> tuple[int, Any]:
        value = connection.execute(text("SELECT count(*) FROM events")).scalar()
        return value, connection.connection.dbapi_connection.info.transaction_status

    before, state = database.read_one(count_and_state)
    assert state == psycopg.pq.TransactionStatus.IDLE, "no transaction block was opened"
    database.run(record)
    after, _ = database.read_one(count_and_state)
    assert after == before + 1
    # The connection goes back to the pool as it came: the next read is a snapshot again.
    _, state = database.read(lambda s: count_and_state(s.connection()))
    assert state == psycopg.pq.TransactionStatus.INTRANS
    database.engine.dispose()
