"""Job bookkeeping shared by the API and the workers: counters, completion, resumption."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select, union_all, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from pawdex.core.cursors import cursor_datetime, cursor_row_id, decode_cursor, encode_cursor
from pawdex.core.db import count_capped, escape_like
from pawdex.core.errors import InvalidCursor, PawdexError
from pawdex.core.models import (
    FINISHED_STATUSES,
    Image,
    Job,
    JobDuplicate,
    JobError,
    JobImage,
    JobStatus,
    Prediction,
    TrashedPrediction,
    utcnow,
)

NAME_MAX = 200
ERRORS_SHOWN = 20  # per-file errors in a job's document; the rest: GET /v1/jobs/{id}/errors


def job_name(names: list[str], given: str | None = None) -> str:
    """What a job is called: ``given`` (trimmed) if any, else its upload's or folder's name
    (``kennel-2021.zip``; ``rex.jpg and 11 more`` for loose photos)."""
    if given and given.strip():
        return given.strip()[:NAME_MAX]
    if not names:
        return "empty upload"
    first = names[0].rsplit("/", 1)[-1] or names[0]
    return (first if len(names) == 1 else f"{first} and {len(names) - 1} more")[:NAME_MAX]


def dialect_insert(session: Session) -> Any:
    """The session's dialect's ``insert`` (SQLite or PostgreSQL: both know ON CONFLICT)."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def insert_ignoring_conflicts(session: Session, model: type, index_elements: list[str]) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING``."""
    return dialect_insert(session)(model).on_conflict_do_nothing(index_elements=index_elements)


def upsert(
    session: Session, model: type, index_elements: list[str], values: list[dict], where_not: dict
) -> Any:
    """``INSERT … ON CONFLICT DO UPDATE`` of every other column, skipped for existing rows
    whose columns already equal ``where_not`` (so a redelivered batch updates nothing and
    ``RETURNING`` reports only what changed)."""
    stmt = dialect_insert(session)(model).values(values)
    columns = [c for c in values[0] if c not in index_elements]
    table = model.__table__
    condition = and_(
        *(or_(table.c[name].is_(None), table.c[name] != value) for name, value in where_not.items())
    )
    return stmt.on_conflict_do_update(
        index_elements=index_elements,
        set_={c: stmt.excluded[c] for c in columns} | {"created_at": utcnow()},
        where=condition,
    )


def add_to_counters(session: Session, job_id: str, **deltas: int) -> None:
    """Atomic ``counter = counter + n`` so concurrent tasks never lose an update; any call
    is progress (``progress_at``), even one that counts nothing new."""
    values = {name: getattr(Job, name) + n for name, n in deltas.items() if n}
    session.execute(update(Job).where(Job.id == job_id).values(**values, progress_at=utcnow()))


def final_status(job: Job) -> JobStatus:
    if job.failed == 0:
        return JobStatus.succeeded
    if job.done + job.duplicates == 0:
        return JobStatus.failed
    return JobStatus.partial


def finish_if_complete(session: Session, job_id: str) -> JobStatus | None:
    """Close the job once every entry is accounted for. Safe to call from any task, any time."""
    job = session.execute(
        select(Job).where(Job.id == job_id).with_for_update()
    ).scalar_one_or_none()
    if job is None or job.status in FINISHED_STATUSES or not job.ingest_done:
        return None
    if job.accounted < job.total:
        return None
    job.status = final_status(job)
    job.finished_at = utcnow()
    return job.status


def fail_job(session: Session, job_id: str, message: str) -> None:
    """End a job that cannot go on (its upload vanished, an unexpected error)."""
    job = session.get(Job, job_id)
    if job is not None and job.status not in FINISHED_STATUSES:
        job.status = JobStatus.failed
        job.message = message
        job.finished_at = utcnow()


class LeaseLost(Exception):
    """Another delivery of ``ingest`` took the job over: this one was presumed dead."""


def _stale(heartbeat: datetime | None, timeout: float) -> bool:
    return heartbeat is None or heartbeat < utcnow() - timedelta(seconds=timeout)


def take_ingest_lease(session: Session, job_id: str, token: str, timeout: float) -> Job | None:
    """Make this delivery of ``ingest`` the one that works on the job, and count the attempt.

    None when there is nothing to do: the job is unknown, finished or fully ingested, or
    another delivery holds the lease and is alive (its heartbeat is fresh) — the broker
    delivers a task again when it outlives the visibility timeout, and that copy must not
    run beside the original."""
    job = session.execute(
        select(Job).where(Job.id == job_id).with_for_update()
    ).scalar_one_or_none()
    if job is None or job.status in FINISHED_STATUSES or job.ingest_done:
        return None
    if job.ingest_lease is not None and not _stale(job.heartbeat_at, timeout):
        return None
    job.ingest_lease = token
    job.heartbeat_at = utcnow()
    job.ingest_attempts += 1
    return job


def renew_ingest_lease(session: Session, job_id: str, token: str, *, progress: bool) -> Job:
    """Heartbeat (with the job row locked, at the start of the transaction that records a
    batch). Raises ``LeaseLost`` when another delivery took over. On progress the attempts
    start again from this delivery alone."""
    job = session.execute(select(Job).where(Job.id == job_id).with_for_update()).scalar_one()
    if job.ingest_lease != token:
        raise LeaseLost(job_id)
    job.heartbeat_at = utcnow()
    if progress:
        job.ingest_attempts = 1
    return job


def release_ingest_lease(session: Session, job_id: str, token: str, *, attempt: bool) -> None:
    """Give the lease back; ``attempt=False`` un-counts this delivery (it stopped on an error
    it caught and will be retried: not a crash)."""
    job = session.execute(
        select(Job).where(Job.id == job_id).with_for_update()
    ).scalar_one_or_none()
    if job is not None and job.ingest_lease == token:
        job.ingest_lease = None
        if not attempt:
            job.ingest_attempts = max(0, job.ingest_attempts - 1)


def stalled_ingests(
    session: Session, heartbeat_timeout: float, stall_timeout: float, queue_empty: bool
) -> list[str]:
    """Jobs to ingest that no live delivery works on, so the caller queues them again:

    - a lease holder silent for ``heartbeat_timeout`` (its worker vanished);
    - with the ingest queue empty, a job nobody holds and silent for ``stall_timeout``: its
      message was lost (the broker restarted without persistence, the API stopped between
      its commit and its enqueue, a retry could not reach the broker).

    Their lease is dropped and the heartbeat renewed, so each is queued once per timeout."""
    now = utcnow()
    silent_since = func.coalesce(Job.heartbeat_at, Job.created_at)
    lost = silent_since < now - timedelta(seconds=heartbeat_timeout)
    if queue_empty:
        lost = or_(
            lost,
            and_(Job.ingest_lease.is_(None), silent_since < now - timedelta(seconds=stall_timeout)),
        )
    jobs = list(
        session.scalars(
            select(Job)
            .where(
                Job.status.in_([JobStatus.queued, JobStatus.running]),
                Job.ingest_done.is_(False),
                lost,
            )
            .order_by(Job.created_at)
            .with_for_update(skip_locked=True)
        )
    )
    for job in jobs:
        job.ingest_lease = None
        job.heartbeat_at = now
    return [job.id for job in jobs]


def stalled_classifies(session: Session, stall_timeout: float) -> list[str]:
    """Fully ingested jobs still running whose counters have not moved for
    ``stall_timeout``: with the inference queue empty (the caller checks), their classify
    messages were lost (broker restart, retries used up during a database outage). Their
    ``progress_at`` is renewed, so each is re-sent once per timeout."""
    now = utcnow()
    silent_since = func.coalesce(Job.progress_at, Job.heartbeat_at, Job.created_at)
    jobs = list(
        session.scalars(
            select(Job)
            .where(
                Job.status == JobStatus.running,
                Job.ingest_done.is_(True),
                silent_since < now - timedelta(seconds=stall_timeout),
            )
            .order_by(Job.created_at)
            .with_for_update(skip_locked=True)
        )
    )
    for job in jobs:
        job.progress_at = now
    return [job.id for job in jobs]


def live_job(session: Session, job_id: str) -> Job | None:
    """The job, unless it is in the trash (a job in the trash is not found)."""
    return session.scalar(select(Job).where(Job.id == job_id, Job.deletion_id.is_(None)))


def first_errors(session: Session, job_ids: Collection[str]) -> dict[str, list[JobError]]:
    """The first ``ERRORS_SHOWN`` per-file errors of each job, in one query that reads about
    that many index entries per job: a job document costs the same whether the upload had 20
    bad files or 50,000 (``job_errors`` pages the rest)."""
    if not job_ids:
        return {}
    # One LIMIT per job, each planned with its own job id: a correlated or windowed form let
    # PostgreSQL walk the primary key past a large job's rows (EXPLAIN ANALYZE: 13,000 read).
    firsts = [
        select(JobError.id)
        .where(JobError.job_id == job_id)
        .order_by(JobError.id)
        .limit(ERRORS_SHOWN)
        .subquery()
        for job_id in job_ids
    ]
    shown = union_all(*(select(first) for first in firsts))
    stmt = select(JobError).where(JobError.id.in_(shown)).order_by(JobError.id)
    found: dict[str, list[JobError]] = {job_id: [] for job_id in job_ids}
    for error in session.scalars(stmt):
        found[error.job_id].append(error)
    return found


def job_errors(
    session: Session, job_id: str, limit: int, cursor: str | None
) -> tuple[list[JobError], str | None]:
    """All the job's per-file errors, in the order they happened, a page at a time."""
    stmt = select(JobError).where(JobError.job_id == job_id)
    rows, next_cursor = _page_by_id(session, stmt, JobError.id, limit, cursor)
    return [error for (error,) in rows], next_cursor


def _jobs_matching(stmt: Select, status: JobStatus | None, name: str | None) -> Select:
    stmt = stmt.where(Job.deletion_id.is_(None))  # not in the trash
    if status is not None:
        stmt = stmt.where(Job.status == status)
    if name:
        stmt = stmt.where(Job.name.ilike(f"%{escape_like(name)}%", escape="\\"))
    return stmt


def count_jobs(session: Session, status: JobStatus | None, name: str | None) -> tuple[int, bool]:
    """How many jobs ``list_jobs`` would list, up to ``db.COUNT_CAP``, and whether more."""
    matching = _jobs_matching(select(Job.id), status, name)
    return count_capped(session, matching.order_by(Job.created_at.desc(), Job.id.desc()))


def list_jobs(
    session: Session,
    status: JobStatus | None,
    limit: int,
    cursor: str | None,
    name: str | None = None,
) -> tuple[list[Job], str | None]:
    """Newest first, keyset-paginated on (created_at, id); ``name``: part of the job's name,
    any case."""
    stmt = _jobs_matching(select(Job), status, name)
    if cursor:
        payload = decode_cursor(cursor)
        if not isinstance(payload, list) or len(payload) != 2:
            raise InvalidCursor("invalid cursor")
        created, job_id = cursor_datetime(payload[0]), payload[1]
        if not isinstance(job_id, str) or "\x00" in job_id:
            raise InvalidCursor("invalid cursor")
        stmt = stmt.where(
            or_(Job.created_at < created, and_(Job.created_at == created, Job.id < job_id))
        )
    jobs = list(
        session.scalars(stmt.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1))
    )
    next_cursor = None
    if len(jobs) > limit:
        last = jobs[limit - 1]
        next_cursor = encode_cursor([last.created_at, last.id])
    return jobs[:limit], next_cursor


def job_duplicates(
    session: Session, job_id: str, limit: int, cursor: str | None
) -> tuple[list[tuple[JobDuplicate, Image]], str | None]:
    """The job's duplicate files, in upload order, each with the photo it repeats."""
    stmt = (
        select(JobDuplicate, Image)
        .join(Image, Image.id == JobDuplicate.image_id)
        .where(JobDuplicate.job_id == job_id)
    )
    return _page_by_id(session, stmt, JobDuplicate.id, limit, cursor)  # type: ignore[return-value]


def _page_by_id(
    session: Session, stmt: Select, id_column: Any, limit: int, cursor: str | None
) -> tuple[list[tuple[Any, ...]], str | None]:
    """One page of ``stmt``'s rows in ``id_column`` order, after the cursor's id; each row's
    first entity carries that id."""
    if cursor:
        stmt = stmt.where(id_column > cursor_row_id(decode_cursor(cursor)))
    rows = [tuple(row) for row in session.execute(stmt.order_by(id_column).limit(limit + 1))]
    next_cursor = encode_cursor(rows[limit - 1][0].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


class JobConflict(PawdexError):
    """The job is not in a state where this is possible (cancel a finished job, retry a
    job with nothing to retry)."""


def unclassified_image_ids(session: Session, job_id: str) -> list[int]:
    """The job's own new photos (not its duplicates) with neither a prediction from this
    job nor a per-file error: what is still owed to ``classify``."""
    return list(
        session.scalars(
            select(JobImage.image_id)
            .where(JobImage.job_id == job_id, JobImage.duplicate.is_(False))
            .where(
                ~exists().where(
                    Prediction.image_id == JobImage.image_id, Prediction.job_id == job_id
                )
            )
            .where(  # a photo deleted since, classified by this job: done, in the trash
                ~exists().where(
                    TrashedPrediction.image_id == JobImage.image_id,
                    TrashedPrediction.job_id == job_id,
                )
            )
            .where(
                ~exists().where(JobError.job_id == job_id, JobError.image_id == JobImage.image_id)
            )
            .order_by(JobImage.image_id)
        )
    )


def cancel_job(session: Session, job_id: str, by: str) -> Job:
    """Stop a job: its queued classify tasks find it cancelled and do nothing, and its
    ingest loses its lease at the next batch and stops. What was indexed stays."""
    job = session.execute(
        select(Job).where(Job.id == job_id).with_for_update()
    ).scalar_one_or_none()
    if job is None:
        raise LookupError(job_id)
    if job.status in FINISHED_STATUSES:
        raise JobConflict(f"job {job_id} has already finished ({job.status.value})")
    job.status = JobStatus.cancelled
    job.message = f"cancelled by {by}"
    job.finished_at = utcnow()
    job.ingest_lease = None
    return job


@dataclass
class RetryPlan:
    job: Job
    ingest: bool  # resume the upload's ingest (it also re-sends what is unclassified)
    image_ids: list[int]  # photos to classify again


def plan_retry(session: Session, job_id: str, by: str) -> RetryPlan:
    """Re-open a job for what it did not finish, whatever its state: photos whose
    classification failed (their errors are removed and their attempts reset), photos never
    classified (the job was cancelled or failed, or their messages were lost), and an
    ingest that did not reach the end of the upload (a live delivery, if any, loses its
    lease and stops at its next batch). Files that could not be read stay failed: their
    bytes would fail again."""
    job = session.execute(
        select(Job).where(Job.id == job_id).with_for_update()
    ).scalar_one_or_none()
    if job is None:
        raise LookupError(job_id)
    retried = list(
        session.scalars(
            select(JobError).where(JobError.job_id == job_id, JobError.image_id.is_not(None))
        )
    )
    resume_ingest = not job.ingest_done
    if not retried and not resume_ingest and not unclassified_image_ids(session, job_id):
        why = (
            "it succeeded"
            if job.status == JobStatus.succeeded
            else "its failed files cannot be read"
        )
        raise JobConflict(f"job {job_id} has nothing to retry: {why}")
    for error in retried:
        session.delete(error)
    session.execute(update(JobImage).where(JobImage.job_id == job_id).values(attempts=0))
    job.failed -= len(retried)
    job.status = JobStatus.running if job.started_at else JobStatus.queued
    job.finished_at = None
    job.progress_at = utcnow()
    job.message = f"retried by {by}"
    if resume_ingest:
        job.ingest_lease = None
        job.ingest_attempts = 0
        job.heartbeat_at = utcnow()
    session.flush()
    ids = [] if resume_ingest else unclassified_image_ids(session, job_id)
    return RetryPlan(job, resume_ingest, ids)


def job_rate(job: Job, now: datetime | None = None) -> tuple[float | None, float | None]:
    """Photos per second since the job started, and the seconds left at that pace."""
    if job.started_at is None:
        return None, None
    end = job.finished_at or now or utcnow()
    elapsed = (end - job.started_at).total_seconds()
    handled = job.accounted
    if elapsed <= 0 or handled == 0:
        return None, None
    rate = handled / elapsed
    if job.status in FINISHED_STATUSES:
        return rate, None
    left = max(job.total - handled, 0)
    return rate, (left / rate if job.ingest_done else None)
