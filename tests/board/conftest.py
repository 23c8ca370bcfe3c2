"""Board protocol helpers: real `b40 serve` processes and a plain websocket client."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.conftest import ADMIN_TOKEN, REDIS_URL, ServerProcess

WAIT = 30.0  # a hang guard, not a speed assertion


def ws_url(
    server: ServerProcess, *, token: str | None = ADMIN_TOKEN, after: int | None = None
) -> str:
    query = []
    if token is not None:
        query.append(f"token={token}")
    if after is not None:
        query.append(f"after={after}")
    base = server.url.replace("http://", "ws://") + "/ws/board"
    return base + ("?" + "&".join(query) if query else "")


def board(server: ServerProcess, **kwargs: Any) -> ClientConnection:
    return connect(ws_url(server, **kwargs), open_timeout=WAIT, max_size=None)


def receive(ws: ClientConnection) -> dict[str, Any]:
    """The next message that is not a heartbeat."""
    while True:
        message = json.loads(ws.recv(timeout=WAIT))
        if message["type"] != "heartbeat":
            return dict(message)


def events_until(ws: ClientConnection, last: int) -> list[dict[str, Any]]:
    """Event messages until one with seq >= last arrives."""
    out: list[dict[str, Any]] = []
    while not out or out[-1]["seq"] < last:
        message = receive(ws)
        assert "seq" in message, message
        out.append(message)
    return out


def api(server: ServerProcess) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=WAIT
    )


def add_unit(client: httpx.Client, callsign: str, city: str = "sofia") -> dict[str, Any]:
    response = client.post(
        "/api/v1/resources", json={"city": city, "capability": "FIRE_ENGINE", "callsign": callsign}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def last_seq(client: httpx.Client) -> int:
    return int(client.get("/api/v1/events", params={"limit": 1}).json()["last_seq"])


def all_events(client: httpx.Client) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = 0
    while True:
        page = client.get("/api/v1/events", params={"after": after, "limit": 1000}).json()
        if not page["items"]:
            return out
        out.extend(page["items"])
        after = page["next_after"]


@dataclass
class Writers:
    """Threads posting units as fast as they can until stopped."""

    server: ServerProcess
    threads: int = 6
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)
    posted: list[int] = field(default_factory=list)

    def __enter__(self) -> Writers:
        self._threads = [
            threading.Thread(target=self._write, args=(n,), daemon=True)
            for n in range(self.threads)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def _write(self, n: int) -> None:
        try:
            with api(self.server) as client:
                i = 0
                while not self.stop.is_set():
                    add_unit(client, f"W{n}-{i}", city=("sofia", "athens", "zagreb")[i % 3])
                    self.posted.append(1)
                    i += 1
        except BaseException as error:  # surfaced by __exit__
            self.errors.append(error)

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(WAIT)
        assert not self.errors, self.errors


ServerStarter = Callable[..., ServerProcess]


@pytest.fixture
def embedded(server_factory: type[ServerProcess], sqlite_url: str) -> ServerStarter:
    """The one-process default: SQLite, no Redis server, in-process transport."""

    def start(**env: str) -> ServerProcess:
        base = {
            "B40_DATABASE_URL": sqlite_url,
            "B40_REDIS_URL": "",
            "B40_ADMIN_TOKEN": ADMIN_TOKEN,
            "B40_DEMO": "0",
        }
        return server_factory({**base, **env}).start()

    return start


@pytest.fixture
def clustered(server_factory: type[ServerProcess], pg_url: str, redis_prefix: str) -> ServerStarter:
    """Production shape: PostgreSQL and the shared Redis; call it once per API process."""

    def start(**env: str) -> ServerProcess:
        base = {
            "B40_DATABASE_URL": pg_url,
            "B40_REDIS_URL": REDIS_URL,
            "B40_REDIS_PREFIX": redis_prefix,
            "B40_ADMIN_TOKEN": ADMIN_TOKEN,
            "B40_DEMO": "0",
        }
        return server_factory({**base, **env}).start()

    return start
