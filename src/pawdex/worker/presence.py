"""Each worker process tells the database, every few seconds, that it is alive, what it runs
on and what it is doing: the admin dashboard's worker list and the inference figures of
``/metrics`` come from these rows (no broadcast round-trip to the workers, so this works on
every broker, the embedded filesystem one included)."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field

from celery.signals import task_postrun, task_prerun

from pawdex.core.db import session_scope
from pawdex.core.models import WorkerPresence, utcnow
from pawdex.core.settings import Settings

log = logging.getLogger("pawdex.presence")


@dataclass
class _State:
    hostname: str = ""
    queues: list[str] = field(default_factory=list)
    device: str | None = None
    runtime: str | None = None
    model_version: str | None = None
    current_task: str | None = None
    batches: int = 0
    photos: int = 0
    batch_seconds_total: float = 0.0
    last_batch_seconds: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_state = _State()


def record_batch(photos: int, seconds: float) -> None:
    """One forward pass of ``photos`` photos that took ``seconds`` (classify calls this)."""
    with _state.lock:
        _state.batches += 1
        _state.photos += photos
        _state.batch_seconds_total += seconds
        _state.last_batch_seconds = seconds


def describe_model(device: str, runtime: str | None, model_version: str | None) -> None:
    _state.device, _state.runtime, _state.model_version = device, runtime, model_version


def _on_task_start(task=None, args=None, **_) -> None:
    job = f" job={args[0]}" if args else ""
    _state.current_task = f"{getattr(task, 'name', task)}{job}"


def _on_task_end(**_) -> None:
    _state.current_task = None


def report(settings: Settings) -> None:
    with _state.lock:
        values = {
            "queues": list(_state.queues), "device": _state.device, "runtime": _state.runtime,
            "model_version": _state.model_version, "pid": os.getpid(),
            "current_task": _state.current_task, "batches": _state.batches,
            "photos": _state.photos, "batch_seconds_total": _state.batch_seconds_total,
            "last_batch_seconds": _state.last_batch_seconds, "last_seen": utcnow(),
        }  # fmt: skip
    with session_scope(settings) as session:
        row = session.get(WorkerPresence, _state.hostname)
        if row is None or row.pid != values["pid"]:  # a new process under this name
            if row is not None:
                session.delete(row)
                session.flush()
            session.add(WorkerPresence(hostname=_state.hostname, started_at=utcnow(), **values))
        else:
            for name, value in values.items():
                setattr(row, name, value)


def start_presence(settings: Settings, hostname: str, queues: list[str]) -> threading.Thread:
    """Report now, then every ``presence_interval`` seconds, for the life of the process."""
    _state.hostname, _state.queues = hostname, queues
    if _state.device is None:
        _state.device = "cpu"
    task_prerun.connect(_on_task_start, weak=False)
    task_postrun.connect(_on_task_end, weak=False)

    def loop() -> None:
        while True:
            try:
                report(settings)
            except Exception:  # the database is away: the next report will do
                log.warning("event=presence_report_failed", exc_info=True)
            time.sleep(settings.presence_interval)

    thread = threading.Thread(target=loop, name="pawdex-presence", daemon=True)
    thread.start()
    return thread
