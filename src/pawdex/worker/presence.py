"""Each worker process tells the database, every few seconds, that it is alive, what it runs
on and what it is doing: the admin dashboard's worker list and the inference figures of
``/metrics`` come from these rows (no broadcast round-trip to the workers, so this works on
every broker, the embedded filesystem one included)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from celery.signals import task_postrun, task_prerun

from pawdex.core.db import session_scope
from pawdex.core.models import WorkerPresence, utcnow
from pawdex.core.monitoring import nears_visibility_timeout, visibility_timeout
from pawdex.core.settings import Settings

log = logging.getLogger("pawdex.presence")


@dataclass
class _State:
    hostname: str = ""
    host: str | None = None
    address: str | None = None
    queues: list[str] = field(default_factory=list)
    device: str | None = None
    runtime: str | None = None
    model_version: str | None = None
    current_task: str | None = None
    batches: int = 0
    photos: int = 0
    batch_seconds_total: float = 0.0
    last_batch_seconds: float | None = None
    longest_batch_seconds: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_state = _State()


def record_batch(photos: int, seconds: float) -> None:
    """One forward pass of ``photos`` photos that took ``seconds`` (classify calls this)."""
    with _state.lock:
        _state.batches += 1
        _state.photos += photos
        _state.batch_seconds_total += seconds
        _state.last_batch_seconds = seconds


def record_delivery(seconds: float, settings: Settings) -> None:
    """A whole classify delivery took ``seconds``: keep the longest, and warn when it nears
    the broker's visibility timeout (past it, Redis hands the task to another worker while
    this one still runs it: twice the work, for nothing)."""
    with _state.lock:
        if _state.longest_batch_seconds is not None and seconds <= _state.longest_batch_seconds:
            return
        _state.longest_batch_seconds = seconds
    if nears_visibility_timeout(seconds, visibility_timeout(settings)):
        log.warning(
            "event=batch_nears_visibility_timeout batch_s=%.1f visibility_timeout_s=%s "
            "advice=%s", seconds, settings.broker_visibility_timeout,
            "lower PAWDEX_BATCH_SIZE or raise PAWDEX_BROKER_VISIBILITY_TIMEOUT",
        )  # fmt: skip


def host_name(settings: Settings) -> str:
    """``PAWDEX_WORKER_HOST``, else the machine's host name."""
    return settings.worker_host or socket.gethostname()


def host_address(settings: Settings) -> str | None:
    """The address this host reaches the broker (else the database) from: the one the other
    hosts see. No packet is sent (a UDP socket's connect only picks the route)."""
    for url in (settings.broker_url, settings.database_url):
        try:
            parsed = urlsplit(url or "")
            if not parsed.hostname:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect((parsed.hostname, parsed.port or 9))
                return probe.getsockname()[0]
        except (OSError, ValueError):  # unresolvable, or a malformed port
            continue
    try:  # embedded: nothing remote to reach
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return None


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
            "longest_batch_seconds": _state.longest_batch_seconds, "host": _state.host,
            "address": _state.address,
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
    _state.host, _state.address = host_name(settings), host_address(settings)
    if _state.device is None:
        _state.device = "cpu"
    task_prerun.connect(_on_task_start, weak=False)
    task_postrun.connect(_on_task_end, weak=False)

    def loop() -> None:
        shown = False  # in the dashboard: said once, in the worker's log
        while True:
            try:
                report(settings)
            except Exception:  # the database is away: the next report will do
                log.warning("event=presence_report_failed", exc_info=True)
            else:
                if not shown:
                    log.info(
                        "event=presence_reported worker=%s host=%s address=%s",
                        _state.hostname, _state.host, _state.address,
                    )  # fmt: skip
                    shown = True
            time.sleep(settings.presence_interval)

    thread = threading.Thread(target=loop, name="pawdex-presence", daemon=True)
    thread.start()
    return thread
