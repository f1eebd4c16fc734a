"""The Celery app's configuration, shared by the API (which only sends) and the workers.

Tasks are sent by name so that importing this module never imports torch.
"""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue
from kombu.exceptions import ChannelError

from pawdex.core import fs_transport
from pawdex.core.settings import Settings, get_settings

INGEST_QUEUE = "ingest"
INFERENCE_QUEUE = "inference"
INGEST_TASK = "pawdex.ingest"
CLASSIFY_TASK = "pawdex.classify"


def make_celery(settings: Settings) -> Celery:
    broker = settings.resolved_broker_url
    if settings.is_embedded_broker:
        broker = f"{fs_transport.ALIAS}://"  # kombu's filesystem broker, writes made atomic
    app = Celery("pawdex", broker=broker)
    conf: dict = {
        # One exchange per queue: a queue declared without one would share the default
        # exchange and routing key, and every message would reach both queues.
        "task_queues": [
            Queue(name, Exchange(name, type="direct"), routing_key=name)
            for name in (INGEST_QUEUE, INFERENCE_QUEUE)
        ],
        "task_default_queue": INGEST_QUEUE,
        "task_routes": {
            INGEST_TASK: {"queue": INGEST_QUEUE},
            CLASSIFY_TASK: {"queue": INFERENCE_QUEUE},
        },
        # Job state lives in the database; no result backend.
        "task_ignore_result": True,
        # A task is acknowledged after it ran, so a killed worker's task is redelivered;
        # every task is idempotent, so that is safe.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "accept_content": ["json"],
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        # Retries of a transient outage (worker.tasks.RETRY): how long a task keeps trying.
        "task_annotations": {
            name: {"max_retries": settings.task_retries} for name in (INGEST_TASK, CLASSIFY_TASK)
        },
    }
    if settings.is_embedded_broker:
        folder = settings.broker_dir
        for sub in ("out", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        conf["broker_transport_options"] = {
            "data_folder_in": str(folder / "out"),
            "data_folder_out": str(folder / "out"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            # kombu polls the folder once a second by default: up to a second lost before
            # every ingest starts. A listdir every 0.1 s costs nothing measurable when idle.
            "polling_interval": 0.1,
        }
    else:
        # A task that no worker acknowledged (its worker vanished) is delivered again after
        # the visibility timeout. Every worker scans for such tasks every few seconds (kombu's
        # default, ~100 s, would dwarf a short timeout).
        timeout = settings.broker_visibility_timeout
        conf["broker_transport_options"] = {
            "visibility_timeout": timeout,
            "unacked_restore_interval": max(1, min(10, timeout // 4)),
            "unacked_restore_throttle": 1,
        }
    app.conf.update(conf)
    return app


_apps: dict[tuple[str, str], Celery] = {}


def get_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    key = (settings.resolved_broker_url, str(settings.broker_dir.resolve()))
    if key not in _apps:
        _apps[key] = make_celery(settings)
    return _apps[key]


def _send(name: str, args: list, queue: str, settings: Settings | None) -> None:
    app = get_celery(settings)
    if app.conf.task_always_eager:
        # Local indexing and fast unit tests: run in this process (the worker's tasks are
        # registered on this app by importing worker.tasks).
        app.tasks[name].apply(args=args, throw=True)
    else:
        app.send_task(name, args=args, queue=queue)


def queue_depth(queue: str, settings: Settings | None = None) -> int:
    """Messages waiting in ``queue`` (not those a worker holds). Redis drops an empty list,
    and a queue that does not exist holds nothing."""
    app = get_celery(settings)
    with app.connection_for_read() as conn:
        try:
            return conn.default_channel.queue_declare(queue=queue, passive=True).message_count
        except ChannelError:
            return 0


def enqueue_ingest(job_id: str, settings: Settings | None = None) -> None:
    _send(INGEST_TASK, [job_id], INGEST_QUEUE, settings)


def enqueue_classify(job_id: str, image_ids: list[int], settings: Settings | None = None) -> None:
    _send(CLASSIFY_TASK, [job_id, image_ids], INFERENCE_QUEUE, settings)


def enqueue_classify_batches(job_id: str, image_ids: list[int], settings: Settings) -> None:
    """One classify task per ``batch_size`` photos (one forward pass each)."""
    for start in range(0, len(image_ids), settings.batch_size):
        enqueue_classify(job_id, image_ids[start : start + settings.batch_size], settings)
