from __future__ import annotations

from fastapi import APIRouter

from pawdex.api.deps import AdminKey, SessionDep, SettingsDep
from pawdex.api.routers.jobs import job_outs
from pawdex.api.schemas import JobOut, OverviewOut, ReindexIn, errors
from pawdex.core.model_versions import create_reindex_job
from pawdex.core.monitoring import overview
from pawdex.core.queue import enqueue_classify_batches

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=errors(400, 401, 403, 429, 503))


@router.get("/overview", response_model=OverviewOut, responses=errors(422))
def admin_overview(session: SessionDep, settings: SettingsDep, _key: AdminKey) -> OverviewOut:
    """The admin dashboard's data: queue depths, workers online and their device, photos
    classified per minute over the last hour, failures, the active model, breeds."""
    return OverviewOut.of(overview(session, settings), settings.flower_url)


@router.post("/reindex", status_code=202, response_model=JobOut, responses=errors(409, 413))
def reindex(body: ReindexIn, session: SessionDep, settings: SettingsDep, key: AdminKey) -> JobOut:
    """Classify the stored photos with the active model, as an ordinary job: those it has
    not classified yet, or with ``all`` every photo again (its earlier predictions of them
    are replaced; other models' predictions stay)."""
    plan = create_reindex_job(session, everything=body.all, created_by=key.name)
    session.commit()
    enqueue_classify_batches(plan.job.id, plan.image_ids, settings)
    session.refresh(plan.job)
    return job_outs(session, [plan.job])[0]
