"""Worker tasks are idempotent: a redelivered task writes and counts nothing twice."""

from __future__ import annotations

from sqlalchemy import func, select

from core.db import session_scope
from core.models import Image, Job, Prediction
from tests.factories import jpeg_bytes, make_zip


def _job(session, job_id: str) -> Job:
    return session.get(Job, job_id)


def test_redelivered_classify_and_ingest_change_nothing(eager_client, embedded_settings, tmp_path):
    from worker.classify import classify_images
    from worker.ingest import ingest_job

    archive = make_zip(tmp_path / "a.zip", {f"{i}.jpg": jpeg_bytes(seed=200 + i) for i in range(6)})
    with archive.open("rb") as fh:
        job_id = eager_client.post("/v1/archives", files={"file": ("a.zip", fh)}).json()["job_id"]

    with session_scope(embedded_settings) as s:
        before = (_job(s, job_id).done, _job(s, job_id).total, _job(s, job_id).status)
        ids = list(s.scalars(select(Image.id)))
    assert before == (6, 6, "succeeded")

    classify_images(job_id, ids, embedded_settings)  # as if the broker redelivered it
    ingest_job(job_id, embedded_settings)
    with session_scope(embedded_settings) as s:
        job = _job(s, job_id)
        assert (job.done, job.total, job.failed, job.duplicates, job.status) == (
            6,
            6,
            0,
            0,
            "succeeded",
        )
        assert s.scalar(select(func.count()).select_from(Prediction)) == 6


def test_ingest_resumes_from_the_committed_position(eager_client, embedded_settings, tmp_path):
    """A worker killed mid-ingest: the redelivered task skips what was committed."""
    from core.models import JobStatus
    from worker.ingest import ingest_job

    archive = make_zip(
        tmp_path / "b.zip", {f"{i}.jpg": jpeg_bytes(seed=300 + i) for i in range(10)}
    )
    from core.models import JobKind
    from core.uploads import IncomingFile, submit

    with archive.open("rb") as fh:
        job = submit(JobKind.archive, [IncomingFile("b.zip", fh)], embedded_settings, enqueue=False)
    # Simulate a first delivery that committed 4 entries (one batch) and then died.
    with session_scope(embedded_settings) as s:
        row = _job(s, job.id)
        row.status = JobStatus.running
    from core.storage import Storage
    from worker.ingest import _commit_batch, job_entries

    with session_scope(embedded_settings) as s:
        entries = list(job_entries(_job(s, job.id), embedded_settings))[:4]
    _commit_batch(job.id, entries, 0, Storage(embedded_settings.storage_dir), embedded_settings)

    ingest_job(job.id, embedded_settings)
    with session_scope(embedded_settings) as s:
        row = _job(s, job.id)
        assert (row.total, row.done, row.duplicates, row.failed, row.status) == (
            10,
            10,
            0,
            0,
            "succeeded",
        )
        assert s.scalar(select(func.count()).select_from(Prediction)) == 10
