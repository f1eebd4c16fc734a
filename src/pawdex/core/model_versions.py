"""Which model the workers serve: the active ``ModelVersion`` (built-in by name, or a trained
model's directory), else ``PAWDEX_MODEL``; activation, and re-indexing with it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, false, insert, literal, select, update
from sqlalchemy.orm import Session

from pawdex.core.jobs import JobConflict, insert_ignoring_conflicts
from pawdex.core.models import (
    Image,
    Job,
    JobImage,
    JobKind,
    JobOrigin,
    JobStatus,
    ModelVersion,
    Prediction,
    utcnow,
)


@dataclass(frozen=True)
class ModelSpec:
    """What a worker loads: a built-in classifier's name, or a trained model's directory."""

    name: str
    path: str | None = None

    @classmethod
    def of(cls, row: ModelVersion) -> ModelSpec:
        return cls(row.name, (row.details or {}).get("path"))


def active_version(session: Session) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion).where(ModelVersion.active.is_(True)).order_by(ModelVersion.id.desc())
    )


def active_spec(session: Session, default: str) -> ModelSpec:
    row = active_version(session)
    return ModelSpec.of(row) if row is not None else ModelSpec(default)


def register_version(
    session: Session, version: str, name: str, details: dict, *, activate: bool = False
) -> ModelVersion:
    """The row of ``version`` (created if new); with ``activate`` it becomes the only active
    one, so every worker serves it from its next batch."""
    # Workers that start together (replicas, prefork children) register the same version at
    # once: the second insert waits for the first's row and keeps it, instead of failing.
    session.execute(
        insert_ignoring_conflicts(session, ModelVersion, ["version"]).values(
            version=version, name=name, details=details, active=False
        )
    )
    row = session.scalars(select(ModelVersion).where(ModelVersion.version == version)).one()
    row.details = {**(row.details or {}), **details}
    if activate:
        session.execute(update(ModelVersion).where(ModelVersion.id != row.id).values(active=False))
        row.active = True
    return row


@dataclass
class Reindex:
    job: Job
    image_ids: list[int]


def create_reindex_job(
    session: Session, *, everything: bool = False, created_by: str | None = None
) -> Reindex:
    """A job that classifies stored photos with the active model: those it has not
    classified yet, or with ``everything`` all of them again (their predictions from this
    model are replaced, other models' predictions stay)."""
    version = active_version(session)
    if version is None:
        raise JobConflict("no active model yet: activate one (pawdex models activate NAME)")
    stmt = select(Image.id).where(Image.deletion_id.is_(None)).order_by(Image.id)
    if not everything:
        stmt = stmt.where(
            ~exists().where(
                Prediction.image_id == Image.id, Prediction.model_version_id == version.id
            )
        )
    ids = list(session.scalars(stmt))
    now = utcnow()
    what = f"re-index with {version.version}" + (" (all photos)" if everything else "")
    job = Job(
        kind=JobKind.reindex,
        status=JobStatus.running if ids else JobStatus.succeeded,
        source=[{"model_version": version.version, "all": everything}],
        total=len(ids), ingest_done=True, ingest_position=len(ids),
        started_at=now, finished_at=None if ids else now,
        message=what, name=what,
        origin=JobOrigin.admin, created_by=created_by,
    )  # fmt: skip
    session.add(job)
    session.flush()
    if ids:  # its photos, as an upload's: what it owes is found (and re-sent) the same way
        chosen = stmt.with_only_columns(literal(job.id), Image.id, Image.path, false())
        session.execute(
            insert(JobImage).from_select(
                ["job_id", "image_id", "name", "duplicate"],
                chosen.where(Image.id <= ids[-1]).order_by(None),
            )
        )
    return Reindex(job, ids)


def replaces_predictions(job: Job) -> bool:
    """A reindex of every photo overwrites the active model's earlier predictions."""
    return job.kind == JobKind.reindex and any(item.get("all") for item in job.source or [])
