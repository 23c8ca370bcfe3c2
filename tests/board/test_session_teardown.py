"""A board session cancelled while it tears down ends with its own CancelledError.

The server cancels a session task at shutdown, and so does Starlette's TestClient when a test
leaves its websocket block. anyio swallows only the cancellation its scope sent (it checks the
message); the session used to await its children with `gather`, which re-raises a child's
CancelledError instead, and the TestClient then failed the test in a few runs of ten.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from server.board.hub import Hub, Subscriber
from server.board.socket import BoardOptions, BoardSession

SCOPE_MESSAGE = "Cancelled via cancel scope 1234"


class GoneBoard:
    """A websocket whose peer has already left."""

    async def receive(self) -> dict[str, Any]:
        return {"type": "websocket.disconnect", "code": 1000}


class SlowToStopSession(BoardSession):
    """A sender that ends in a last socket write, which then fails (the socket is closing)."""

    async def _send(self, subscriber: Subscriber, after: int | None) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            raise RuntimeError("the socket closed under the write") from None


async def test_cancelled_teardown_raises_the_callers_own_cancellation() -> None:
    hub = Hub(database=None, transport=None)  # type: ignore[arg-type]  # only subscribe is used
    options = BoardOptions(heartbeat_seconds=20, buffer_events=10)
    session = SlowToStopSession(GoneBoard(), None, hub, options)  # type: ignore[arg-type]
    task = asyncio.create_task(session.run(after=0))
    await asyncio.sleep(0.05)  # the board has gone; the session waits for its sender to stop
    assert not task.done()
    task.cancel(SCOPE_MESSAGE)
    with pytest.raises(asyncio.CancelledError) as raised:
        await task
    assert raised.value.args == (SCOPE_MESSAGE,)
    assert not hub.subscribers  # it left the hub all the same
