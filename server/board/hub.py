"""The per-process hub: reads the transport, closes gaps from the event log, fans out to boards.

One task per process reads committed events in seq order. Seqs are gap-free in the database,
so any gap the hub sees (a Redis restart lost the stream, a relay skipped ahead) is filled from
the log before the next event goes out; a board therefore receives every seq exactly once, in
order. If the transport stays silent while the log moves on (Redis down, no relay alive), the
hub reads the log itself after one check interval.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection

from server.board.frames import event_frame
from server.board.snapshot import SharedSnapshot
from server.board.transport import Entry, EventTransport
from server.db.unit_of_work import Database, EventRows
from server.services.events import event_view, events_after, last_seq

log = logging.getLogger(__name__)
trace = logging.getLogger("b40.trace")  # hop timestamps for bench/board.py; off by default
BACKFILL_PAGE = 1_000
Watcher = Callable[[dict[str, Any]], None]


class Subscriber:
    """One board's bounded buffer. The hub never waits for a board."""

    def __init__(self, bound: int, on_overflow: Callable[[], None] | None = None) -> None:
        self.bound = bound
        self.entries: deque[Entry] = deque()
        self.ready = asyncio.Event()
        self.overflowed = False
        self._on_overflow = on_overflow

    def push(self, entry: Entry) -> bool:
        """Queue an entry; False (and the subscriber is done for) when the buffer is full."""
        if len(self.entries) >= self.bound:
            self.overflowed = True
            self.entries.clear()  # the board resyncs from the log; free the memory now
            self.ready.set()
            if self._on_overflow is not None:
                self._on_overflow()
            return False
        self.entries.append(entry)
        self.ready.set()
        return True


def read_log(database: Database, after: int, upto: int | None, limit: int) -> list[Entry]:
    """Committed events after `after` (up to `upto`), encoded as board frames."""

    def read(connection: Connection) -> list[Entry]:
        views = events_after(connection, after, limit)
        return [(v["seq"], event_frame(v)) for v in views if upto is None or v["seq"] <= upto]

    return database.read_one(read)


def committed_entries(rows: EventRows) -> list[Entry]:
    """The rows a transaction has just committed, encoded as `read_log` encodes them."""
    entries: list[Entry] = []
    for row in rows:
        # UTC, as the database gives it back (the clock may hand the use case another zone).
        as_stored = SimpleNamespace(**{**row, "created_at": row["created_at"].astimezone(UTC)})
        entries.append((row["seq"], event_frame(event_view(as_stored))))
    return entries


def read_last_seq(database: Database) -> int:
    return database.read_one(last_seq)


class Hub:
    def __init__(
        self, database: Database, transport: EventTransport, *, check_seconds: float = 1.0
    ) -> None:
        self.database = database
        self.transport = transport
        self.check_seconds = check_seconds
        self.last_seq = 0
        self.subscribers: set[Subscriber] = set()
        self.snapshots = SharedSnapshot.of(database)  # for boards that connect without `after`
        self._task: asyncio.Task[None] | None = None
        self._watchers: list[tuple[str, str, Watcher]] = []
        self._db_target = 0
        self._checked_at = 0.0

    async def start(self) -> None:
        self.last_seq = await asyncio.to_thread(read_last_seq, self.database)
        self._task = asyncio.create_task(self._run(), name="board-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def watch(self, event_type: str, callback: Watcher) -> None:
        """Call `callback` with each event of `event_type` this hub passes on, in seq order:
        every process's commits, gap-free, as its boards get them."""
        marker = f'"type":{json.dumps(event_type)}'  # frames are compact JSON (frames.py)
        self._watchers.append((marker, event_type, callback))

    def subscribe(self, bound: int, on_overflow: Callable[[], None] | None = None) -> Subscriber:
        subscriber = Subscriber(bound, on_overflow)
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                entries = await self.transport.read(self.last_seq, self.check_seconds)
                failures = 0
                if entries:
                    if trace.isEnabledFor(logging.DEBUG):
                        trace.debug("received", extra={"seq": entries[-1][0], "at": time.time()})
                    await self.deliver(entries)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis down or restarting: the log covers meanwhile
                failures += 1
                if failures == 1:
                    log.warning("board transport read failed: %s", error)
                await asyncio.sleep(min(0.5 * failures, 2.0))
            try:
                if time.monotonic() - self._checked_at >= self.check_seconds:
                    await self._check_log()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("board hub could not read the event log")

    async def deliver(self, entries: list[Entry]) -> None:
        for seq, frame in entries:
            if seq > self.last_seq + 1:
                await self._backfill(seq - 1)
            # Checked after the backfill's await: this process's relay may have delivered it
            # meanwhile (`deliver_local`), or a backfill overtook the transport.
            if seq > self.last_seq:
                self._fan_out((seq, frame))

    def deliver_local(self, entries: list[Entry]) -> None:
        """What this process's relay has just read from the log: fan out what continues our order.

        Saves the trip through Redis and back (our XREAD then skips them as delivered). Entries
        that would leave a gap wait for the transport, whose gap rule reads the log.
        """
        for entry in entries:
            if entry[0] == self.last_seq + 1:
                self._fan_out(entry)
            elif entry[0] > self.last_seq:
                return

    async def _check_log(self) -> None:
        """If what the log held one interval ago has still not arrived, take it from the log."""
        self._checked_at = time.monotonic()
        previous = self._db_target
        self._db_target = await asyncio.to_thread(read_last_seq, self.database)
        if previous > self.last_seq:
            log.info("board hub behind the log (%d < %d): reading it", self.last_seq, previous)
            await self._backfill(self._db_target)

    async def _backfill(self, upto: int) -> None:
        while self.last_seq < upto:
            entries = await asyncio.to_thread(
                read_log, self.database, self.last_seq, upto, BACKFILL_PAGE
            )
            if not entries:
                return
            for entry in entries:
                if entry[0] == self.last_seq + 1:
                    self._fan_out(entry)

    def _fan_out(self, entry: Entry) -> None:
        self.last_seq = entry[0]
        for marker, event_type, callback in self._watchers:
            if marker in entry[1]:  # a cheap test first: most frames are of other types
                event = json.loads(entry[1])
                if event.get("type") == event_type:
                    try:
                        callback(event)
                    except Exception:
                        log.exception("hub watcher for %s failed", event_type)
        dropped = [s for s in self.subscribers if not s.push(entry)]
        for subscriber in dropped:
            self.subscribers.discard(subscriber)
