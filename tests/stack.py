"""Run pawdex as real processes (API server, Celery workers) for integration and e2e tests.

The process helpers live in :mod:`bench.harness` (``pawdex bench`` uses them too), following
a job in :mod:`pawdex.cli.client`: they are re-exported here for the tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.harness import (
    Stack,
    admin_headers,
    base_env,
    die_with_parent,
    free_port,
    peak_rss_mb,
    running_server,
    running_stack,
    spawn,
    stop,
    wait_ready,
)
from pawdex.cli.client import wait_job
from pawdex.core.models import FINISHED_STATUSES as FINISHED

__all__ = [
    "FINISHED",
    "Stack",
    "admin_headers",
    "base_env",
    "die_with_parent",
    "free_port",
    "pawdex",
    "peak_rss_mb",
    "running_server",
    "running_stack",
    "spawn",
    "stop",
    "wait_job",
    "wait_ready",
]


def pawdex(*args: str, env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pawdex", *args], env=env, capture_output=True, text=True, **kwargs
    )


def migrated_production_env(
    data_dir: Path, database_url: str, broker_url: str, **extra: str
) -> dict[str, str]:
    """The environment of a production-mode stack (PostgreSQL + Redis), schema at head."""
    env = base_env(
        data_dir, PAWDEX_DATABASE_URL=database_url, PAWDEX_BROKER_URL=broker_url, **extra
    )
    migrated = pawdex("migrate", env=env, timeout=120)
    assert migrated.returncode == 0, migrated.stderr
    return env
