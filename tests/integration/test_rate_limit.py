"""The Redis token bucket: API processes on one Redis share each key's limit."""

from __future__ import annotations

import asyncio

import pytest
import redis

from pawdex.api.ratelimit import RedisRateLimiter, make_rate_limiter
from pawdex.core.settings import Settings

pytestmark = pytest.mark.integration


def test_two_api_processes_share_one_bucket_per_key(redis_url):
    first, second = RedisRateLimiter(redis_url), RedisRateLimiter(redis_url)

    async def scenario() -> tuple[list[float], list[float], float]:
        # Alternate between the two "processes": the burst of 4 is spent once, not twice.
        waits = [await limiter.take("key-a", 60, 4) for limiter in (first, second) * 3]
        other = [await second.take("key-b", 60, 4) for _ in range(2)]
        await asyncio.sleep(1.1)  # one token a second
        return waits, other, await first.take("key-a", 60, 4)

    waits, other, after_refill = asyncio.run(scenario())
    assert waits[:4] == [0.0] * 4
    assert all(0 < w <= 1.0 for w in waits[4:])
    assert other == [0.0, 0.0]
    assert after_refill == 0.0

    # The state expires once the bucket would be full again: nothing piles up in Redis.
    ttl = redis.Redis.from_url(redis_url).pttl(RedisRateLimiter.PREFIX + "key-a")
    assert 0 < ttl <= 5000


def test_the_limiter_follows_the_broker(redis_url, tmp_path):
    assert isinstance(make_rate_limiter(Settings(broker_url=redis_url)), RedisRateLimiter)
    assert not isinstance(
        make_rate_limiter(Settings(data_dir=tmp_path, broker_url=None)), RedisRateLimiter
    )
