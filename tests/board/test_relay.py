"""The relay: publishes the very first commit after start (its cursor is taken at start), and
hands what it reads to its own process's hub without the round trip through the transport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from server.board.hub import Hub
from server.board.transport import Entry, EventTransport, make_transport
from server.db.engine import make_engine
from server.db.unit_of_work import Database, Tx
from server.services.events import last_seq
from workers.relay import Relay

HANG_GUARD_SECONDS = 10.0  # a hang guard, not a speed assertion


def probe(tx: Tx) -> None:
    tx.record("probe.made", "probe", 1, city=None, payload={})


async def published_up_to(transport: EventTransport, last: int) -> None:
    async with asyncio.timeout(HANG_GUARD_SECONDS):
        while await transport.top() < last:
            await asyncio.sleep(0.01)


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
        await published_up_to(transport, last)
        assert await transport.top() == last
    finally:
        await relay.stop()
        await transport.close()
        database.engine.dispose()


class OneWayTransport:
    """Takes what the relay publishes but never hands it back to a hub (Redis lagging)."""

    def __init__(self) -> None:
        self.inner = make_transport(None, "relay-test")

    async def publish(self, entries: Sequence[Entry]) -> int:
        return await self.inner.publish(entries)

    async def top(self) -> int:
        return await self.inner.top()

    async def read(self, after: int, timeout: float) -> list[Entry]:
        await asyncio.sleep(timeout)
        return []

    async def close(self) -> None:
        await self.inner.close()


async def test_the_relay_hands_its_reads_to_the_local_hub_once_and_in_order(
    sqlite_url: str,
) -> None:
    database = Database(make_engine(sqlite_url))
    transport = OneWayTransport()
    # No log checks and no polls: only the relay's hand-over can reach the subscriber.
    hub = Hub(database, transport, check_seconds=3600)
    await hub.start()
    subscriber = hub.subscribe(100)
    relay = Relay(database, transport, poll_seconds=3600, deliver_locally=hub.deliver_local)
    await relay.start()
    try:
        for _ in range(3):
            await asyncio.to_thread(database.run, probe)
        last = database.read(last_seq)
        async with asyncio.timeout(HANG_GUARD_SECONDS):
            while len(subscriber.entries) < 3:
                await asyncio.sleep(0.01)
        assert [seq for seq, _ in subscriber.entries] == [last - 2, last - 1, last]
        assert all('"type":"probe.made"' in frame for _, frame in subscriber.entries)
        # The stream's copy arrives later (through Redis, in production): not sent twice.
        await hub.deliver(await transport.inner.read(0, 0.1))
        assert len(subscriber.entries) == 3
        # A hand-over that would leave a gap is left to the transport and its gap rule.
        hub.deliver_local([(last + 2, "{}")])
        assert len(subscriber.entries) == 3
        assert hub.last_seq == last
    finally:
        await relay.stop()
        await hub.stop()
        await transport.close()
        database.engine.dispose()


def test_committed_rows_encode_as_the_log_reads_them(database_url: str) -> None:
    """The relay publishes the rows a transaction hands it; a board must not be able to tell
    them from the same events read back from the log (another process's relay, a replay)."""
    from datetime import UTC, datetime, timedelta, timezone

    from config.settings import Settings
    from server.board.hub import committed_entries, read_log

    athens = timezone(timedelta(hours=2))  # a clock in another zone: the log stores UTC
    database = Database(
        make_engine(Settings(database_url=database_url).database_url),
        clock=lambda: datetime.now(UTC).astimezone(athens),
    )
    handed: list[Entry] = []
    database.on_commit_rows(lambda rows: handed.extend(committed_entries(rows)))
    before = database.read(last_seq)

    def two_events(tx: Tx) -> None:
        tx.record(
            "probe.made",
            "probe",
            7,
            city="athens",
            payload={"name": "Ά", "z": 1, "a": [1.5, None, True], "nested": {"b": 2, "a": 1}},
            exercise=True,
        )
        tx.record("probe.made", "probe", 8, city=None, payload={})

    database.run(two_events, actor=None)
    from_log = read_log(database, before, None, 10)
    assert [seq for seq, _ in handed] == [seq for seq, _ in from_log] == [before + 1, before + 2]
    assert [json.loads(f) for _, f in handed] == [json.loads(f) for _, f in from_log]
    assert json.loads(handed[0][1])["created_at"].endswith("+00:00")
    database.engine.dispose()


async def test_handed_commits_behind_a_gap_wait_for_the_log_and_go_out_in_order(
    sqlite_url: str,
) -> None:
    """Another process (a second Database on the same log) commits between two of ours: the
    relay may not publish our handed event before the other's, which it reads from the log."""
    database = Database(make_engine(sqlite_url))
    other_process = Database(make_engine(sqlite_url))
    transport = make_transport(None, "relay-test")
    relay = Relay(database, transport, poll_seconds=3600)
    await relay.start()
    try:
        await asyncio.to_thread(database.run, probe)
        await asyncio.to_thread(other_process.run, probe)  # never handed to our relay
        await asyncio.to_thread(database.run, probe)
        last = database.read(last_seq)
        await published_up_to(transport, last)
        published = await transport.read(last - 3, 0)
        assert [seq for seq, _ in published] == [last - 2, last - 1, last]
    finally:
        await relay.stop()
        await transport.close()
        database.engine.dispose()
        other_process.engine.dispose()


async def test_stop_ends_the_relay_even_when_a_commit_wakes_it_at_that_moment(
    sqlite_url: str,
) -> None:
    """Python 3.11's asyncio.wait_for returns normally when cancelled just as what it waits
    for completes; the relay then ran on and server shutdown waited for it for ever."""
    database = Database(make_engine(sqlite_url))
    transport = make_transport(None, "relay-test")
    try:
        for yields in range(6):  # the cancel lands a few loop turns after the wake-up
            relay = Relay(database, transport, poll_seconds=3600)
            await relay.start()
            await asyncio.sleep(0.05)  # the relay waits for a wake-up
            relay._wakeup.set()  # what a commit's hand-over does
            for _ in range(yields):
                await asyncio.sleep(0)
            async with asyncio.timeout(HANG_GUARD_SECONDS):
                await relay.stop()
            assert relay._task is not None
            assert relay._task.done()
    finally:
        await transport.close()
        database.engine.dispose()
