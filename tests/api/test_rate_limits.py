"""Rate limits: writes per token and failed authentications per address get 429 with
Retry-After; in Redis (shared by processes) when configured, in memory otherwise or when Redis
is down, never a 5xx."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from config.settings import Settings
from server.api import ratelimit
from server.api.ratelimit import AHEAD_UNITS, Limit, RedisBuckets
from server.app import create_app
from tests.conftest import REDIS_URL, free_port
from tests.factories import ADMIN_TOKEN, Api

SLOW = 0.01  # refill per second: nothing refills during a test
INCIDENT = {"kind": "flood", "title": "x", "lat": 38.0, "lon": 23.7, "severity": "low"}


def limited(database_url: str, **overrides: Any) -> tuple[Api, Any]:
    settings: dict[str, Any] = {
        "rate_limit_enabled": True,
        "rate_limit_writes_per_second": SLOW,
        "rate_limit_write_burst": 4,
        "rate_limit_auth_failures_per_minute": SLOW * 60,
        "rate_limit_auth_failure_burst": 3,
    }
    values = {"redis_url": None, "demo": False} | settings | overrides
    app = create_app(
        Settings(database_url=database_url, admin_token=ADMIN_TOKEN, **values), prepare=False
    )
    client = TestClient(app)
    return Api(client=client, tokens={"admin": ADMIN_TOKEN}), client


def assert_limited(response: Any) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["code"] == "rate_limited"


def events(api: Api) -> int:
    return int(api.ok(api.get("admin", "/api/v1/events"))["last_seq"])


def test_writes_per_token(database_url: str) -> None:
    api, client = limited(database_url, rate_limit_write_burst=6)
    with client:
        api.user("athens", "city_operator", "athens")  # admin write 1
        api.user("sofia", "city_operator", "sofia")  # admin write 2
        for _ in range(4):
            api.ok(api.post("athens", "/api/v1/incidents", INCIDENT), 201)
        assert api.post("athens", "/api/v1/incidents", INCIDENT).status_code == 201
        assert api.post("athens", "/api/v1/incidents", INCIDENT).status_code == 201
        before = events(api)
        assert_limited(api.post("athens", "/api/v1/incidents", INCIDENT))
        assert events(api) == before  # the refused write did nothing
        # Reads are not limited, other tokens have their own bucket.
        for _ in range(20):
            api.ok(api.get("athens", "/api/v1/incidents"))
        api.ok(api.post("sofia", "/api/v1/incidents", {**INCIDENT, "city": "sofia"}), 201)


def test_failed_authentication_per_address(sqlite_url: str) -> None:
    api, client = limited(sqlite_url)
    with client:
        api.user("coordinator", "coordinator")
        api.ok(api.get("coordinator", "/api/v1/users/me"))  # authenticated before the attack
        api.tokens["fresh"] = api.ok(
            api.post("admin", "/api/v1/users", {"name": "late", "role": "observer"}), 201
        )["token"]
        api.tokens["wrong"] = "b40_" + "x" * 43
        for _ in range(3):
            assert api.get("wrong", "/api/v1/cities").status_code == 401
        assert_limited(api.get("wrong", "/api/v1/cities"))
        assert_limited(api.get("anonymous", "/api/v1/cities"))
        # A token that authenticated recently is not held back by its address's failures ...
        api.ok(api.get("coordinator", "/api/v1/users/me"))
        api.ok(api.post("coordinator", "/api/v1/incidents", {**INCIDENT, "city": "athens"}), 201)
        # ... a token first seen now waits like the rest of the address ...
        assert_limited(api.get("fresh", "/api/v1/users/me"))
        # ... and probes, the board page and the API description are never limited.
        for path in ("/healthz", "/board", "/openapi.json"):
            assert api.get("anonymous", path).status_code == 200


def test_redis_buckets_are_shared_by_processes(sqlite_url: str, redis_prefix: str) -> None:
    """Two app instances (as two API processes) draw on one bucket per token."""
    common = {"redis_url": REDIS_URL, "redis_prefix": redis_prefix}
    first, first_client = limited(sqlite_url, **common)
    second, second_client = limited(sqlite_url, **common)
    with first_client, second_client:
        first.user("athens", "city_operator", "athens")
        second.tokens["athens"] = first.tokens["athens"]
        for api in (first, second, first, second):
            api.ok(api.post("athens", "/api/v1/incidents", INCIDENT), 201)
        assert_limited(second.post("athens", "/api/v1/incidents", INCIDENT))
        assert_limited(first.post("athens", "/api/v1/incidents", INCIDENT))


def test_redis_down_falls_back_to_memory(sqlite_url: str) -> None:
    """Nothing listens on the Redis port: writes still succeed, limits still hold, no 5xx."""
    dead = f"redis://127.0.0.1:{free_port()}/0"
    api, client = limited(sqlite_url, redis_url=dead, rate_limit_write_burst=3)
    with client:
        api.user("athens", "city_operator", "athens")
        statuses = [api.post("athens", "/api/v1/incidents", INCIDENT).status_code for _ in range(5)]
    assert statuses == [201, 201, 201, 429, 429]


def held_in_redis(prefix: str, key: str) -> float:
    raw = redis.Redis.from_url(REDIS_URL).hget(f"{prefix}:ratelimit:{key}", "tokens")
    return float(raw)  # type: ignore[arg-type]


async def test_units_taken_ahead_never_admit_more_than_the_shared_bucket(
    redis_prefix: str,
) -> None:
    """Two processes, one token, writes alternating between them: most writes go through on
    units a process took ahead, yet together they admit at most the bucket's burst, and at
    least the burst minus what each may hold unused."""
    limit = Limit(rate=SLOW, burst=100)
    first, second = RedisBuckets(REDIS_URL, redis_prefix), RedisBuckets(REDIS_URL, redis_prefix)
    try:
        admitted = from_memory = 0
        for n in range(150):
            bucket = (first, second)[n % 2]
            ahead_before = bucket.ahead.get("write:t", (0, 0.0))[0]
            decision = await bucket.take("write:t", limit, 1)
            admitted += decision.allowed
            from_memory += decision.allowed and ahead_before > 0
        assert limit.burst - 2 * AHEAD_UNITS <= admitted <= limit.burst
        assert from_memory >= admitted * AHEAD_UNITS // (AHEAD_UNITS + 1) - 2
        refused = await first.take("write:t", limit, 1)
        assert not refused.allowed
        assert refused.retry_after > 0
    finally:
        await first.close()
        await second.close()


async def test_a_small_bucket_takes_nothing_ahead(redis_prefix: str) -> None:
    buckets = RedisBuckets(REDIS_URL, redis_prefix)
    try:
        assert (await buckets.take("write:t", Limit(rate=SLOW, burst=4), 1)).allowed
        assert "write:t" not in buckets.ahead
        assert held_in_redis(redis_prefix, "write:t") == pytest.approx(3, abs=0.01)
    finally:
        await buckets.close()


async def test_units_held_ahead_expire_unused(
    redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimit, "HOLD_SECONDS", 0.05)
    limit = Limit(rate=SLOW, burst=100)
    buckets = RedisBuckets(REDIS_URL, redis_prefix)
    try:
        assert (await buckets.take("write:t", limit, 1)).allowed
        assert buckets.ahead["write:t"][0] == AHEAD_UNITS
        assert held_in_redis(redis_prefix, "write:t") == pytest.approx(
            100 - 1 - AHEAD_UNITS, abs=0.01
        )
        assert (await buckets.take("write:t", limit, 1)).allowed  # a held unit: no Redis
        assert held_in_redis(redis_prefix, "write:t") == pytest.approx(
            100 - 1 - AHEAD_UNITS, abs=0.01
        )
        await asyncio.sleep(0.1)
        # The held units are past their time: this write asks Redis again (and takes ahead).
        assert (await buckets.take("write:t", limit, 1)).allowed
        assert held_in_redis(redis_prefix, "write:t") == pytest.approx(
            100 - 2 * (1 + AHEAD_UNITS), abs=0.01
        )
        assert buckets.ahead["write:t"][0] == AHEAD_UNITS
    finally:
        await buckets.close()
