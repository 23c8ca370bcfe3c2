"""The bare relay the board is measured against: Redis Stream to websockets, nothing else.

No database, no auth, no snapshot, no seq checks: one XREAD loop, one queue and one
sender task per socket (the least a relay needs so one slow socket cannot stall the rest).
Run: BASELINE_REDIS_URL=... BASELINE_KEY=... uvicorn bench.board_baseline:app
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

QUEUES: set[asyncio.Queue[str]] = set()


async def relay() -> None:
    client = aioredis.Redis.from_url(os.environ["BASELINE_REDIS_URL"])
    key = os.environ["BASELINE_KEY"]
    last = "$"
    while True:
        reply = await client.xread({key: last}, block=1000, count=1000)
        for _key, items in reply or ():
            for entry_id, fields in items:
                last = entry_id
                frame = fields[b"f"].decode()
                for queue in list(QUEUES):
                    queue.put_nowait(frame)


async def socket(websocket: WebSocket) -> None:
    await websocket.accept()
    queue: asyncio.Queue[str] = asyncio.Queue()  # unbounded: the baseline drops nothing
    QUEUES.add(queue)

    async def send() -> None:
        while True:
            await websocket.send_text(await queue.get())

    sender = asyncio.create_task(send())
    try:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
    except WebSocketDisconnect:
        pass
    finally:
        QUEUES.discard(queue)
        sender.cancel()


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    task = asyncio.create_task(relay())
    yield
    task.cancel()


app = Starlette(routes=[WebSocketRoute("/ws", socket)], lifespan=lifespan)
