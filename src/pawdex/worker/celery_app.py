"""The worker's Celery app: the shared configuration, this package's tasks, and the start-up
every worker process gets (:mod:`pawdex.worker.startup`). ``celery -A
pawdex.worker.celery_app worker -Q inference`` is a complete pawdex worker."""

from pawdex.core.queue import get_celery
from pawdex.worker import startup, tasks  # noqa: F401  (signal handlers; tasks on the app)

app = get_celery()
