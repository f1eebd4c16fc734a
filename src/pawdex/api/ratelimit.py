"""Token buckets (one per API key, one per client address for failed authentications): in
this process, or in Redis so that API processes share them.

A bucket holds up to ``burst`` tokens and refills at ``per_minute`` tokens a minute; each
request takes one. ``take`` answers 0 when the request may go on, else the seconds until a
token is there (the ``Retry-After`` of the 429). ``peek`` answers the same without taking:
whether a bucket is empty now (the failed-authentication bucket is emptied by failures, and
checked before each request).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from pawdex.core.settings import Settings

log = logging.getLogger(__name__)


class RateLimiter(Protocol):
    async def take(self, bucket: str, per_minute: int, burst: int) -> float: ...

    async def peek(self, bucket: str, per_minute: int, burst: int) -> float: ...


def _wait(tokens: float, rate: float) -> float:
    """Seconds until a bucket holding ``tokens`` has one whole token."""
    return 0.0 if tokens >= 1 else (1 - tokens) / rate


class MemoryRateLimiter:
    """Buckets in this process: right for one API process (the embedded mode)."""

    MAX_BUCKETS = 10_000

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # bucket -> (tokens, at)

    async def take(self, bucket: str, per_minute: int, burst: int) -> float:
        # No await inside: on the event loop, read-modify-write is atomic.
        rate = per_minute / 60
        now = time.monotonic()
        tokens, at = self._buckets.get(bucket, (burst, now))
        tokens = min(burst, tokens + (now - at) * rate)
        wait = _wait(tokens, rate)
        if wait == 0:
            tokens -= 1
        if len(self._buckets) >= self.MAX_BUCKETS and bucket not in self._buckets:
            self._forget_full(now, rate, burst)
        self._buckets[bucket] = (tokens, now)
        return wait

    async def peek(self, bucket: str, per_minute: int, burst: int) -> float:
        rate = per_minute / 60
        if bucket not in self._buckets:
            return 0.0
        tokens, at = self._buckets[bucket]
        return _wait(min(burst, tokens + (time.monotonic() - at) * rate), rate)

    def _forget_full(self, now: float, rate: float, burst: int) -> None:
        """Drop buckets that have refilled: they hold nothing a new bucket would not."""
        full = [k for k, (t, at) in self._buckets.items() if t + (now - at) * rate >= burst]
        for key in full:
            del self._buckets[key]


# Atomic in Redis, on Redis's clock (API processes on several hosts agree on the time).
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""

# The same bucket arithmetic, read-only.
_PEEK = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
if not state[1] then return '0' end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tokens = math.min(burst, tonumber(state[1]) + math.max(0, now - tonumber(state[2])) * rate)
if tokens >= 1 then return '0' end
return tostring((1 - tokens) / rate)
"""


class RedisRateLimiter:
    """Buckets in Redis (one hash per key, expiring once full again): shared by every API
    process on the same Redis. If Redis does not answer, requests go on (fail open): the
    limit protects the service, it must not take it down."""

    PREFIX = "pawdex:ratelimit:"

    def __init__(self, url: str) -> None:
        self._url = url
        self._client: Any = None
        self._scripts: dict[str, Any] = {}

    def _script(self, source: str) -> Any:
        if self._client is None:  # created on first use, inside the server's event loop
            import redis.asyncio

            # Blocking: past its connections a request waits a moment for one (hundreds of
            # concurrent clients), rather than fail over to "unlimited".
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                self._url,
                max_connections=64,
                timeout=0.5,
                socket_timeout=0.5,
                socket_connect_timeout=0.5,
            )
            self._client = redis.asyncio.Redis(connection_pool=pool)
        if source not in self._scripts:
            self._scripts[source] = self._client.register_script(source)
        return self._scripts[source]

    async def _run(self, source: str, bucket: str, per_minute: int, burst: int) -> float:
        import redis

        try:
            wait = await self._script(source)(
                keys=[self.PREFIX + bucket], args=[per_minute / 60, burst]
            )
        except redis.RedisError as exc:
            log.warning("event=rate_limit_unavailable error=%s", type(exc).__name__)
            return 0.0
        return float(wait)

    async def take(self, bucket: str, per_minute: int, burst: int) -> float:
        return await self._run(_TAKE, bucket, per_minute, burst)

    async def peek(self, bucket: str, per_minute: int, burst: int) -> float:
        return await self._run(_PEEK, bucket, per_minute, burst)


def make_rate_limiter(settings: Settings) -> RateLimiter:
    url = settings.resolved_broker_url
    if url.startswith(("redis://", "rediss://")):
        return RedisRateLimiter(url)
    return MemoryRateLimiter()
