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
