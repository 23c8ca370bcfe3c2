"""Remembered tokens (server/services/credentials.py): fast, and never trusted after a revocation.

A process answers a token it has seen from memory; these tests show when it must ask the
database again: a revocation committed here (at once) or in another API process (as soon as
the event reaches this process's hub), an expiry passing, the time-to-live running out, and a
revocation that lands while an answer is being read.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from server.db.engine import make_engine
from server.db.unit_of_work import Database
from server.services.credentials import TokenCache
from tests.conftest import ADMIN_TOKEN
from tests.factories import Clock, make_api


class CountingDatabase(Database):
    """The real Database, counting the single-statement reads (token lookups) it serves."""

    reads = 0

    def read_one(self, fn: Any) -> Any:
        self.reads += 1
        return super().read_one(fn)


def test_a_token_revoked_in_this_process_is_refused_on_its_next_request(
    database_url: str,
) -> None:
    api, client = make_api(database_url)
    with client:
        victim = api.ok(
            api.post("admin", "/api/v1/users", {"name": "victim", "role": "coordinator"}), 201
        )
        api.tokens["victim"] = victim["token"]
        api.ok(api.get("victim", "/api/v1/incidents"))  # remembered from here on
        api.ok(api.post("admin", f"/api/v1/users/{victim['id']}/revoke"))
        refused = api.get("victim", "/api/v1/incidents")
        assert refused.status_code == 401
        assert "revoked" in refused.json()["detail"]
        # Writes too, and the other tokens still work.
        assert api.post("victim", "/api/v1/incidents", {}).status_code == 401
        api.ok(api.get("admin", "/api/v1/incidents"))


def test_a_remembered_token_is_refused_once_it_expires(database_url: str) -> None:
    clock = Clock()
    api, client = make_api(database_url, clock=clock)
    with client:
        api.user("temp", "coordinator", expires_at=clock.now + timedelta(minutes=5))
        api.ok(api.get("temp", "/api/v1/incidents"))
        clock.now += timedelta(minutes=10)
        refused = api.get("temp", "/api/v1/incidents")
        assert refused.status_code == 401
        assert "expired" in refused.json()["detail"]


def test_the_database_is_asked_once_per_token_until_the_ttl_runs_out(pg_url: str) -> None:
    from config.settings import Settings

    database = CountingDatabase(make_engine(Settings(database_url=pg_url).database_url))
    from server.services.users import ensure_admin_token

    database.run(lambda tx: ensure_admin_token(tx, ADMIN_TOKEN))
    ticks = [0.0]
    tokens = TokenCache(ttl=30.0, clock=lambda: ticks[0])
    actor = tokens.authenticate(database, ADMIN_TOKEN)
    assert database.reads == 1
    for _ in range(5):
        assert tokens.remembered(ADMIN_TOKEN, database) == actor
    assert database.reads == 1
    ticks[0] = 31.0
    assert tokens.remembered(ADMIN_TOKEN, database) is None, "past its time-to-live"
    assert tokens.remembered("b40_never-seen", database) is None
    database.engine.dispose()


def test_an_answer_read_while_a_revocation_commits_is_not_remembered(pg_url: str) -> None:
    """The read saw the token live; the revocation's event came before the answer was
    stored. Storing it would trust a revoked token until the TTL runs out."""
    from config.settings import Settings
    from server.services.users import ensure_admin_token

    tokens = TokenCache()

    class RevokedMeanwhile(Database):
        def read_one(self, fn: Any) -> Any:
            answer = super().read_one(fn)
            tokens.on_events([{"type": "user.revoked", "entity_id": str(answer.actor.user_id)}])
            return answer

    database = RevokedMeanwhile(make_engine(Settings(database_url=pg_url).database_url))
    database.run(lambda tx: ensure_admin_token(tx, ADMIN_TOKEN))
    tokens.authenticate(database, ADMIN_TOKEN)  # answered: it was live when read
    assert tokens.remembered(ADMIN_TOKEN, database) is None
    database.engine.dispose()


def test_only_the_revoked_users_tokens_are_forgotten(sqlite_url: str) -> None:
    api, client = make_api(sqlite_url)
    with client:
        api.user("a", "coordinator")
        api.user("b", "coordinator")
        for who in ("a", "b"):
            api.ok(api.get(who, "/api/v1/incidents"))
        tokens: TokenCache = client.app.state.tokens  # type: ignore[attr-defined]
        database: Database = client.app.state.database  # type: ignore[attr-defined]
        a_id = tokens.remembered(api.tokens["a"], database)
        assert a_id is not None
        tokens.on_events([{"type": "user.revoked", "entity_id": str(a_id.user_id)}])
        tokens.on_events([{"type": "request.created", "entity_id": str(a_id.user_id)}])
        assert tokens.remembered(api.tokens["a"], database) is None
        assert tokens.remembered(api.tokens["b"], database) is not None
