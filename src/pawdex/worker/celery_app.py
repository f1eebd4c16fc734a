"""The worker's Celery app: the shared configuration plus this package's tasks."""

import pawdex.worker.tasks  # noqa: F401  (shared tasks: registered on the app below)
from pawdex.core.queue import get_celery

app = get_celery()
