"""A worker started by Celery's own command (as docker-compose's health checks and Flower
do) is a complete pawdex worker: it reports its presence, sweeps lost ingests and, when it
classifies, loads the model before its first task."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from pawdex.core.db import session_scope
from pawdex.core.models import Job, JobKind, JobStatus, WorkerPresence, utcnow
from pawdex.core.settings import Settings
from tests.stack import die_with_parent, migrated_production_env, stop

pytestmark = pytest.mark.integration


def celery_worker(env: dict[str, str], log, *args: str) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "pawdex.worker.celery_app", "worker",
             "--without-gossip", "--without-mingle", *args],
            env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
        )  # fmt: skip


def wait_for(predicate, timeout: float, what: str, log):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what} after {timeout}s; worker log:\n{log.read_text()[-3000:]}")


def test_a_prefork_worker_reports_each_child_and_sweeps_lost_ingests(tmp_path, pg_url, redis_url):
    env = migrated_production_env(
        tmp_path / "data",
        pg_url,
        redis_url,
        PAWDEX_SWEEP_INTERVAL="1",
        PAWDEX_PRESENCE_INTERVAL="1",
    )
    settings = Settings(database_url=pg_url, broker_url=redis_url, data_dir=tmp_path / "data")
    with session_scope(settings) as session:  # queued, but its message was never sent
        lost = Job(kind=JobKind.archive, source=[], created_at=utcnow() - timedelta(hours=1))
        session.add(lost)
        session.flush()
        lost_id = lost.id
    log = tmp_path / "worker.log"
    proc = celery_worker(env, log, "-Q", "ingest", "--pool", "prefork", "-c", "2", "-n", "plain@%h")
    try:

        def reports() -> list[WorkerPresence]:
            with session_scope(settings) as session:
                rows = list(session.scalars(select(WorkerPresence)))
                session.expunge_all()
                return rows if len(rows) == 2 else []

        rows = wait_for(reports, 60, "no presence from both children", log)
        assert all(row.hostname.startswith("plain@") for row in rows)
        assert {row.pid for row in rows} == {int(r.hostname.rsplit("/", 1)[1]) for r in rows}
        assert all(row.queues == ["ingest"] for row in rows)

        def resumed() -> JobStatus | None:
            with session_scope(settings) as session:
                status = session.get(Job, lost_id).status
                return status if status != JobStatus.queued else None

        wait_for(resumed, 60, "the lost ingest was never resumed", log)
        assert f"event=ingest_resumed job_id={lost_id}" in log.read_text()
    finally:
        stop(proc)


def test_a_solo_inference_worker_loads_the_model_before_its_first_task(tmp_path, pg_url, redis_url):
    env = migrated_production_env(tmp_path / "data", pg_url, redis_url)
    settings = Settings(database_url=pg_url, broker_url=redis_url, data_dir=tmp_path / "data")
    log = tmp_path / "worker.log"
    proc = celery_worker(env, log, "-Q", "inference", "--pool", "solo", "-n", "solo@%h")
    try:

        def reported() -> WorkerPresence | None:
            with session_scope(settings) as session:
                row = session.scalars(select(WorkerPresence)).first()
                if row is not None:
                    session.expunge(row)
                return row

        row = wait_for(reported, 180, "no presence report", log)
        assert row.hostname.startswith("solo@")
        assert row.queues == ["inference"]
        assert row.model_version  # loaded before any task arrived
        assert row.batches == 0
    finally:
        stop(proc)


def test_workers_starting_together_register_the_served_model_once(tmp_path, pg_url, redis_url):
    """Two workers preloading the same model at once on a database with no version yet
    (replicas, prefork children, inference hosts started together): the second's insert
    waits for the first's row and keeps it. It used to fail on the unique version, and
    Celery swallowed the error: that worker ran on without its presence or its sweeper."""
    import threading

    from pawdex.core.db import session_factory
    from pawdex.core.model_versions import register_version
    from pawdex.core.models import ModelVersion

    migrated_production_env(tmp_path / "data", pg_url, redis_url)
    settings = Settings(database_url=pg_url, broker_url=redis_url, data_dir=tmp_path / "data")
    sessions = session_factory(settings)
    details = {"input_size": 224}
    first = sessions()
    first.begin()
    register_version(first, "v-shared", "lite0", details, activate=True)  # not committed yet
    second: dict = {}

    def register_too() -> None:
        try:
            with sessions.begin() as session:
                second["id"] = register_version(session, "v-shared", "lite0", details).id
        except Exception as exc:  # the assertion below says which
            second["error"] = exc

    racing = threading.Thread(target=register_too)
    racing.start()
    racing.join(1)
    assert racing.is_alive()  # waiting on the first worker's row, not failing
    first.commit()
    racing.join(30)
    first.close()
    assert "error" not in second, second.get("error")
    with session_scope(settings) as session:
        rows = list(session.scalars(select(ModelVersion)))
        assert [(row.version, row.active) for row in rows] == [("v-shared", True)]
        assert second["id"] == rows[0].id
