"""Real PostgreSQL and Redis on this machine: a fresh database per test, a private Redis db."""

from __future__ import annotations

import os
import uuid

import pytest

PG_ADMIN_URL = os.environ.get("PAWDEX_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PAWDEX_TEST_REDIS", "redis://127.0.0.1:6379/11")


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable ({exc}); see the README (make test) to start it"
    if os.environ.get("CI"):
        pytest.fail(message)  # in CI the services are started by .ci/run: never skip there
    pytest.skip(message)


@pytest.fixture
def pg_url():
    import psycopg

    name = f"pawdex_test_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL", exc)
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    yield f"{base}/{name}"
    from pawdex.core.db import engine_for

    engine_for.cache_clear()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url():
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
        client.flushdb()
    except redis.RedisError as exc:
        _unavailable("Redis", exc)
    yield REDIS_URL
    client.flushdb()
