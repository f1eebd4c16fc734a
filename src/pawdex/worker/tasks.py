"""Celery tasks: thin wrappers that take IDs and call the domain functions.

``shared_task`` registers them on every Celery app of the process (the worker's, or the
eager one of ``pawdex index --local`` and the unit tests).
"""

from __future__ import annotations

import logging

from celery import shared_task
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import OperationalError as DatabaseError

from pawdex.core.queue import CLASSIFY_TASK, INGEST_TASK
from pawdex.worker.thumbnails import ApiUnavailable

log = logging.getLogger("pawdex.worker")

# Transient outages of the database, the broker or (``PAWDEX_THUMBNAIL_SOURCE=api``) the API:
# retry with exponential backoff, as many times as ``settings.task_retries`` says (the app's
# task annotations). Every task is idempotent, so a retry never does anything twice; work
# whose retries ran out is sent again by the sweeper once the outage is over.
TRANSIENT = (DatabaseError, BrokerError, ApiUnavailable)
RETRY = dict(
    autoretry_for=TRANSIENT,
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
)


@shared_task(name=INGEST_TASK, **RETRY)
def ingest(job_id: str) -> None:
    from pawdex.core.db import session_scope
    from pawdex.core.jobs import fail_job
    from pawdex.worker.ingest import ingest_job

    try:
        ingest_job(job_id)
    except TRANSIENT:
        raise
    except Exception as exc:  # a bug or a resource failure: end the job clearly, never hang
        log.exception("event=ingest_failed job_id=%s", job_id)
        with session_scope() as session:
            fail_job(session, job_id, f"ingest stopped by an internal error: {exc!r}")


@shared_task(name=CLASSIFY_TASK, **RETRY)
def classify(job_id: str, image_ids: list[int]) -> None:
    from pawdex.worker.classify import classify_images, give_up

    try:
        classify_images(job_id, image_ids)
    except TRANSIENT:
        raise
    except Exception as exc:
        log.exception("event=classify_failed job_id=%s images=%s", job_id, len(image_ids))
        give_up(job_id, image_ids, f"classification failed: {exc!r}")
