"""Who holds a token: the database's answer, remembered for a while by each API process.

Every request authenticates. Asking the database each time cost a round trip, a pooled
connection and a hand-off to a worker thread and back before the request's own work could
start: about 1.5 ms of a 8 ms `POST /api/v1/requests` on the reference machine. A process
therefore remembers the holders of tokens it has seen, and forgets them

- when a `user.revoked` event commits: at once in the process that committed it (before its
  response goes out), and in every other API process when the event reaches its board hub,
  the same gap-free stream the board reads (milliseconds; one check interval, 1 s, while
  Redis is down and the hub reads the log itself);
- after `ttl` seconds at the latest, for what changes in the database without an event;
- when the cache is full (the oldest first).

Only live tokens are remembered, so an unknown, revoked or mistyped token always reaches the
database (and the failed-authentication limiter). Expiry is checked on every use.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from server.db.unit_of_work import Database, EventRows
from server.domain.model import Actor
from server.services.users import Credential, credential_of, hash_token

REVOKED = "user.revoked"
TTL_SECONDS = 30.0
SIZE = 10_000


class TokenCache:
    def __init__(
        self,
        ttl: float = TTL_SECONDS,
        size: int = SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self._held: OrderedDict[str, tuple[Credential, float]] = OrderedDict()
        self._lock = threading.Lock()
        # Bumped by every forget: an answer read before a revocation committed is not kept.
        self._generation = 0

    async def actor(self, database: Database, token: str) -> Actor:
        """The token's actor, from memory or from the database (in a worker thread)."""
        actor = self.remembered(token, database)
        if actor is None:
            actor = await asyncio.to_thread(self.authenticate, database, token)
        return actor

    def remembered(self, token: str, database: Database) -> Actor | None:
        """The actor for a token seen lately and still valid; None: ask `authenticate`."""
        key = hash_token(token)
        held = self._held.get(key)
        if held is None:
            return None
        credential, stored_at = held
        if self.clock() - stored_at > self.ttl or credential.expired(database.clock()):
            with self._lock:
                self._held.pop(key, None)
            return None
        return credential.actor

    def authenticate(self, database: Database, token: str) -> Actor:
        """Ask the database (blocking: call it from a worker thread); remember a live token."""
        generation = self._generation
        key = hash_token(token)
        credential = database.read_one(lambda connection: credential_of(connection, key))
        actor = credential.actor_at(database.clock())
        with self._lock:
            if generation == self._generation:
                self._held[key] = (credential, self.clock())
                self._held.move_to_end(key)
                while len(self._held) > self.size:
                    self._held.popitem(last=False)
        return actor

    def forget_user(self, user_id: int) -> None:
        with self._lock:
            self._generation += 1
            for key in [k for k, (c, _) in self._held.items() if c.actor.user_id == user_id]:
                del self._held[key]

    def on_events(self, events: EventRows) -> None:
        """Committed events, from Database.on_commit_rows (this process's own, before its
        response) or from the board hub (every process's)."""
        for event in events:
            if event["type"] == REVOKED:
                self.forget_user(int(event["entity_id"]))
