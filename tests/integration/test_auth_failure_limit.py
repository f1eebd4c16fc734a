"""Failed authentications, limited per client address through Redis: API processes on one
Redis share an address's bucket, so a brute force spread over them gets 429 all the same."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient

from pawdex.api import limits
from pawdex.api.main import create_app
from pawdex.api.ratelimit import RedisRateLimiter
from pawdex.core.migrate import upgrade_to_head
from pawdex.core.settings import Settings

pytestmark = pytest.mark.integration


def test_peek_reads_a_bucket_without_taking(redis_url):
    limiter = RedisRateLimiter(redis_url)

    async def scenario() -> tuple[list[float], list[float], float, float]:
        before = [await limiter.peek("addr-a", 60, 2) for _ in range(3)]  # unknown: open
        taken = [await limiter.take("addr-a", 60, 2) for _ in range(2)]
        empty = await limiter.peek("addr-a", 60, 2)
        return before, taken, empty, await limiter.peek("addr-b", 60, 2)

    before, taken, empty, other = asyncio.run(scenario())
    assert before == [0.0] * 3 and taken == [0.0, 0.0]
    assert 0 < empty <= 1.0  # one token a second
    assert other == 0.0


def test_peek_fails_open_when_redis_is_down():
    assert asyncio.run(RedisRateLimiter("redis://127.0.0.1:1/0").peek("k", 1, 1)) == 0.0


def test_two_api_processes_share_an_address_bucket(pg_url, redis_url, tmp_path):
    settings = Settings(data_dir=tmp_path / "var", database_url=pg_url, broker_url=redis_url)
    upgrade_to_head(settings)
    address = ("203.0.113.77", 40000)
    # One event loop per client for its whole life (as in a server): the Redis client is
    # bound to the loop it was created in.
    with (
        TestClient(create_app(settings), client=address) as first,
        TestClient(create_app(settings), client=address) as second,
        TestClient(create_app(settings), client=("198.51.100.8", 40000)) as elsewhere,
    ):
        statuses = [
            (first, second)[i % 2].get("/v1/me", headers={"X-API-Key": f"pdx_guess{i}"})
            for i in range(limits.AUTH_FAILURE_BURST)
        ]
        assert [r.status_code for r in statuses] == [401] * limits.AUTH_FAILURE_BURST
        for client in (first, second):
            refused = client.get("/v1/me", headers={"X-API-Key": "pdx_guess"})
            assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert elsewhere.get("/v1/me", headers={"X-API-Key": "pdx_guess"}).status_code == 401
