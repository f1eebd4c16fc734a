"""The sweeper: every worker process, now and then, queues again the work that was lost.

Work is lost when a worker dies (its ingest falls silent: no heartbeat for
``ingest_heartbeat_timeout``) and when messages vanish: a broker restarted without
persistence, the API stopped between committing a job and queueing it, a task that used up
its retries during a database outage. Such a job's counters stop moving while its queue is
empty: after ``stall_timeout`` its ingest is queued again (it resumes from its committed
position) or its unclassified photos are sent again. Every task is idempotent, so a message
sent twice costs a lookup, never a second prediction.

It also folds the breed tallies' deltas (``core.catalog.fold_breed_tallies``) and, with
``library_scan_interval`` set, queues the libraries' periodic scans, and purges the
deletions whose time in the trash is over (``core.trash``).

No celery beat: each worker runs this in a daemon thread; several sweepers never pick the
same job (``SKIP LOCKED``), and a job queued twice is ingested once (the lease).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from pawdex.core.catalog import fold_breed_tallies
from pawdex.core.db import session_factory
from pawdex.core.jobs import (
    finish_if_complete,
    stalled_classifies,
    stalled_ingests,
    unclassified_image_ids,
)
from pawdex.core.libraries import due_scans
from pawdex.core.queue import (
    INFERENCE_QUEUE,
    INGEST_QUEUE,
    enqueue_classify_batches,
    enqueue_ingest,
    queue_depth,
)
from pawdex.core.settings import Settings
from pawdex.core.storage import open_storage
from pawdex.core.trash import expired, purge, remove_files

log = logging.getLogger("pawdex.sweeper")


@dataclass
class Sweep:
    ingests: list[str] = field(default_factory=list)  # jobs whose ingest was queued again
    classifies: dict[str, int] = field(default_factory=dict)  # job -> photos sent again
    folded: int = 0  # breed tally deltas folded in
    scans: list[str] = field(default_factory=list)  # periodic library scans queued
    purged: list[int] = field(default_factory=list)  # deletions whose time in the trash ended


def sweep(settings: Settings) -> Sweep:
    """One pass over the jobs whose work was lost (committed before it is queued)."""
    sessions = session_factory(settings)
    done = Sweep()
    with sessions.begin() as session:
        done.folded = fold_breed_tallies(session)
    with sessions.begin() as session:
        purges = [purge(session, deletion, by="retention") for deletion in expired(session)]
    for purged in purges:  # committed: the rows are gone, now their files
        remove_files(open_storage(settings), purged.files)
        log.info(
            "event=trash_purged deletion_id=%s files=%s", purged.deletion.id, len(purged.files)
        )
        done.purged.append(purged.deletion.id)
    if settings.library_scan_interval:
        with sessions.begin() as session:
            done.scans = [job.id for job in due_scans(session, settings.library_scan_interval)]
        for job_id in done.scans:
            log.info("event=library_scan_queued job_id=%s", job_id)
            enqueue_ingest(job_id, settings)
    ingest_idle = queue_depth(INGEST_QUEUE, settings) == 0
    with sessions.begin() as session:
        done.ingests = stalled_ingests(
            session, settings.ingest_heartbeat_timeout, settings.stall_timeout, ingest_idle
        )
    for job_id in done.ingests:
        log.warning("event=ingest_resumed job_id=%s reason=silent", job_id)
        enqueue_ingest(job_id, settings)

    if queue_depth(INFERENCE_QUEUE, settings) > 0:
        return done  # the workers are on it; this job's messages may be among those
    with sessions.begin() as session:
        stalled = stalled_classifies(session, settings.stall_timeout)
    for job_id in stalled:
        with sessions.begin() as session:
            image_ids = unclassified_image_ids(session, job_id)
            if not image_ids:  # all accounted for: only the closing was lost
                finish_if_complete(session, job_id)
        if image_ids:
            log.warning("event=classify_resent job_id=%s photos=%s", job_id, len(image_ids))
            enqueue_classify_batches(job_id, image_ids, settings)
            done.classifies[job_id] = len(image_ids)
    return done


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
