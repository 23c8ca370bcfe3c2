"""Carrying committed events from the relay to every process's hub: Redis Streams or in-process.

An entry is (seq, frame): the seq is the event log's, the frame the JSON text a board receives,
encoded once by the relay. The stream id is f"{seq}-0", so Redis itself refuses an entry that is
not newer than the stream's top: a second relay, or a retry, is rejected harmlessly.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

log = logging.getLogger(__name__)

Entry = tuple[int, str]
STREAM_MAXLEN = 50_000  # about a day of a busy crisis; older history comes from the database
READ_COUNT = 1_000


class EventTransport(Protocol):
    """What the relay writes to and the hubs read from."""

    async def publish(self, entries: Sequence[Entry]) -> int:
        """Append entries newer than the top; return how many were appended."""
        ...

    async def top(self) -> int:
        """The highest seq held (0 when empty)."""
        ...

    async def read(self, after: int, timeout: float) -> list[Entry]:
        """Entries with seq > after, waiting up to `timeout` seconds for the first."""
        ...

    async def close(self) -> None: ...


class MemoryTransport:
    """The embedded default: one process, no Redis server, same relay and hub."""

    def __init__(self, maxlen: int = STREAM_MAXLEN) -> None:
        self._entries: deque[Entry] = deque(maxlen=maxlen)
        self._changed = asyncio.Condition()

    async def publish(self, entries: Sequence[Entry]) -> int:
        added = 0
        async with self._changed:
            for seq, frame in entries:
                if self._entries and seq <= self._entries[-1][0]:
                    continue  # like XADD with an old id: refused
                self._entries.append((seq, frame))
                added += 1
            if added:
                self._changed.notify_all()
        return added

    async def top(self) -> int:
        return self._entries[-1][0] if self._entries else 0

    async def read(self, after: int, timeout: float) -> list[Entry]:
        async with self._changed:
            if not self._newer(after):
                try:
                    # asyncio.timeout, not wait_for, which on Python 3.11 can swallow the
                    # hub's cancellation when the condition is met at the same moment.
                    async with asyncio.timeout(timeout):
                        await self._changed.wait_for(lambda: self._newer(after))
                except TimeoutError:
                    return []
            return [e for e in self._entries if e[0] > after][:READ_COUNT]

    def _newer(self, after: int) -> bool:
        return bool(self._entries) and self._entries[-1][0] > after

    async def close(self) -> None:
        return None


class RedisStreamTransport:
    """A Redis Stream per deployment (key f"{prefix}:events"), shared by every API process."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis.asyncio as aioredis

        self.key = stream_key(prefix)
        # Two clients: a blocking XREAD must not hold up the relay's XADDs.
        self._writer = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self._reader = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=None)

    async def publish(self, entries: Sequence[Entry]) -> int:
        if not entries:
            return 0
        pipe = self._writer.pipeline(transaction=False)
        for seq, frame in entries:
            pipe.xadd(self.key, {"f": frame}, id=f"{seq}-0", maxlen=STREAM_MAXLEN, approximate=True)
        added = 0
        for result in await pipe.execute(raise_on_error=False):
            if isinstance(result, Exception):
                if "equal or smaller" in str(result):
                    continue  # another relay (or an earlier try) got there first
                raise result
            added += 1
        return added

    async def top(self) -> int:
        last: Any = await self._writer.xrevrange(self.key, count=1)
        return _seq_of(last[0][0]) if last else 0

    async def read(self, after: int, timeout: float) -> list[Entry]:
        reply: Any = await self._reader.xread(
            {self.key: f"{after}-0"}, count=READ_COUNT, block=max(1, int(timeout * 1000))
        )
        out: list[Entry] = []
        for _key, items in reply or ():
            for entry_id, fields in items:
                frame = fields[b"f"]
                out.append((_seq_of(entry_id), frame.decode()))
        return out

    async def close(self) -> None:
        await self._writer.aclose()
        await self._reader.aclose()


def stream_key(prefix: str) -> str:
    """The deployment's event stream (also followed by the workers' alert planners)."""
    return f"{prefix}:events"


def _seq_of(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


def make_transport(redis_url: str | None, prefix: str) -> EventTransport:
    if redis_url is None:
        return MemoryTransport()
    return RedisStreamTransport(redis_url, prefix)
