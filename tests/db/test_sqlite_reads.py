"""On SQLite, writers serialise (BEGIN IMMEDIATE) but reads never wait for them."""

from __future__ import annotations

import threading

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
