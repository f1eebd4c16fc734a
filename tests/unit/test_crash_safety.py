"""Crash safety, in one process: the ingest lease, the sweeper of lost ingests, poison files,
retries of transient errors, the spool sweeper. (With real processes killed by SIGKILL:
tests/integration/test_crash_safety.py.)"""

from __future__ import annotations

import io
import os
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from pawdex.core.db import session_scope
from pawdex.core.jobs import LeaseLost, take_ingest_lease
from pawdex.core.models import Job, JobImage, JobKind, JobStatus, utcnow
from pawdex.core.uploads import IncomingFile, submit, sweep_spool
from tests.factories import jpeg_bytes, make_zip


def _archive_job(settings, tmp_path, count: int, seed: int) -> str:
    entries = {f"{i:02d}.jpg": jpeg_bytes(seed=seed + i) for i in range(count)}
    archive = make_zip(tmp_path / f"{seed}.zip", entries)
    with archive.open("rb") as fh:
        return submit(JobKind.archive, [IncomingFile("a.zip", fh)], settings, enqueue=False).id


def _job(settings, job_id: str) -> Job:
    with session_scope(settings) as s:
        job = s.get(Job, job_id)
        _ = job.errors  # loaded before the session closes
        return job


def _set(settings, job_id: str, **values) -> None:
    with session_scope(settings) as s:
        s.execute(update(Job).where(Job.id == job_id).values(**values))


def test_a_delivery_never_runs_beside_a_live_one(embedded_settings, tmp_path):
    """The broker delivers a task again when it outlives the visibility timeout: that copy
    finds the lease held and its heartbeat fresh, and does nothing."""
    from pawdex.worker.ingest import ingest_job

    job_id = _archive_job(embedded_settings, tmp_path, 6, seed=100)
    with session_scope(embedded_settings) as s:
        take_ingest_lease(s, job_id, "the-first-delivery", timeout=300).status = "running"

    ingest_job(job_id, embedded_settings)
    job = _job(embedded_settings, job_id)
    assert (job.ingest_lease, job.ingest_position, job.total) == ("the-first-delivery", 0, 0)


def test_a_delivery_presumed_dead_records_nothing_when_it_wakes_up(embedded_settings, tmp_path):
    from pawdex.worker.ingest import Delivery, _commit_batch, ingest_job, job_entries
    from pawdex.worker.sweeper import sweep

    job_id = _archive_job(embedded_settings, tmp_path, 6, seed=110)
    with session_scope(embedded_settings) as s:
        job = take_ingest_lease(s, job_id, "stalled", timeout=300)
        job.status, job.started_at = JobStatus.running, utcnow()
        entries = list(job_entries(job, embedded_settings))
    _set(embedded_settings, job_id, heartbeat_at=utcnow() - timedelta(seconds=301))
    assert sweep(embedded_settings).ingests == [job_id]  # queued again (to the filesystem broker)
    ingest_job(job_id, embedded_settings)  # ... and taken over by the next delivery
    assert _job(embedded_settings, job_id).total == 6

    with pytest.raises(LeaseLost):
        _commit_batch(Delivery.of(job_id, "stalled", embedded_settings), entries[:4], 0)
    job = _job(embedded_settings, job_id)
    assert (job.total, job.ingest_position, job.ingest_done) == (6, 6, True)


def test_the_sweeper_requeues_only_ingests_that_nobody_works_on(
    embedded_settings, tmp_path, monkeypatch
):
    from pawdex.worker.sweeper import sweep

    old = utcnow() - timedelta(seconds=400)
    ids = {}
    for name, values in {
        "worker_vanished": dict(status="running", ingest_lease="x", heartbeat_at=old),
        "never_queued": dict(status="queued", created_at=old),  # API died before its enqueue
        "alive": dict(status="running", ingest_lease="y", heartbeat_at=utcnow()),
        "just_queued": dict(status="queued"),
        "classifying": dict(status="running", ingest_done=True, heartbeat_at=old),
        "finished": dict(status="failed", heartbeat_at=old),
    }.items():
        ids[name] = _archive_job(embedded_settings, tmp_path, 1, seed=120 + len(ids))
        _set(embedded_settings, ids[name], **values)
    sent: list[str] = []
    monkeypatch.setattr(
        "pawdex.worker.sweeper.enqueue_ingest", lambda job_id, _s=None: sent.append(job_id)
    )

    assert sorted(sweep(embedded_settings).ingests) == sorted(
        [ids["worker_vanished"], ids["never_queued"]]
    )
    assert sorted(sent) == sorted([ids["worker_vanished"], ids["never_queued"]])
    assert _job(embedded_settings, ids["worker_vanished"]).ingest_lease is None
    assert sweep(embedded_settings).ingests == []  # once per heartbeat timeout, not on every pass


def test_an_entry_that_keeps_killing_ingest_is_skipped(embedded_settings, tmp_path):
    """Deliveries that died reading the entry at the position, alone (after the first death,
    entries are committed one at a time), ``max_attempts`` times: the next one skips it."""
    from pawdex.worker.ingest import ingest_job

    job_id = _archive_job(embedded_settings, tmp_path, 6, seed=130)
    _set(
        embedded_settings,
        job_id,
        status="running",
        started_at=utcnow(),
        ingest_lease="dead",
        heartbeat_at=utcnow() - timedelta(seconds=301),
        ingest_attempts=embedded_settings.max_attempts,  # deliveries so far, all dead
    )
    ingest_job(job_id, embedded_settings)
    job = _job(embedded_settings, job_id)
    assert (job.total, job.failed, job.ingest_done) == (6, 1, True)
    assert [(e.name, e.error) for e in job.errors] == [
        ("00.jpg", "this file stopped the worker 3 times while it was read; skipped")
    ]


def test_an_ingest_that_keeps_dying_elsewhere_fails_the_job_clearly(embedded_settings, tmp_path):
    """Even skipping the entry did not help (the archive, or the host, kills the worker)."""
    from pawdex.worker.ingest import ingest_job

    job_id = _archive_job(embedded_settings, tmp_path, 6, seed=140)
    _set(
        embedded_settings,
        job_id,
        status="running",
        started_at=utcnow(),
        ingest_position=4,
        ingest_lease="dead",
        heartbeat_at=utcnow() - timedelta(seconds=301),
        ingest_attempts=embedded_settings.max_attempts + 1,
    )
    ingest_job(job_id, embedded_settings)
    job = _job(embedded_settings, job_id)
    assert (job.status, job.total, job.ingest_lease) == ("failed", 0, None)
    assert job.message == (
        "ingest stopped: its worker was lost 4 times in a row at entry 4 of the upload "
        "(killed, out of memory?)"
    )
    assert job.finished_at is not None


def _ingested(settings, count: int, seed: int) -> tuple[str, list[int]]:
    """Ingested, not classified (the filesystem broker just keeps the classify tasks)."""
    from pawdex.core.models import Image
    from pawdex.worker.ingest import ingest_job

    files = [IncomingFile(f"{i}.jpg", io.BytesIO(jpeg_bytes(seed=seed + i))) for i in range(count)]
    job = submit(JobKind.images, files, settings, enqueue=False)
    ingest_job(job.id, settings)
    with session_scope(settings) as s:
        return job.id, list(s.scalars(select(Image.id).where(Image.job_id == job.id)))


def _attempts(settings, job_id: str) -> dict[int, int]:
    with session_scope(settings) as s:
        rows = s.execute(
            select(JobImage.image_id, JobImage.attempts).where(JobImage.job_id == job_id)
        )
        return dict(rows.all())


def test_a_photo_that_keeps_killing_classify_becomes_a_file_error(embedded_settings, served_model):
    from pawdex.worker.classify import classify_images

    job_id, ids = _ingested(embedded_settings, 3, seed=150)
    # A first delivery took the batch and died; a second took the photos one at a time and
    # died on the first: it has now been in hand at every death (max_attempts times).
    with session_scope(embedded_settings) as s:
        s.execute(update(JobImage).where(JobImage.job_id == job_id).values(attempts=1))
        s.execute(update(JobImage).where(JobImage.image_id == ids[0]).values(attempts=3))

    classify_images(job_id, ids, embedded_settings)
    job = _job(embedded_settings, job_id)
    assert (job.status, job.done, job.failed) == ("partial", 2, 1)
    assert [(e.name, e.error) for e in job.errors] == [
        ("0.jpg", "this photo stopped the worker 3 times; skipped")
    ]
    assert _attempts(embedded_settings, job_id) == {ids[0]: 3, ids[1]: 2, ids[2]: 2}


def test_a_transient_database_error_is_retried_with_backoff(
    embedded_settings, served_model, monkeypatch
):
    """An OperationalError (the database restarting) makes the task retry, with exponential
    backoff, until it succeeds; it does not count as a crash of the photos in hand."""
    from pawdex.core.queue import get_celery
    from pawdex.worker import classify, tasks

    job_id, ids = _ingested(embedded_settings, 2, seed=160)
    record, failures = classify._record, []

    def flaky_record(*args, **kwargs):
        if len(failures) < 2:
            failures.append(1)
            raise OperationalError("INSERT …", {}, Exception("server closed the connection"))
        return record(*args, **kwargs)

    countdowns: list[float] = []
    retry = tasks.classify.retry

    def recording_retry(*args, **kwargs):
        countdowns.append(kwargs["countdown"])
        return retry(*args, **kwargs)

    monkeypatch.setattr(classify, "_record", flaky_record)
    monkeypatch.setattr(tasks.classify, "retry", recording_retry)
    get_celery(embedded_settings)  # the eager apply below runs on this app
    result = tasks.classify.apply(args=[job_id, ids])

    assert result.successful()
    assert len(countdowns) == 2
    assert all(0 <= c <= 2**n * 2 for n, c in enumerate(countdowns, start=1))
    job = _job(embedded_settings, job_id)
    assert (job.status, job.done, job.failed) == ("succeeded", 2, 0)
    assert set(_attempts(embedded_settings, job_id).values()) == {1}  # errors were given back


def test_the_spool_sweep_deletes_only_old_batches_no_live_job_reads(embedded_settings):
    spool = embedded_settings.spool_dir
    batches = {name: spool / (name[0] * 32) for name in ("orphan", "recent", "used")}
    for path in batches.values():
        path.mkdir(parents=True)
        (path / "000000").write_bytes(b"half an upload")
    two_hours_ago = time.time() - 7200
    for name in ("orphan", "used"):
        for path in (batches[name] / "000000", batches[name]):
            os.utime(path, (two_hours_ago, two_hours_ago))
    with session_scope(embedded_settings) as s:
        source = [{"name": "a.zip", "spool": f"{batches['used'].name}/000000"}]
        s.add(Job(kind=JobKind.archive, status=JobStatus.running, source=source))

    assert sweep_spool(embedded_settings) == [batches["orphan"].name]
    assert sorted(p.name for p in spool.iterdir()) == sorted(
        [batches["recent"].name, batches["used"].name]
    )


@pytest.fixture
def eager(embedded_settings, served_model):
    import pawdex.worker.tasks  # noqa: F401  registers the tasks
    from pawdex.core.queue import get_celery

    celery = get_celery(embedded_settings)
    celery.conf.task_always_eager = True
    yield embedded_settings
    celery.conf.task_always_eager = False


def test_classify_work_lost_after_ingest_is_sent_again(eager, tmp_path, monkeypatch):
    """The classify messages of a fully ingested job vanished (a broker restarted without
    persistence, a task used up its retries): once its counters stood still for
    ``stall_timeout`` with the inference queue empty, the sweeper sends its photos again."""
    from pawdex.core.models import Prediction
    from pawdex.worker import ingest
    from pawdex.worker.ingest import ingest_job
    from pawdex.worker.sweeper import sweep

    job_id = _archive_job(eager, tmp_path, 6, seed=140)
    monkeypatch.setattr(ingest, "enqueue_classify_batches", lambda *args: None)  # lost
    ingest_job(job_id, eager)
    job = _job(eager, job_id)
    assert (job.status, job.ingest_done, job.done) == (JobStatus.running, True, 0)

    assert sweep(eager).classifies == {}  # still within the stall timeout
    _set(eager, job_id, progress_at=utcnow() - timedelta(seconds=eager.stall_timeout + 1))
    assert sweep(eager).classifies == {job_id: 6}
    job = _job(eager, job_id)
    assert (job.status, job.done, job.failed) == (JobStatus.succeeded, 6, 0)
    with session_scope(eager) as s:
        rows = s.scalars(select(Prediction.image_id).where(Prediction.job_id == job_id)).all()
    assert len(rows) == len(set(rows)) == 6  # one prediction per photo
    assert sweep(eager).classifies == {}


def test_only_the_closing_was_lost(eager, tmp_path):
    from pawdex.worker.ingest import ingest_job
    from pawdex.worker.sweeper import sweep

    job_id = _archive_job(eager, tmp_path, 2, seed=150)
    ingest_job(job_id, eager)
    _set(
        eager, job_id, status="running", finished_at=None, progress_at=utcnow() - timedelta(hours=1)
    )
    sweep(eager)
    assert _job(eager, job_id).status == JobStatus.succeeded


def test_a_lost_ingest_message_is_resent_after_the_stall_timeout_when_its_queue_is_empty(
    embedded_settings, tmp_path, monkeypatch
):
    """Not after the heartbeat timeout (minutes): a queued job nobody holds, silent for
    ``stall_timeout``, is queued again, unless messages wait in the ingest queue."""
    from pawdex.worker import sweeper

    job_id = _archive_job(embedded_settings, tmp_path, 1, seed=160)
    stale = utcnow() - timedelta(seconds=embedded_settings.stall_timeout + 1)
    _set(embedded_settings, job_id, created_at=stale)
    monkeypatch.setattr(sweeper, "enqueue_ingest", lambda *args: None)
    monkeypatch.setattr(sweeper, "queue_depth", lambda queue, settings: 1)
    assert sweeper.sweep(embedded_settings).ingests == []  # its message may be among those
    monkeypatch.setattr(sweeper, "queue_depth", lambda queue, settings: 0)
    assert sweeper.sweep(embedded_settings).ingests == [job_id]


def test_retry_works_on_a_job_that_has_not_finished(eager, tmp_path, monkeypatch):
    from pawdex.core.jobs import plan_retry
    from pawdex.worker import ingest
    from pawdex.worker.ingest import ingest_job

    job_id = _archive_job(eager, tmp_path, 3, seed=170)
    monkeypatch.setattr(ingest, "enqueue_classify_batches", lambda *args: None)  # lost
    ingest_job(job_id, eager)
    with session_scope(eager) as s:
        plan = plan_retry(s, job_id, by="admin")
        assert (plan.ingest, len(plan.image_ids)) == (False, 3)


def test_the_first_batch_of_an_ingest_is_small_so_classification_starts_early(
    embedded_settings, tmp_path, monkeypatch
):
    """The first 8 photos go to the inference queue before the rest are decoded; then
    ``batch_size`` at a time. Each photo is sent once."""
    from pawdex.worker import ingest
    from pawdex.worker.ingest import ingest_job

    settings = embedded_settings.model_copy(update={"batch_size": 10})
    job_id = _archive_job(settings, tmp_path, 23, seed=160)
    sent: list[list[int]] = []
    monkeypatch.setattr(ingest, "enqueue_classify_batches", lambda _job, ids, _s: sent.append(ids))
    ingest_job(job_id, settings)
    assert [len(ids) for ids in sent] == [ingest.FIRST_BATCH, 10, 5]
    assert len({i for ids in sent for i in ids}) == 23
