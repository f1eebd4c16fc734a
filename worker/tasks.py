"""Celery tasks: thin wrappers that take IDs and call the domain functions.

``shared_task`` registers them on every Celery app of the process (the worker's, or the
eager one of ``pawdex index --local`` and the unit tests).
"""

from __future__ import annotations

from celery import shared_task
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import OperationalError as DatabaseError

from core.queue import CLASSIFY_TASK, INGEST_TASK

# Transient outages of the database or the broker: retry with exponential backoff.
# Every task is idempotent, so a retry never does anything twice.
RETRY = dict(
    autoretry_for=(DatabaseError, BrokerError),
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=8,
)


@shared_task(name=INGEST_TASK, **RETRY)
def ingest(job_id: str) -> None:
    from worker.ingest import ingest_job

    ingest_job(job_id)


@shared_task(name=CLASSIFY_TASK, **RETRY)
def classify(job_id: str, image_ids: list[int]) -> None:
    from worker.classify import classify_images

    classify_images(job_id, image_ids)
