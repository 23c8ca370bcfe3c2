"""The relay publishes the very first commit after start (its cursor is taken at start)."""

from __future__ import annotations

import asyncio

from server.board.transport import make_transport
from server.db.engine import make_engine
from server.db.unit_of_work import Database, Tx
from server.services.events import last_seq
from workers.relay import Relay

HANG_GUARD_SECONDS = 10.0  # a hang guard, not a speed assertion


def probe(tx: Tx) -> None:
    tx.record("probe.made", "probe", 1, city=None, payload={})


async def test_the_first_commit_after_start_reaches_the_stream_on_its_wake_up(
    sqlite_url: str,
) -> None:
    database = Database(make_engine(sqlite_url))
    transport = make_transport(None, "relay-test")
    # No periodic poll during the test: only the after-commit wake-up can publish.
    relay = Relay(database, transport, poll_seconds=3600)
    await relay.start()
    try:
        await asyncio.to_thread(database.run, probe)
        last = database.read(last_seq)
        async with asyncio.timeout(HANG_GUARD_SECONDS):
            while await transport.top() < last:
                await asyncio.sleep(0.01)
        assert await transport.top() == last
    finally:
        await relay.stop()
        await transport.close()
        database.engine.dispose()
