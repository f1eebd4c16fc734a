from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from pawdex.api.deps import AdminKey, SessionDep, SettingsDep, ViewerKey, found
from pawdex.api.schemas import (
    DuplicateOut,
    DuplicatePage,
    FileError,
    JobErrorPage,
    JobOut,
    JobPage,
    errors,
)
from pawdex.core.jobs import (
    cancel_job,
    count_jobs,
    first_errors,
    job_duplicates,
    job_errors,
    list_jobs,
    live_job,
    plan_retry,
)
from pawdex.core.models import Job, JobStatus
from pawdex.core.queue import enqueue_classify_batches, enqueue_ingest

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=errors(400, 401, 429, 503))


def job_outs(session: Session, jobs: Sequence[Job]) -> list[JobOut]:
    """Jobs as documents, each with its first errors: one query for the lot."""
    errors_of = first_errors(session, [job.id for job in jobs])
    return [JobOut.of(job, errors_of[job.id]) for job in jobs]


def _job_out(session: Session, job_id: str) -> JobOut:
    return job_outs(session, [found(live_job(session, job_id), f"job {job_id}")])[0]


def _existing(session: Session, job_id: str) -> None:
    # Only the id: the action then reads the job under its own row lock. A job in the trash
    # is not found, nor is anything of it (its errors, its duplicates) until it is restored.
    live = (Job.id == job_id, Job.deletion_id.is_(None))
    found(session.scalar(select(Job.id).where(*live)), f"job {job_id}")


@router.get("/{job_id}", response_model=JobOut, responses=errors(404))
def get_job(job_id: str, session: SessionDep, _key: ViewerKey) -> JobOut:
    """Progress of a job, with one error per file that could not be indexed."""
    return _job_out(session, job_id)


@router.get("", response_model=JobPage)
def get_jobs(
    session: SessionDep,
    _key: ViewerKey,
    status: JobStatus | None = None,
    name: Annotated[
        str | None, Query(max_length=200, description="Part of the job's name, any case.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> JobPage:
    """Jobs, newest first; found by name (``kennel`` finds ``Kennel-2021.zip``). Reading them
    is open to every key, as one job is; cancelling and retrying are for admins."""
    jobs, next_cursor = list_jobs(session, status, limit, cursor, name)
    total, capped = count_jobs(session, status, name)
    return JobPage(
        items=job_outs(session, jobs), next_cursor=next_cursor, total=total, total_capped=capped
    )


@router.get("/{job_id}/errors", response_model=JobErrorPage, responses=errors(404))
def get_errors(
    job_id: str,
    session: SessionDep,
    _key: ViewerKey,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> JobErrorPage:
    """Every file of the job that could not be indexed, in the order they failed, a page at
    a time (the job's document holds only the first few)."""
    _existing(session, job_id)
    items, next_cursor = job_errors(session, job_id, limit, cursor)
    return JobErrorPage(items=[FileError.model_validate(e) for e in items], next_cursor=next_cursor)


@router.get("/{job_id}/duplicates", response_model=DuplicatePage, responses=errors(404))
def get_duplicates(
    job_id: str,
    session: SessionDep,
    _key: ViewerKey,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> DuplicatePage:
    """The job's files that were already in the archive, each with the photo it repeats."""
    _existing(session, job_id)
    rows, next_cursor = job_duplicates(session, job_id, limit, cursor)
    items = [
        DuplicateOut(name=dup.name, image_id=img.id, path=img.path, first_job_id=img.job_id)
        for dup, img in rows
    ]
    return DuplicatePage(items=items, next_cursor=next_cursor)


@router.post("/{job_id}/cancel", response_model=JobOut, responses=errors(403, 404, 409))
def cancel(job_id: str, session: SessionDep, key: AdminKey) -> JobOut:
    """Stop a queued or running job (admin). Its queued tasks end without work, its ingest
    stops at the next batch; photos already indexed stay indexed."""
    _existing(session, job_id)
    cancel_job(session, job_id, by=key.name)
    session.commit()
    return _job_out(session, job_id)


@router.post(
    "/{job_id}/retry", status_code=202, response_model=JobOut, responses=errors(403, 404, 409)
)
def retry(job_id: str, session: SessionDep, settings: SettingsDep, key: AdminKey) -> JobOut:
    """Queue again what a job did not finish (admin), whatever its state: photos whose
    classification failed or never ran (or whose messages were lost), and the rest of an
    unfinished upload. 409 when there is nothing to retry."""
    _existing(session, job_id)
    plan = plan_retry(session, job_id, by=key.name)
    session.commit()  # before the enqueue: the worker must find the job re-opened
    if plan.ingest:
        enqueue_ingest(job_id, settings)
    enqueue_classify_batches(job_id, plan.image_ids, settings)
    return _job_out(session, job_id)
