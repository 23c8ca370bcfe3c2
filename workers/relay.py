"""The event relay: committed events from the log to the board transport (Redis Stream).

Fed from the log, never from request handlers: the unit of work hands the relay the event rows
each transaction has just committed (`Database.on_commit_rows`), and the relay publishes them
when they continue what it has published; otherwise (another process committed the seqs in
between) it reads the log. A periodic poll covers a crash between commit and hand-over. Every
API process runs one; they race harmlessly because the stream refuses an id it already holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from server.board.hub import committed_entries, read_last_seq, read_log
from server.board.transport import Entry, EventTransport
from server.db.unit_of_work import Database, EventRows

log = logging.getLogger(__name__)
# Off unless a bench turns it on (bench/board.py): when each commit woke the relay, so
# POST -> board latency splits into the request's part and the stream's part.
trace = logging.getLogger("b40.trace")
BATCH = 500
HANDED_MAX = 10_000  # entries held for the loop; past this the relay reads the log


class Relay:
    def __init__(
        self,
        database: Database,
        transport: EventTransport,
        *,
        poll_seconds: float = 1.0,
        deliver_locally: Callable[[list[Entry]], None] | None = None,
    ) -> None:
        self.database = database
        self.transport = transport
        self.poll_seconds = poll_seconds
        # This process's hub (`Hub.deliver_local`): what the relay has just read from the log
        # need not go through Redis and back to reach the boards connected here, and they stay
        # live while Redis is away. Other processes' boards get it from the stream.
        self.deliver_locally = deliver_locally
        self.cursor: int | None = None  # highest seq known to be in the stream
        # Frames of committed events handed over by this process's transactions, by seq.
        self._handed: dict[int, str] = {}
        self._wakeup = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        database.on_commit_rows(self.committed)

    def committed(self, rows: EventRows) -> None:
        """After-commit hook; called from request threads. Never raises, never blocks.

        Encodes the rows here, in the committing thread, and hands them to the loop: the relay
        need not read back what it was just given (a thread hop and a query per commit)."""
        last_seq = int(rows[-1]["seq"])
        # The bench's commit trace: the time is taken now, the line written after the
        # hand-over, so that formatting and writing it is not on the path it times.
        at = time.time()
        try:
            self._hand_to_loop(rows, last_seq)
        finally:
            if trace.isEnabledFor(logging.DEBUG):
                trace.debug("committed", extra={"seq": last_seq, "at": at})

    def _hand_to_loop(self, rows: EventRows, last_seq: int) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if self.cursor is not None and last_seq <= self.cursor:
            return
        entries = committed_entries(rows)
        with contextlib.suppress(RuntimeError):  # loop shutting down: the poll is gone too
            loop.call_soon_threadsafe(self._hand_over, entries)

    def _hand_over(self, entries: list[Entry]) -> None:
        # This process's boards first, right here: the hub takes only what continues its
        # order (a gap waits for its gap rule). The relay's pass hands them over again, which
        # costs the hub a seq comparison each and covers a hub whose gap closed meanwhile.
        if self.deliver_locally is not None:
            self.deliver_locally(entries)
        if len(self._handed) < HANDED_MAX:  # beyond it (the relay stalled) the log has them
            self._handed.update(entries)
        self._wakeup.set()

    def _take_handed(self, cursor: int) -> list[Entry]:
        """The handed entries that continue `cursor` without a gap; older ones are dropped."""
        for seq in [seq for seq in self._handed if seq <= cursor]:
            del self._handed[seq]
        run: list[Entry] = []
        while (frame := self._handed.pop(cursor + len(run) + 1, None)) is not None:
            run.append((cursor + len(run) + 1, frame))
        return run

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        # Take the cursor now, before this process serves a request: taken at the first wake-up
        # instead, it would already include the commit that woke it, and that event would reach
        # boards only through the hub's periodic log check (a second late).
        with contextlib.suppress(Exception):  # Redis or the database away: run() retries
            await self._initial_cursor()
        self._task = asyncio.create_task(self.run(), name="event-relay")

    async def _initial_cursor(self) -> int:
        top = await self.transport.top()
        # An empty stream (first start, Redis restarted): start from the log's end. Older
        # events are in the log; hubs and boards that need them read them there.
        self.cursor = top or await asyncio.to_thread(read_last_seq, self.database)
        return self.cursor

    async def stop(self) -> None:
        self._loop = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def run(self) -> None:
        failures = 0
        while True:
            woken = False
            # asyncio.timeout, not wait_for: Python 3.11's wait_for returns normally when it is
            # cancelled just as the wake-up is set, and the cancelled relay would run on
            # (stop() then waits for it for ever).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wakeup.wait()
                woken = True
            self._wakeup.clear()
            try:
                await self.relay_once(skip_ahead=not woken)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis or the database away: keep the cursor, retry
                failures += 1
                if failures == 1:
                    log.warning("relay: %s; retrying", error)
                await asyncio.sleep(min(0.2 * failures, 2.0))

    async def relay_once(self, *, skip_ahead: bool = True) -> int:
        """Publish every committed event after the cursor; return how many were appended."""
        if self.cursor is None:
            cursor = await self._initial_cursor()
        elif skip_ahead:
            # Another process's relay may have published already: don't re-read that part.
            cursor = self.cursor = max(self.cursor, await self.transport.top())
        else:
            cursor = self.cursor
        added = 0
        while True:
            entries = self._take_handed(cursor) or await asyncio.to_thread(
                read_log, self.database, cursor, None, BATCH
            )
            if not entries:
                return added
            if self.deliver_locally is not None:
                self.deliver_locally(entries)
            added += await self.transport.publish(entries)
            cursor = self.cursor = entries[-1][0]
            if trace.isEnabledFor(logging.DEBUG):
                trace.debug("published", extra={"seq": cursor, "at": time.time()})
            if len(entries) < BATCH and not self._handed:
                # The log's end when read: a commit since then has set the wake-up again
                # (it is cleared before this pass), so a second read here would find nothing.
                # Handed entries left over sit behind a gap (seqs another process committed):
                # the next pass reads the log up to them.
                return added
