"""``pawdex index``: send folders, photos and archives, then follow the jobs to the end."""

from __future__ import annotations

import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pawdex.core.archive import detect_archive_kind
from pawdex.core.settings import Settings

console = Console(stderr=True)
FINISHED = {"succeeded", "partial", "failed", "cancelled"}
PHOTOS_PER_REQUEST = 200
RATE_LIMITED_RETRIES = 30


def _folder_as_zip(folder: Path, tmp: Path) -> Path:
    """Zip a folder (stored, not compressed: photos are compressed already), keeping paths."""
    target = tmp / f"{folder.resolve().name or 'folder'}.zip"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                zf.write(path, f"{folder.resolve().name}/{path.relative_to(folder).as_posix()}")
    return target


def plan_uploads(paths: list[Path], tmp: Path) -> tuple[list[Path], list[Path]]:
    """Split the arguments into archives (folders become zips) and loose photos."""
    archives, photos = [], []
    for path in paths:
        if path.is_dir():
            archives.append(_folder_as_zip(path, tmp))
        elif detect_archive_kind(path) is not None:
            archives.append(path)
        else:
            photos.append(path)
    return archives, photos


def _chunks(items: list[Path], size: int) -> Iterator[list[Path]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _request(client: httpx.Client, method: str, url: str, **kwargs) -> httpx.Response:
    """Send; on 429 (the key's rate limit), wait as long as ``Retry-After`` says and resend
    (httpx rewinds the files of a multipart body)."""
    for _ in range(RATE_LIMITED_RETRIES):
        response = client.request(method, url, **kwargs)
        if response.status_code != 429:
            return response
        time.sleep(min(60.0, float(response.headers.get("Retry-After", "1"))))
    return response


def _post(client: httpx.Client, endpoint: str, files: list[Path]) -> str:
    with ExitStack() as stack:
        parts = [("file", (p.name, stack.enter_context(p.open("rb")))) for p in files]
        response = _request(client, "POST", endpoint, files=parts)
    if response.status_code != 202:
        raise SystemExit(f"{endpoint}: {response.status_code} {response.text}")
    return response.json()["job_id"]


def follow(jobs: dict[str, str], fetch: Callable[[str], dict]) -> list[dict]:
    """Progress bars until every job has finished; returns the final job documents."""
    final: dict[str, dict] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[status]}"), TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console) as progress:
        bars = {
            jid: progress.add_task(label, total=None, status="queued")
            for jid, label in jobs.items()
        }
        while len(final) < len(jobs):
            for job_id, bar in bars.items():
                if job_id in final:
                    continue
                doc = fetch(job_id)
                seen = doc["done"] + doc["failed"] + doc["duplicates"]
                progress.update(
                    bar, completed=seen, total=doc["total"] or None, status=doc["status"]
                )
                if doc["status"] in FINISHED:
                    final[job_id] = doc
            time.sleep(0.5)
    return [final[j] for j in jobs]


def summarise(docs: list[dict]) -> bool:
    table = Table("job", "status", "files", "indexed", "duplicates", "failed")
    for d in docs:
        table.add_row(d["id"], d["status"], str(d["total"]), str(d["done"]),
                      str(d["duplicates"]), str(d["failed"]))  # fmt: skip
    console.print(table)
    for d in docs:
        for err in d["errors"][:50]:
            console.print(f"[red]{err['name']}[/red]: {err['error']}")
        if len(d["errors"]) > 50:
            console.print(f"… and {len(d['errors']) - 50} more errors in job {d['id']}")
    return all(d["status"] in {"succeeded", "partial"} for d in docs)


def index_remote(paths: list[Path], server: str, wait: bool, api_key: str | None) -> bool:
    headers = {"X-API-Key": api_key} if api_key else {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        httpx.Client(base_url=server, timeout=600, headers=headers) as client,
    ):
        archives, photos = plan_uploads(paths, Path(tmp))
        jobs: dict[str, str] = {}
        for archive in archives:
            jobs[_post(client, "/v1/archives", [archive])] = archive.name
        for chunk in _chunks(photos, PHOTOS_PER_REQUEST):
            jobs[_post(client, "/v1/images", chunk)] = f"{len(chunk)} photos"
        for job_id, label in jobs.items():
            console.print(f"queued job {job_id} ({label})")
        if not wait:
            return True

        def fetch(job_id: str) -> dict:
            response = _request(client, "GET", f"/v1/jobs/{job_id}")
            response.raise_for_status()
            return response.json()

        return summarise(follow(jobs, fetch))


def index_local(paths: list[Path], settings: Settings) -> bool:
    """Index without a server: the same ingest and classify code, run in this process."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from pawdex.api.schemas import JobOut
    from pawdex.core.db import session_scope
    from pawdex.core.jobs import fail_job
    from pawdex.core.migrate import upgrade_to_head
    from pawdex.core.models import Job, JobKind
    from pawdex.core.queue import get_celery
    from pawdex.core.uploads import IncomingFile, submit
    from pawdex.worker.ingest import ingest_job

    upgrade_to_head(settings)
    celery = get_celery(settings)
    celery.conf.task_always_eager = True
    import pawdex.worker.tasks  # noqa: F401  registers the tasks for eager runs

    with tempfile.TemporaryDirectory() as tmp:
        archives, photos = plan_uploads(paths, Path(tmp))
        groups = [(JobKind.archive, [a]) for a in archives]
        groups += [(JobKind.images, c) for c in _chunks(photos, PHOTOS_PER_REQUEST)]
        jobs: dict[str, str] = {}
        for kind, files in groups:
            with ExitStack() as stack:
                incoming = [IncomingFile(p.name, stack.enter_context(p.open("rb"))) for p in files]
                job = submit(kind, incoming, settings, enqueue=False)
            jobs[job.id] = files[0].name if kind == JobKind.archive else f"{len(files)} photos"

    def run_all() -> None:
        for job_id in jobs:
            try:
                ingest_job(job_id, settings)
            except Exception as exc:  # the job must end, whatever happened
                with session_scope(settings) as session:
                    fail_job(session, job_id, f"indexing stopped: {exc!r}")

    runner = threading.Thread(target=run_all, daemon=True)
    runner.start()

    def fetch(job_id: str) -> dict:
        with session_scope(settings) as session:
            job = session.scalar(
                select(Job).options(selectinload(Job.errors)).where(Job.id == job_id)
            )
            return JobOut.model_validate(job).model_dump(mode="json")

    docs = follow(jobs, fetch)
    runner.join()
    return summarise(docs)
