"""What every pawdex worker does when it starts, whoever launches it: ``pawdex worker``,
``celery -A pawdex.worker.celery_app worker`` (docker-compose's health checks and Flower
use that app), or a supervisor of the site's own.

- the served model is loaded before the first task (so the first batch does not wait);
- each process that runs tasks reports its presence (the admin dashboard's workers);
- the sweeper re-queues lost ingests;
- a forked child never shares the parent's database connections.

Connected to Celery's signals when :mod:`pawdex.worker.celery_app` is imported.
"""

from __future__ import annotations

import logging
import os
import time

from celery.concurrency import get_implementation
from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.signals import worker_init, worker_process_init, worker_ready

from pawdex.core.db import get_engine
from pawdex.core.queue import INFERENCE_QUEUE
from pawdex.core.settings import get_settings
from pawdex.worker.presence import start_presence
from pawdex.worker.sweeper import start_sweeper

log = logging.getLogger("pawdex.worker")


def _forks(worker) -> bool:
    pool = get_implementation(worker.pool_cls)
    return isinstance(pool, type) and issubclass(pool, PreforkPool)


PRELOAD_RETRIES = (1, 2, 4, 8, 16)  # seconds: a database still starting, or migrating


def _preload(settings) -> None:
    """Load the model and register its version, or end the process with the reason.

    This runs inside Celery's ``worker_init``/``worker_process_init``, which log a receiver's
    exception before logging is set up (so nowhere) and start the worker anyway: a worker
    that could not register its model must not run on without it, unseen."""
    from pawdex.worker.model_cache import preload  # torch: only workers that classify

    for wait in (*PRELOAD_RETRIES, None):
        try:
            preload(settings)
            return
        except Exception as exc:
            if wait is None:
                raise SystemExit(f"pawdex worker: cannot load the model it serves: {exc}") from exc
            log.warning("event=preload_failed retry_in_s=%s error=%r", wait, exc)
            time.sleep(wait)


def on_worker_init(sender, **_) -> None:
    """``sender`` is the WorkController, its queues selected (``-Q``), its pool not yet
    started."""
    settings = get_settings()
    queues = sorted(sender.app.amqp.queues.consume_from)
    node = sender.hostname
    if local := settings.single_host_defaults:  # e.g. PostgreSQL, but the filesystem broker
        log.warning(
            "event=single_host_placement unset=%s detail=%s", ",".join(local),
            "only processes on this machine share this; set it for workers on other hosts",
        )  # fmt: skip
    classifies = INFERENCE_QUEUE in queues
    worker_ready.connect(lambda **_: start_sweeper(settings), weak=False)
    if _forks(sender):
        # The children run the tasks: each loads the model after the fork (torch threads do
        # not survive one) and reports for itself.
        def child_init(**_) -> None:
            get_engine(settings).dispose(close=False)
            if classifies:
                _preload(settings)
            start_presence(settings, f"{node}/{os.getpid()}", queues)

        worker_process_init.connect(child_init, weak=False)
    else:
        worker_ready.connect(lambda **_: start_presence(settings, node, queues), weak=False)
        if classifies:
            _preload(settings)


worker_init.connect(on_worker_init, weak=False, dispatch_uid="pawdex.worker.startup")
