"""The API as its clients use it (``pawdex index``, ``pawdex reindex``, the bench, the
tests): requests that wait out the key's rate limit, and following a job until it has
finished, over HTTP or in the database. Plain httpx and dicts: never the API's schemas."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pawdex.core.db import session_scope
from pawdex.core.jobs import first_errors, live_job
from pawdex.core.models import FINISHED_STATUSES, Job, JobError
from pawdex.core.settings import Settings

if TYPE_CHECKING:  # the caller brings its client: this module never needs httpx itself
    import httpx

RATE_LIMITED_RETRIES = 30
MAX_RETRY_AFTER_S = 60.0


def request(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """Send; on 429 (the key's rate limit), wait as long as ``Retry-After`` says and resend
    (httpx rewinds the files of a multipart body)."""
    for _ in range(RATE_LIMITED_RETRIES):
        response = client.request(method, url, **kwargs)
        if response.status_code != 429:
            return response
        time.sleep(min(MAX_RETRY_AFTER_S, float(response.headers.get("Retry-After", "1"))))
    return response


def is_finished(job: dict) -> bool:
    return job["status"] in FINISHED_STATUSES


def poll_job(
    fetch: Callable[[], dict],
    timeout: float | None = 600,
    interval: float = 0.5,
    on_progress: Callable[[dict], None] | None = None,
) -> dict:
    """Fetch the job's document until the job has finished and return it; ``on_progress``
    sees every unfinished state. ``timeout`` None: wait as long as it takes."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        job = fetch()
        if is_finished(job):
            return job
        if on_progress is not None:
            on_progress(job)
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"job {job.get('id')} still {job['status']} after {timeout}s: {job}")
        time.sleep(interval)


def wait_job(
    client: httpx.Client,
    job_id: str,
    timeout: float | None = 600,
    interval: float = 0.5,
    on_progress: Callable[[dict], None] | None = None,
) -> dict:
    """Poll ``GET /v1/jobs/{job_id}`` until the job has finished; returns its document."""
    return poll_job(lambda: get_job(client, job_id), timeout, interval, on_progress)


def get_job(client: httpx.Client, job_id: str) -> dict:
    """``GET /v1/jobs/{job_id}``: the job's document (raises on an error answer)."""
    response = request(client, "GET", f"/v1/jobs/{job_id}")
    response.raise_for_status()
    return response.json()


def read_job(settings: Settings, job_id: str) -> dict:
    """The job's document read from the database, as ``GET /v1/jobs/{id}`` would tell it:
    for the commands that work without a server (``index --local``, ``reindex``)."""
    with session_scope(settings) as session:
        job = live_job(session, job_id)
        return job_document(job, first_errors(session, [job_id])[job_id])


def job_document(job: Job, errors: list[JobError]) -> dict:
    """A job row as a plain document: its counts, status and first file errors."""
    return {
        "id": job.id,
        "name": job.name,
        "kind": job.kind.value,
        "status": job.status.value,
        "total": job.total,
        "done": job.done,
        "failed": job.failed,
        "duplicates": job.duplicates,
        "skipped": job.skipped,
        "message": job.message,
        "errors": [{"name": e.name, "error": e.error} for e in errors],
    }
