from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from api.deps import AdminKey, SessionDep, ViewerKey
from api.schemas import JobOut, JobPage, errors
from core.jobs import list_jobs
from core.models import Job, JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=errors(400, 401, 429))


@router.get("/{job_id}", response_model=JobOut, responses=errors(404))
def get_job(job_id: str, session: SessionDep, _key: ViewerKey) -> Job:
    """Progress of a job, with one error per file that could not be indexed."""
    job = session.scalar(select(Job).options(selectinload(Job.errors)).where(Job.id == job_id))
    if job is None:
        raise HTTPException(404, f"job {job_id} not found")
    return job


@router.get("", response_model=JobPage, responses=errors(403))
def get_jobs(
    session: SessionDep,
    _key: AdminKey,
    status: JobStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> JobPage:
    """All jobs, newest first (admin)."""
    jobs, next_cursor = list_jobs(session, status, limit, cursor)
    return JobPage(items=[JobOut.model_validate(j) for j in jobs], next_cursor=next_cursor)
