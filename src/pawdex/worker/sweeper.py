"""The sweeper: every worker process re-queues, now and then, the jobs whose ingest was lost.

A job's ingest renews a heartbeat with every batch; when it falls silent for
``ingest_heartbeat_timeout`` seconds (its worker was killed, its host vanished) or a queued
job never started (the API stopped between committing it and queueing it), the job is queued
again and resumes from its committed position. The ingest counts its attempts and fails the
job clearly when it keeps dying, so a job is never left "running" for ever. No celery beat:
each worker runs this in a daemon thread; several sweepers never pick the same job
(``SKIP LOCKED``), and a job queued twice is ingested once (the lease).
"""

from __future__ import annotations

import logging
import threading
import time

from pawdex.core.db import session_scope
from pawdex.core.jobs import stalled_ingests
from pawdex.core.queue import enqueue_ingest
from pawdex.core.settings import Settings

log = logging.getLogger("pawdex.sweeper")


def sweep(settings: Settings) -> list[str]:
    """One pass: re-queue every stalled ingest (committed before it is queued)."""
    with session_scope(settings) as session:
        job_ids = stalled_ingests(session, settings.ingest_heartbeat_timeout)
    for job_id in job_ids:
        log.warning("event=ingest_resumed job_id=%s reason=heartbeat_stale", job_id)
        enqueue_ingest(job_id, settings)
    return job_ids


def start_sweeper(settings: Settings) -> threading.Thread:
    """Sweep at once, then every ``sweep_interval`` seconds, for the life of the process."""

    def loop() -> None:
        while True:
            try:
                sweep(settings)
            except Exception:  # the database or broker is down: try again next time
                log.exception("event=sweep_failed")
            time.sleep(settings.sweep_interval)

    thread = threading.Thread(target=loop, name="pawdex-sweeper", daemon=True)
    thread.start()
    return thread
