"""A use case chosen as a deadlock victim is rolled back whole and run again, not failed."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import text

from config.settings import Settings
from server.db.engine import make_engine
from server.db.unit_of_work import Database, Tx


def test_deadlock_victim_is_retried_and_both_commit(pg_url: str) -> None:
    database = Database(make_engine(Settings(database_url=pg_url).database_url))
    with database.engine.begin() as connection:
        connection.execute(text("CREATE TABLE tug (id int PRIMARY KEY, pulls int NOT NULL)"))
        connection.execute(text("INSERT INTO tug VALUES (1, 0), (2, 0)"))
    barrier = threading.Barrier(2, timeout=10)
    attempts = {"a": 0, "b": 0}
    errors: list[BaseException] = []

    def pull(name: str, first: int, second: int) -> Any:
        def use_case(tx: Tx) -> None:
            attempts[name] += 1
            tx.session.execute(text("UPDATE tug SET pulls = pulls + 1 WHERE id = :i"), {"i": first})
            if attempts[name] == 1:
                barrier.wait()  # both hold their first row: the opposite order deadlocks
            tx.session.execute(
                text("UPDATE tug SET pulls = pulls + 1 WHERE id = :i"), {"i": second}
            )
            tx.record("tug.pulled", "tug", name, city=None, payload={"by": name})

        def run() -> None:
            try:
                database.run(use_case)
            except BaseException as error:  # collected for the assertion below
                errors.append(error)

        return threading.Thread(target=run)

    threads = [pull("a", 1, 2), pull("b", 2, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(attempts.values()) == [1, 2], "one victim, run once more"
    with database.engine.connect() as connection:
        pulls = connection.execute(text("SELECT pulls FROM tug ORDER BY id")).scalars().all()
        tugs = connection.execute(
            text("SELECT count(*) FROM events WHERE type = 'tug.pulled'")
        ).scalar()
    assert pulls == [2, 2], "each committed exactly once"
    assert tugs == 2
    database.engine.dispose()


def _terminate(pg_url: str, pids: list[int]) -> None:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_use_case_whose_connection_dies_before_commit_runs_again_once(pg_url: str) -> None:
    """No pre-ping (engine.py): a connection lost mid-transaction committed nothing, so the
    use case runs again on a new one and commits exactly once; the caller sees no error."""
    database = Database(make_engine(Settings(database_url=pg_url).database_url))
    with database.engine.begin() as connection:
        connection.execute(text("CREATE TABLE tally (n int NOT NULL)"))
    attempts = 0

    def use_case(tx: Tx) -> None:
        nonlocal attempts
        attempts += 1
        tx.session.execute(text("INSERT INTO tally VALUES (1)"))
        if attempts == 1:  # the server goes away under this transaction
            _terminate(pg_url, [tx.session.execute(text("SELECT pg_backend_pid()")).scalar_one()])
        tx.record("tally.counted", "tally", 1, city=None, payload={})

    database.run(use_case)
    assert attempts == 2
    with database.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM tally")).scalar() == 1
        counted = "SELECT count(*) FROM events WHERE type = 'tally.counted'"
        assert connection.execute(text(counted)).scalar() == 1
    database.engine.dispose()


def test_reads_and_writes_after_every_pooled_connection_was_terminated(pg_url: str) -> None:
    """What a database restart does to the pool: every connection in it is dead."""
    database = Database(make_engine(Settings(database_url=pg_url).database_url))
    pid = "SELECT pg_backend_pid()"
    pids: set[int] = set()

    def hold_three(tx: Tx) -> None:  # three connections at once, so three go back to the pool
        with database.engine.connect() as a, database.engine.connect() as b:
            pids.update({a.execute(text(pid)).scalar_one(), b.execute(text(pid)).scalar_one()})
            pids.add(tx.session.execute(text(pid)).scalar_one())

    database.run(hold_three)
    assert len(pids) == 3
    _terminate(pg_url, sorted(pids))

    database.run(lambda tx: tx.record("after.restart", "probe", 1, city=None, payload={}))
    seen = "SELECT count(*) FROM events WHERE type = 'after.restart'"
    assert database.read_one(lambda c: c.execute(text(seen)).scalar()) == 1
    assert database.read(lambda s: s.execute(text(seen)).scalar()) == 1
    database.engine.dispose()
