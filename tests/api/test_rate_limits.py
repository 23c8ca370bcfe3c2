"""Rate limits: writes per token and failed authentications per address get 429 with
Retry-After; in Redis (shared by processes) when configured, in memory otherwise or when Redis
is down, never a 5xx."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from config.settings import Settings
from server.api import ratelimit
from server.api.ratelimit import AHEAD_UNITS, Limit, RateLimit, RateLimits, RedisBuckets
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


async def refilled(buckets: RedisBuckets) -> None:
    """Until the background refills in flight are done (they are one Redis round trip)."""
    for _ in range(500):
        if not buckets.refills:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("a refill did not finish")


async def test_a_token_writing_steadily_never_waits_for_redis_after_its_first_write(
    redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The middleware, once a write's response is out, has the token's spent units refilled in
    the background, so every later write is served from held units (no Redis round trip on
    its way in), and each one still took a unit from the shared bucket."""
    buckets = RedisBuckets(REDIS_URL, redis_prefix)
    limits = RateLimits(writes=Limit(rate=SLOW, burst=100), auth_failures=Limit(SLOW, 3))
    token = "steady-token"
    key = "write:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    served: list[int] = []

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        served.append(1)
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def post() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"{}"}

        async def send(message: Any) -> None:
            return None

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/api/v1/requests",
            "headers": [(b"authorization", f"Bearer {token}".encode())],
            "client": ("127.0.0.1", 1),
        }
        await RateLimit(endpoint, limits, buckets)(scope, receive, send)

    asked: list[int] = []  # the cost of each Redis call for the token's bucket
    ask_redis = buckets._take

    async def counted(key_: str, limit: Limit, cost: int, extra: int) -> Any:
        if key_ == key:
            asked.append(cost)
        return await ask_redis(key_, limit, cost, extra)

    monkeypatch.setattr(buckets, "_take", counted)
    try:
        steady = 3 * (AHEAD_UNITS + 1)
        for _ in range(1 + steady):
            await post()
            await refilled(buckets)
        assert len(served) == 1 + steady
        # Only the first write asked Redis on its way in (cost 1); every other call was a
        # background refill (cost 0), one per AHEAD_UNITS writes.
        assert asked.count(1) == 1
        assert asked.count(0) == steady // AHEAD_UNITS
        held = buckets.ahead[key][0]
        assert held_in_redis(redis_prefix, key) == pytest.approx(
            100 - (1 + steady) - held, abs=0.01
        )
    finally:
        await buckets.close()


async def test_a_write_during_a_refill_waits_for_it_instead_of_asking_redis_itself(
    redis_prefix: str,
) -> None:
    limit = Limit(rate=SLOW, burst=100)
    buckets = RedisBuckets(REDIS_URL, redis_prefix)
    try:
        assert (await buckets.take("write:t", limit, 1)).allowed
        for _ in range(AHEAD_UNITS):
            assert (await buckets.take("write:t", limit, 1)).allowed  # held units
        buckets.replenish("write:t", limit)  # as the middleware does after the response
        assert "write:t" in buckets.refills
        assert (await buckets.take("write:t", limit, 1)).allowed  # on the refill's units
        assert buckets.ahead["write:t"][0] == AHEAD_UNITS - 1
        # One take with its units ahead, one refill: nothing else left the shared bucket.
        assert held_in_redis(redis_prefix, "write:t") == pytest.approx(
            100 - (1 + AHEAD_UNITS) - AHEAD_UNITS, abs=0.01
        )
    finally:
        await buckets.close()


async def test_a_write_whose_refill_failed_asks_redis_itself(
    redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = Limit(rate=SLOW, burst=100)
    buckets = RedisBuckets(REDIS_URL, redis_prefix)
    ask_redis = buckets._take

    async def refills_break(key: str, limit_: Limit, cost: int, extra: int) -> Any:
        if cost == 0:
            raise RuntimeError("the refill broke")
        return await ask_redis(key, limit_, cost, extra)

    monkeypatch.setattr(buckets, "_take", refills_break)
    try:
        assert (await buckets.take("write:t", limit, 1)).allowed
        for _ in range(AHEAD_UNITS):
            assert (await buckets.take("write:t", limit, 1)).allowed
        buckets.replenish("write:t", limit)
        assert (await buckets.take("write:t", limit, 1)).allowed  # after the failed refill
        assert held_in_redis(redis_prefix, "write:t") == pytest.approx(
            100 - 2 * (1 + AHEAD_UNITS), abs=0.01
        )
    finally:
        await buckets.close()
