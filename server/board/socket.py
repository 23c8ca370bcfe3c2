"""GET /ws/board: authenticate, then snapshot-or-replay, then live events, heartbeats, resync."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from server.board.frames import heartbeat_frame, resync_frame
from server.board.hub import Hub, Subscriber, read_log
from server.db.unit_of_work import Database
from server.domain.errors import Unauthenticated
from server.domain.model import Actor
from server.services.credentials import TokenCache

log = logging.getLogger(__name__)
router = APIRouter()
POLICY_VIOLATION = 1008  # RFC 6455: refused (bad or missing token); before accept: HTTP 403
TRY_AGAIN_LATER = 1013  # closed after `resync`: reconnect with after=<last seq>
REPLAY_PAGE = 1_000
CLOSE_TIMEOUT = 2.0  # a stalled board cannot hold a closing handler for longer
# A board that fell behind because it stopped reading (a frozen tab, a laptop lid) may read
# again: its socket still holds frames, and `resync` must come after them, so it waits for
# room. Its event buffer is already freed; uvicorn's keepalive (20 s ping + 20 s timeout) ends
# a board that never reads again.
RESYNC_GRACE = 30.0


@dataclass(frozen=True, slots=True)
class BoardOptions:
    heartbeat_seconds: float
    buffer_events: int


@router.websocket("/ws/board")
async def board_socket(websocket: WebSocket) -> None:
    database: Database = websocket.app.state.database
    hub: Hub = websocket.app.state.board_hub
    options: BoardOptions = websocket.app.state.board_options
    token = _token(websocket)
    after_param = websocket.query_params.get("after")
    after: int | None = None
    if after_param is not None:
        if not after_param.isdigit():
            await websocket.close(POLICY_VIOLATION, reason="after must be a seq (integer >= 0)")
            return
        after = int(after_param)
    if await _actor(websocket, database, token) is None:
        await websocket.close(POLICY_VIOLATION, reason="a valid token is required")
        return
    await websocket.accept()
    session = BoardSession(websocket, database, hub, options)
    await session.run(after)


def _token(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return websocket.query_params.get("token") or None


async def _actor(websocket: WebSocket, database: Database, token: str | None) -> Actor | None:
    if token is None:
        return None
    tokens: TokenCache = websocket.app.state.tokens
    try:
        return await tokens.actor(database, token)
    except Unauthenticated:
        return None


class BoardSession:
    """One connected board: its subscriber buffer and what it has been sent."""

    def __init__(
        self, websocket: WebSocket, database: Database, hub: Hub, options: BoardOptions
    ) -> None:
        self.websocket = websocket
        self.database = database
        self.hub = hub
        self.options = options
        self.sent = 0
        self._sender: asyncio.Task[None] | None = None
        # Heartbeats: one timer per board per idle interval, not a `wait_for` per event (at
        # 1,000 boards that was a task, a future and a timer handle per board per event, enough
        # garbage to trigger full collections of half a second; docs/board.md).
        self._active_at = 0.0
        self._heartbeat_due = False
        self._heartbeat_timer: asyncio.TimerHandle | None = None
        self._subscribed_at = 0  # the hub's last seq when this board subscribed

    async def run(self, after: int | None) -> None:
        # Subscribe first, then read the log: whatever commits meanwhile is in the buffer,
        # and the seq rule in `_send` drops the overlap, so the seam has no gap and no double.
        subscriber = self.hub.subscribe(self.options.buffer_events, self._overflowed)
        self._subscribed_at = self.hub.last_seq
        receiver = asyncio.create_task(self._receive())
        self._sender = asyncio.create_task(self._send(subscriber, after))
        try:
            await asyncio.wait({receiver, self._sender}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if self._heartbeat_timer is not None:
                self._heartbeat_timer.cancel()
            self.hub.unsubscribe(subscriber)
            tasks = (receiver, self._sender)
            for task in tasks:
                task.cancel()
            # asyncio.wait, not gather: if this task is cancelled meanwhile (server shutdown, a
            # test client's cancel scope), the CancelledError that leaves must be its own. gather
            # raises a child's instead, which anyio's cancel scope cannot tell from a stray one
            # and re-raises (the flaky TestClient teardown, docs/board.md).
            await asyncio.wait(tasks)
            for task in tasks:
                error = None if task.cancelled() else task.exception()
                if isinstance(error, Exception) and not isinstance(
                    error, WebSocketDisconnect | RuntimeError
                ):
                    log.warning("board session ended: %r", error)
            if subscriber.overflowed:
                await self._resync()

    def _overflowed(self) -> None:
        # The sender may be stuck writing to a board that stopped reading: stop it now.
        if self._sender is not None:
            self._sender.cancel()

    async def _receive(self) -> None:
        """Boards send nothing we need; reading notices when they go away."""
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return

    async def _send(self, subscriber: Subscriber, after: int | None) -> None:
        if after is None:
            self.sent, frame = await self.hub.snapshots.get()
            await self.websocket.send_text(frame)
            # A shared read may have begun before this board subscribed: what the hub fanned
            # out before then is not in the buffer, so it comes from the log.
            if self.sent < self._subscribed_at:
                await self._replay(self._subscribed_at)
        else:
            self.sent = after
            await self._replay(None)
        loop = asyncio.get_running_loop()
        self._active_at = loop.time()
        self._heartbeat_tick(subscriber)
        while not subscriber.overflowed:
            if not subscriber.entries:
                if self._heartbeat_due:
                    self._heartbeat_due = False
                    await self.websocket.send_text(heartbeat_frame(self.sent))
                    self._active_at = loop.time()
                    continue
                subscriber.ready.clear()
                await subscriber.ready.wait()
                continue
            seq, frame = subscriber.entries.popleft()
            if seq <= self.sent:
                continue
            if seq > self.sent + 1:
                await self._replay(seq - 1)
            await self.websocket.send_text(frame)
            self.sent = seq
            self._active_at = loop.time()

    def _heartbeat_tick(self, subscriber: Subscriber) -> None:
        """Due after `heartbeat_seconds` with nothing sent; the sender sends it when idle."""
        loop = asyncio.get_running_loop()
        interval = self.options.heartbeat_seconds
        idle = loop.time() - self._active_at
        if idle >= interval:
            self._heartbeat_due = True
            subscriber.ready.set()
            idle = 0.0
        self._heartbeat_timer = loop.call_later(interval - idle, self._heartbeat_tick, subscriber)

    async def _replay(self, upto: int | None) -> None:
        """Send the log after `self.sent` (up to `upto`, or to its end) in pages."""
        while upto is None or self.sent < upto:
            entries = await asyncio.to_thread(read_log, self.database, self.sent, upto, REPLAY_PAGE)
            if not entries:
                return
            for seq, frame in entries:
                await self.websocket.send_text(frame)
                self.sent = seq

    async def _resync(self) -> None:
        if self.websocket.application_state is not WebSocketState.CONNECTED:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self.websocket.send_text(resync_frame(self.sent, "too far behind")), RESYNC_GRACE
            )
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.websocket.close(TRY_AGAIN_LATER), CLOSE_TIMEOUT)
