"""No job left behind: a broker restarted empty, a database cut off for longer than the tasks'
retries. With a Redis and a PostgreSQL of the test's own (killed with SIGKILL and started
again), real API and worker processes: every unfinished job resumes and finishes, with every
photo counted once and one prediction per photo.

The sweep interval and the stall timeout are seconds here (production: 15 s and 60 s, so a
job resumes within about 75 s of the outage's end)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import create_engine

from pawdex.core.models import JobStatus
from tests.factories import jpeg_bytes, make_zip
from tests.integration.private_services import PrivatePostgres, PrivateRedis
from tests.integration.test_crash_safety import (
    Workers,
    assert_nothing_lost,
    job_row,
    upload,
    wait_for,
)
from tests.stack import base_env, running_stack, wait_job

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECOVERY = dict(
    PAWDEX_BATCH_SIZE="4",
    PAWDEX_SWEEP_INTERVAL="1",
    PAWDEX_STALL_TIMEOUT="3",
    # Long enough that only the stall rule (queue empty, nothing moving) can resume a job.
    PAWDEX_INGEST_HEARTBEAT_TIMEOUT="600",
    PAWDEX_BROKER_VISIBILITY_TIMEOUT="600",
)


@pytest.fixture
def broker(tmp_path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def database() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.start()
    yield server
    server.stop()


def _archive(tmp_path, name: str, count: int, seed: int):
    photos = {f"{name}/{i:02d}.jpg": jpeg_bytes(seed=seed + i) for i in range(count)}
    return make_zip(tmp_path / f"{name}.zip", photos)


def test_jobs_finish_after_the_broker_restarts_empty(pg_url, broker, tmp_path):
    """Redis dies with one job's classify tasks and another job's ingest queued, and comes
    back empty: both jobs finish once workers run again."""
    env = base_env(tmp_path / "data", PAWDEX_DATABASE_URL=pg_url, PAWDEX_BROKER_URL=broker.url,
                   **RECOVERY)  # fmt: skip
    db = create_engine(pg_url)
    logs = tmp_path / "logs"
    ingest, inference = Workers("ingest", env, logs), Workers("inference", env, logs)
    with (
        running_stack(env, logs, embedded=False) as stack,
        httpx.Client(base_url=stack.url, headers=stack.headers, timeout=30) as client,
    ):
        ingest.start()
        classify_lost = upload(client, _archive(tmp_path, "first", 12, seed=3000))
        wait_for(lambda: job_row(db, classify_lost)["ingest_done"], "ingest never finished")
        assert broker.depth("inference") == 3  # three batches wait for an inference worker
        ingest.stop_all()
        ingest_lost = upload(client, _archive(tmp_path, "second", 8, seed=3100))
        wait_for(lambda: broker.depth("ingest") == 1, "the second job was never queued")

        broker.kill()
        broker.start()
        assert broker.depth("inference") == broker.depth("ingest") == 0  # all lost
        restarted = time.monotonic()
        ingest.start()
        inference.start()
        try:
            jobs = [wait_job(client, job_id, timeout=120, interval=0.5)
                    for job_id in (classify_lost, ingest_lost)]  # fmt: skip
        finally:
            ingest.stop_all()
            inference.stop_all()
        recovered_s = time.monotonic() - restarted
    print(f"broker restart: both jobs finished {recovered_s:.1f} s after it")
    for job, photos in zip(jobs, (12, 8), strict=True):
        assert (job["status"], job["done"], job["failed"]) == ("succeeded", photos, 0)
        assert_nothing_lost(db, job, photos=photos)
    assert "event=classify_resent" in inference.log_text() + ingest.log_text()
    db.dispose()


def test_a_job_finishes_after_a_database_outage_longer_than_its_retries(database, broker, tmp_path):
    """PostgreSQL dies while a job's photos are being classified and stays down while the
    classify tasks use up their one retry (their messages are gone); once it is back the
    sweeper sends the unclassified photos again and the job ends."""
    env = base_env(tmp_path / "data", PAWDEX_DATABASE_URL=database.url,
                   PAWDEX_BROKER_URL=broker.url, PAWDEX_TASK_RETRIES="1", **RECOVERY)  # fmt: skip
    db = create_engine(database.url, pool_pre_ping=True)
    logs = tmp_path / "logs"
    ingest = Workers("ingest", env, logs)
    inference = Workers("inference", env, logs, PAWDEX_TEST_CLASSIFY_DELAY="0.2")
    with (
        running_stack(env, logs, embedded=False) as stack,
        httpx.Client(base_url=stack.url, headers=stack.headers, timeout=30) as client,
    ):
        ingest.start()
        inference.start()
        job_id = upload(client, _archive(tmp_path, "kennel", 24, seed=3200))
        wait_for(lambda: job_row(db, job_id)["done"] >= 4, "classify never started", timeout=120)
        database.kill()
        wait_for(lambda: "Retry in" in inference.log_text() or "retry" in inference.log_text(),
                 "no classify task met the outage", timeout=60)  # fmt: skip
        time.sleep(10)  # past the retry: the remaining classify messages are gone
        assert broker.depth("inference") == 0
        database.start()
        restarted = time.monotonic()
        try:
            job = wait_job(client, job_id, timeout=120, interval=0.5)
        finally:
            ingest.stop_all()
            inference.stop_all()
        recovered_s = time.monotonic() - restarted
    print(f"database outage: the job finished {recovered_s:.1f} s after PostgreSQL came back")
    assert job["status"] == JobStatus.succeeded, job
    assert (job["total"], job["done"], job["failed"]) == (24, 24, 0)
    assert_nothing_lost(db, job, photos=24)
    assert "event=classify_resent" in inference.log_text() + ingest.log_text()
    db.dispose()
