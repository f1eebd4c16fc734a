"""SQLAlchemy engine and sessions, one per process, built from the settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, Select, create_engine, event, func, make_url, select
from sqlalchemy.orm import Session, sessionmaker

from pawdex.core.settings import Settings, get_settings

# Seconds a PostgreSQL connection attempt may take. libpq's default is to wait forever: a
# database host whose packets are dropped would hang a worker's report or a request until
# the kernel gives up (minutes). The URL's own ``connect_timeout`` or PGCONNECT_TIMEOUT wins.
CONNECT_TIMEOUT = 10


def make_engine(url: str, pool: tuple[int, int, float] = (10, 15, 5.0)) -> Engine:
    """``pool``: PostgreSQL's connection pool (size, overflow, seconds a request waits for a
    connection before the API answers 503), from the settings."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:
            # WAL lets the API read while the embedded worker writes.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    size, overflow, timeout = pool
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=size,
        max_overflow=overflow,
        pool_timeout=timeout,
        connect_args=connect_args(url),
    )


def connect_args(url: str) -> dict[str, int]:
    """PostgreSQL's connect timeout, unless the URL or the environment sets one."""
    if "connect_timeout" in make_url(url).query or "PGCONNECT_TIMEOUT" in os.environ:
        return {}
    return {"connect_timeout": CONNECT_TIMEOUT}


@lru_cache
def engine_for(url: str, pool: tuple[int, int, float] = (10, 15, 5.0)) -> Engine:
    return make_engine(url, pool)


def get_engine(settings: Settings | None = None) -> Engine:
    settings = settings or get_settings()
    if settings.resolved_database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return engine_for(settings.resolved_database_url, _pool(settings))


def _pool(settings: Settings) -> tuple[int, int, float]:
    return (settings.db_pool_size, settings.db_max_overflow, settings.db_pool_timeout)


@lru_cache
def _session_factory(url: str, pool: tuple[int, int, float]) -> sessionmaker[Session]:
    return sessionmaker(bind=engine_for(url, pool), expire_on_commit=False)


def session_factory(settings: Settings | None = None) -> sessionmaker[Session]:
    settings = settings or get_settings()
    get_engine(settings)
    return _session_factory(settings.resolved_database_url, _pool(settings))


@contextmanager
def session_scope(settings: Settings | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = session_factory(settings)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def escape_like(text: str) -> str:
    """``text`` matched literally inside a LIKE pattern (with ``escape="\\"``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


COUNT_CAP = 10_000  # a list's total is counted up to here, never through a million rows


def count_capped(session: Session, matching: Select) -> tuple[int, bool]:
    """How many rows ``matching`` gives, up to ``COUNT_CAP``, and whether there are more.
    Give it the list's own ORDER BY: the count then walks the page's index, stopped early."""
    capped = matching.limit(COUNT_CAP + 1).subquery("matching")
    found = session.scalar(select(func.count()).select_from(capped)) or 0
    return min(found, COUNT_CAP), found > COUNT_CAP
