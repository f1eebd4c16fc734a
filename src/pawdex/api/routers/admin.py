from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, StrictBool

from pawdex.api.deps import AdminKey, SessionDep, SettingsDep
from pawdex.api.schemas import BreedCount, JobOut, errors
from pawdex.core.model_versions import create_reindex_job
from pawdex.core.monitoring import overview
from pawdex.core.queue import enqueue_classify_batches

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=errors(400, 401, 403, 429))


class QueueOut(BaseModel):
    name: str
    depth: int | None


class WorkerOut(BaseModel):
    hostname: str
    queues: list[str]
    device: str | None
    runtime: str | None
    model_version: str | None
    current_task: str | None
    last_seen: datetime
    online: bool
    batches: int
    photos: int
    last_batch_seconds: float | None


class MinuteOut(BaseModel):
    minute: str
    photos: int


class FailureOut(BaseModel):
    job_id: str
    name: str
    error: str
    created_at: datetime


class ModelOut(BaseModel):
    version: str
    name: str


class OverviewOut(BaseModel):
    queues: list[QueueOut]
    workers: list[WorkerOut]
    throughput: list[MinuteOut]
    photos_last_hour: int
    failures_last_hour: int
    jobs_by_status: dict[str, int]
    recent_failures: list[FailureOut]
    active_model: ModelOut | None
    breeds: list[BreedCount]
    flower_url: str | None


@router.get("/overview", response_model=OverviewOut, responses=errors(422))
def admin_overview(session: SessionDep, settings: SettingsDep, _key: AdminKey) -> OverviewOut:
    """The admin dashboard's data: queue depths, workers online and their device, photos
    classified per minute over the last hour, failures, the active model, breeds."""
    o = overview(session, settings)
    return OverviewOut(
        queues=[QueueOut(name=n, depth=d) for n, d in o.queues.items()],
        workers=[
            WorkerOut(
                hostname=w.hostname,
                queues=w.queues,
                device=w.device,
                runtime=w.runtime,
                model_version=w.model_version,
                current_task=w.current_task,
                last_seen=w.last_seen,
                online=online,
                batches=w.batches,
                photos=w.photos,
                last_batch_seconds=w.last_batch_seconds,
            )
            for w, online in o.workers
        ],
        throughput=[MinuteOut(minute=m, photos=n) for m, n in o.throughput],
        photos_last_hour=sum(n for _, n in o.throughput),
        failures_last_hour=o.failures_last_hour,
        jobs_by_status=o.jobs_by_status,
        recent_failures=[FailureOut(**vars(f)) for f in o.recent_failures],
        active_model=ModelOut(version=o.active_model[0], name=o.active_model[1])
        if o.active_model
        else None,
        breeds=[BreedCount(breed=b, count=n) for b, n in o.breeds],
        flower_url=settings.flower_url,
    )


class ReindexIn(BaseModel):
    all: StrictBool = False


@router.post("/reindex", status_code=202, response_model=JobOut, responses=errors(409))
def reindex(body: ReindexIn, session: SessionDep, settings: SettingsDep, _key: AdminKey) -> JobOut:
    """Classify the stored photos with the active model, as an ordinary job: those it has
    not classified yet, or with ``all`` every photo again (its earlier predictions of them
    are replaced; other models' predictions stay)."""
    plan = create_reindex_job(session, everything=body.all)
    session.commit()
    enqueue_classify_batches(plan.job.id, plan.image_ids, settings)
    session.refresh(plan.job)
    return JobOut.of(plan.job)
