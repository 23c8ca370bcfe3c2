"""Rate limits: writes per token, authentication failures per client address (429 + Retry-After).

Token buckets, in Redis when it is configured (one Lua script: atomic, shared by every API
process) and in process memory otherwise. If Redis stops answering, the limiter falls back to
memory for a while and logs it: a limiter must never be the reason a write fails with a 5xx.
The numbers and why they are what they are: docs/security.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config.settings import Settings

log = logging.getLogger(__name__)
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REDIS_RETRY_SECONDS = 5.0  # after a Redis failure, stay on memory this long before trying again
REDIS_TIMEOUT_SECONDS = 0.25  # a limiter check may not hold a request longer than this
KNOWN_TOKENS = 10_000  # recently authenticated tokens (hashes) remembered per process
MEMORY_KEYS = 100_000  # buckets kept in memory before idle ones are dropped


@dataclass(frozen=True, slots=True)
class Limit:
    """A token bucket: `rate` per second sustained, `burst` at once."""

    rate: float
    burst: float


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after: float  # seconds until one unit is available (0 when allowed)


class Buckets(Protocol):
    async def take(self, key: str, limit: Limit, cost: int) -> Decision:
        """Take `cost` units (0: only look whether one is there)."""
        ...

    def replenish(self, key: str, limit: Limit) -> None:
        """After a write's response went out: get units ahead for the key's next writes."""
        ...

    async def close(self) -> None: ...


class MemoryBuckets:
    """Per-process buckets: the embedded default, and the fallback while Redis is away."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self.state: OrderedDict[str, tuple[float, float]] = OrderedDict()

    async def take(self, key: str, limit: Limit, cost: int) -> Decision:
        return self.take_now(key, limit, cost)

    def take_now(self, key: str, limit: Limit, cost: int) -> Decision:
        now = self.clock()
        tokens, stamp = self.state.get(key, (limit.burst, now))
        tokens = min(limit.burst, tokens + max(0.0, now - stamp) * limit.rate)
        need = max(cost, 1)
        if tokens >= need:
            self.state[key] = (tokens - cost, now)
            self.state.move_to_end(key)
            self._trim()
            return Decision(True, 0.0)
        self.state[key] = (tokens, now)
        return Decision(False, (need - tokens) / limit.rate)

    def _trim(self) -> None:
        while len(self.state) > MEMORY_KEYS:
            self.state.popitem(last=False)  # the least recently used bucket: long refilled

    def replenish(self, key: str, limit: Limit) -> None:
        return None  # nothing to fetch: the bucket is here

    async def close(self) -> None:
        return None


# KEYS[1] bucket; ARGV rate, burst, cost, extra. Redis's own clock, so every process agrees
# on time. When the take is allowed, up to `extra` more units are taken as well and their
# number returned: a process holds them for the token's next writes (RedisBuckets).
TOKEN_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local extra = tonumber(ARGV[4] or "0")
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil then tokens = burst; ts = now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local need = math.max(cost, 1)
local allowed = 0
local wait = 0
local granted = 0
if tokens >= need then
  tokens = tokens - cost
  allowed = 1
  granted = math.max(0, math.min(extra, math.floor(tokens)))
  tokens = tokens - granted
else
  wait = (need - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(wait), granted}
"""
HOLD_SECONDS = 1.0  # a unit taken ahead is used within this or not at all
AHEAD_UNITS = 4  # taken with a write's unit, for the token's next writes in this process


class RedisBuckets:
    """Buckets shared by every API process; memory while Redis is unreachable.

    A write would wait for a Redis round trip before its own work (about 0.6 ms here, a
    twelfth of a posted request). So a take of a write unit also takes up to `AHEAD_UNITS`
    more, which the process holds for the same token's next writes; once a write has used the
    last held unit and its response has gone out, the middleware has them refilled in the
    background (`replenish`): a token writing steadily goes through at once on every write but
    its first. Not earlier: a refill's Redis call on the event loop while the write's own
    transaction runs in its thread slows that transaction (they share the interpreter lock). A
    write that finds none held while a refill is on its way waits for that refill rather than
    asking Redis itself, so a process never holds more than `AHEAD_UNITS` for a token. Every
    write admitted still took a unit from the shared bucket, so the processes together never
    admit more than the limit; units held and not used within `HOLD_SECONDS` are dropped, so a
    token may get up to `AHEAD_UNITS` writes per process fewer than a single bucket would give
    it, for that second.
    """

    def __init__(self, url: str, prefix: str, fallback: MemoryBuckets | None = None) -> None:
        import redis.asyncio as aioredis

        self.client = aioredis.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )
        self.script = self.client.register_script(TOKEN_BUCKET_LUA)
        self.prefix = prefix
        self.fallback = fallback or MemoryBuckets()
        self.down_until = 0.0
        self.ahead: OrderedDict[str, tuple[int, float]] = OrderedDict()  # units, good until
        self.refills: dict[str, asyncio.Task[None]] = {}  # in flight, by bucket key

    async def take(self, key: str, limit: Limit, cost: int) -> Decision:
        if cost == 1:
            refill = self.refills.get(key)
            if refill is not None:
                with contextlib.suppress(Exception):  # if it failed, this write asks below
                    await asyncio.shield(refill)  # its units are for this write
            if self._use_ahead(key):
                return Decision(True, 0.0)
        decision, granted = await self._take(key, limit, cost, extra=_extra(limit, cost))
        self._hold(key, granted)
        return decision

    def replenish(self, key: str, limit: Limit) -> None:
        """Take the key's next units ahead in the background if none are held (and none are on
        their way). A refill takes no unit of its own (cost 0), so it never refuses anything."""
        if key in self.refills or _extra(limit, 1) < 1:
            return
        units, until = self.ahead.get(key, (0, 0.0))
        if units > 0 and time.monotonic() < until:
            return

        async def refill() -> None:
            _, granted = await self._take(key, limit, 0, extra=_extra(limit, 1))
            self._hold(key, granted)

        task = asyncio.create_task(refill(), name=f"rate-limit refill {key}")
        self.refills[key] = task
        task.add_done_callback(lambda _: self.refills.pop(key, None))

    def _use_ahead(self, key: str) -> bool:
        units, until = self.ahead.get(key, (0, 0.0))
        if time.monotonic() >= until:
            self.ahead.pop(key, None)
            return False
        if units < 1:
            return False
        self.ahead[key] = (units - 1, until)
        return True

    def _hold(self, key: str, granted: int) -> None:
        if granted < 1:
            return
        units, until = self.ahead.get(key, (0, 0.0))
        if time.monotonic() >= until:
            units = 0
        self.ahead[key] = (units + granted, time.monotonic() + HOLD_SECONDS)
        self.ahead.move_to_end(key)
        while len(self.ahead) > MEMORY_KEYS:
            self.ahead.popitem(last=False)

    async def _take(self, key: str, limit: Limit, cost: int, extra: int) -> tuple[Decision, int]:
        if time.monotonic() < self.down_until:
            return self.fallback.take_now(key, limit, cost), 0
        try:
            allowed, wait, granted = await self.script(
                keys=[f"{self.prefix}:ratelimit:{key}"],
                args=[limit.rate, limit.burst, cost, extra],
            )
        except Exception as error:  # any Redis trouble: never a 5xx because of the limiter
            self.down_until = time.monotonic() + REDIS_RETRY_SECONDS
            log.warning("rate limiter: Redis unavailable (%s); using memory", type(error).__name__)
            return self.fallback.take_now(key, limit, cost), 0
        return Decision(bool(int(allowed)), float(wait)), int(granted)

    async def close(self) -> None:
        for refill in list(self.refills.values()):
            refill.cancel()
        await asyncio.gather(*self.refills.values(), return_exceptions=True)
        await self.client.aclose()


def _extra(limit: Limit, cost: int) -> int:
    """Units a write takes ahead: at most a twentieth of the burst per process, so a small
    bucket stays exact; none for a look (cost 0) or a take of several."""
    return min(AHEAD_UNITS, int(limit.burst // 20)) if cost == 1 else 0


@dataclass(frozen=True, slots=True)
class RateLimits:
    writes: Limit  # per token
    auth_failures: Limit  # per client address


class RateLimit:
    """ASGI middleware: a write bucket per token, a failed-authentication bucket per address.

    An address over its failure limit gets 429 on /api/ calls, except with a token that
    authenticated recently in this process: coordinators behind the same NAT or proxy as an
    attacker keep working. Probes, the board page and /metrics are never limited.
    """

    def __init__(self, app: ASGIApp, limits: RateLimits, buckets: Buckets) -> None:
        self.app = app
        self.limits = limits
        self.buckets = buckets
        self.known: OrderedDict[str, None] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        token_key = hashlib.sha256(token.encode()).hexdigest()[:32] if token else None
        address = scope["client"][0] if scope.get("client") else "unknown"
        if token_key is None or token_key not in self.known:
            decision = await self.buckets.take(f"authfail:{address}", self.limits.auth_failures, 0)
            if not decision.allowed:
                await _refuse(send, decision, "too many failed authentications from this address")
                return
        if token_key is not None and scope["method"] in WRITE_METHODS:
            decision = await self.buckets.take(f"write:{token_key}", self.limits.writes, 1)
            if not decision.allowed:
                await _refuse(send, decision, "too many writes with this token")
                return
        status = 0

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watching_send)
        if token_key is not None and scope["method"] in WRITE_METHODS:
            self.buckets.replenish(f"write:{token_key}", self.limits.writes)
        if status == 401:
            await self.buckets.take(f"authfail:{address}", self.limits.auth_failures, 1)
        elif token_key is not None and scope.get("b40", {}).get("actor") is not None:
            self._remember(token_key)

    def _remember(self, token_key: str) -> None:
        self.known[token_key] = None
        self.known.move_to_end(token_key)
        while len(self.known) > KNOWN_TOKENS:
            self.known.popitem(last=False)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            text: str = bytes(value).decode("latin-1")
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


async def _refuse(send: Send, decision: Decision, reason: str) -> None:
    retry_after = max(1, math.ceil(decision.retry_after))
    body = json.dumps(
        {"detail": f"{reason}; retry after {retry_after} s", "code": "rate_limited"}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(retry_after).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def rate_limits(settings: Settings) -> RateLimits:
    return RateLimits(
        writes=Limit(settings.rate_limit_writes_per_second, settings.rate_limit_write_burst),
        auth_failures=Limit(
            settings.rate_limit_auth_failures_per_minute / 60.0,
            settings.rate_limit_auth_failure_burst,
        ),
    )


def make_buckets(redis_url: str | None, prefix: str) -> Buckets:
    return RedisBuckets(redis_url, prefix) if redis_url else MemoryBuckets()
