"""What the admin dashboard and ``/metrics`` show: queues, workers, throughput, failures."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from kombu.exceptions import ChannelError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pawdex.core.catalog import breed_counts
from pawdex.core.model_versions import active_version
from pawdex.core.models import Job, JobError, JobStatus, Prediction, WorkerPresence, utcnow
from pawdex.core.queue import INFERENCE_QUEUE, INGEST_QUEUE, get_celery
from pawdex.core.settings import Settings

OFFLINE_AFTER_INTERVALS = 3  # a worker silent this many report intervals is offline
FORGET_AFTER = timedelta(hours=1)  # and one silent this long is no longer listed
# A classify delivery longer than this share of the broker's visibility timeout is flagged:
# past the timeout Redis delivers the task again while the first worker still runs it.
VISIBILITY_MARGIN = 0.5

log = logging.getLogger("pawdex.monitoring")


def queue_depths(settings: Settings) -> dict[str, int | None]:
    """Messages waiting in each queue (None: the broker could not be asked)."""
    depths: dict[str, int | None] = dict.fromkeys((INGEST_QUEUE, INFERENCE_QUEUE))
    try:
        with get_celery(settings).connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            for name in depths:
                try:
                    ok = conn.default_channel.queue_declare(queue=name, passive=True)
                    depths[name] = ok.message_count
                except ChannelError:  # never declared (no worker yet): nothing waits in it
                    depths[name] = 0
    except Exception:
        log.warning("event=queue_depth_unavailable", exc_info=True)
    return depths


def visibility_timeout(settings: Settings) -> int | None:
    """Seconds after which Redis delivers an unacknowledged task again (None: the embedded
    broker, which has no such timeout)."""
    return None if settings.is_embedded_broker else settings.broker_visibility_timeout


def nears_visibility_timeout(batch_seconds: float | None, timeout: int | None) -> bool:
    return bool(timeout and batch_seconds and batch_seconds > VISIBILITY_MARGIN * timeout)


def workers(session: Session, settings: Settings) -> list[tuple[WorkerPresence, bool]]:
    now = utcnow()
    offline_after = timedelta(seconds=settings.presence_interval * OFFLINE_AFTER_INTERVALS)
    rows = session.scalars(
        select(WorkerPresence)
        .where(WorkerPresence.last_seen > now - FORGET_AFTER)
        .order_by(WorkerPresence.hostname)
    )
    return [(row, now - row.last_seen <= offline_after) for row in rows]


def _minute(session: Session, column):
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.date_trunc("minute", column), 'YYYY-MM-DD"T"HH24:MI')
    return func.strftime("%Y-%m-%dT%H:%M", column)


def throughput(session: Session, minutes: int = 60) -> list[tuple[str, int]]:
    """Photos classified per minute over the last ``minutes``, oldest first, every minute
    listed (zeros included)."""
    now = utcnow().replace(second=0, microsecond=0)
    start = now - timedelta(minutes=minutes - 1)
    bucket = _minute(session, Prediction.created_at)
    counts = dict(
        session.execute(
            select(bucket, func.count()).where(Prediction.created_at >= start).group_by(bucket)
        ).all()
    )
    slots = [start + timedelta(minutes=i) for i in range(minutes)]
    return [(slot.strftime("%Y-%m-%dT%H:%M"), counts.get(slot.strftime("%Y-%m-%dT%H:%M"), 0))
            for slot in slots]  # fmt: skip


@dataclass
class RecentFailure:
    job_id: str
    name: str
    error: str
    created_at: datetime


def recent_failures(session: Session, limit: int = 20) -> list[RecentFailure]:
    rows = session.scalars(select(JobError).order_by(JobError.id.desc()).limit(limit))
    return [RecentFailure(e.job_id, e.name, e.error, e.created_at) for e in rows]


def failures_since(session: Session, since: datetime) -> int:
    return session.scalar(select(func.count()).where(JobError.created_at >= since)) or 0


def jobs_by_status(session: Session) -> dict[str, int]:
    counts = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
    return {status.value: counts.get(status, 0) for status in JobStatus}


@dataclass
class Overview:
    queues: dict[str, int | None]
    workers: list[tuple[WorkerPresence, bool]]
    throughput: list[tuple[str, int]]
    failures_last_hour: int
    recent_failures: list[RecentFailure]
    jobs_by_status: dict[str, int]
    active_model: tuple[str, str] | None
    breeds: list[tuple[str, int]]
    visibility_timeout: int | None = None


def overview(session: Session, settings: Settings) -> Overview:
    model = active_version(session)
    return Overview(
        queues=queue_depths(settings),
        workers=workers(session, settings),
        throughput=throughput(session),
        failures_last_hour=failures_since(session, utcnow() - timedelta(hours=1)),
        recent_failures=recent_failures(session),
        jobs_by_status=jobs_by_status(session),
        active_model=(model.version, model.name) if model else None,
        breeds=breed_counts(session),
        visibility_timeout=visibility_timeout(settings),
    )
