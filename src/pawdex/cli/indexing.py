"""``pawdex index``: send folders, photos and archives, then follow the jobs to the end."""

from __future__ import annotations

import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pawdex.cli.client import get_job, poll_job, read_job, request
from pawdex.core.archive import detect_archive_kind
from pawdex.core.jobs import job_name
from pawdex.core.models import JobStatus
from pawdex.core.settings import Settings

console = Console(stderr=True)
PHOTOS_PER_REQUEST = 200
POLL_S = 0.5


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


def _post(client: httpx.Client, endpoint: str, files: list[Path], name: str) -> str:
    with ExitStack() as stack:
        parts = [("file", (p.name, stack.enter_context(p.open("rb")))) for p in files]
        form = {"name": name, "origin": "cli"}
        response = request(client, "POST", endpoint, files=parts, data=form)
    if response.status_code != 202:
        raise SystemExit(f"{endpoint}: {response.status_code} {response.text}")
    return response.json()["job_id"]


def follow(jobs: dict[str, str], fetch: Callable[[str], dict]) -> list[dict]:
    """Progress bars until every job has finished (in the order they were queued, as the
    workers take them); returns the final job documents."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[status]}"), TimeElapsedColumn())  # fmt: skip
    final: list[dict] = []
    with Progress(*columns, console=console) as progress:
        bars = {
            jid: progress.add_task(label, total=None, status="queued")
            for jid, label in jobs.items()
        }
        for job_id, bar in bars.items():

            def shown(job_id: str = job_id, bar: int = bar) -> dict:
                doc = fetch(job_id)
                seen = sum(doc.get(k, 0) for k in ("done", "failed", "duplicates", "skipped"))
                progress.update(
                    bar, completed=seen, total=doc["total"] or None, status=doc["status"]
                )
                return doc

            final.append(poll_job(shown, timeout=None, interval=POLL_S))
    return final


def summarise(docs: list[dict]) -> bool:
    table = Table("job", "status", "files", "indexed", "duplicates", "skipped", "failed")
    for d in docs:
        table.add_row(d.get("name") or d["id"], d["status"], str(d["total"]), str(d["done"]),
                      str(d["duplicates"]), str(d.get("skipped", 0)), str(d["failed"]))  # fmt: skip
    console.print(table)
    for d in docs:
        for err in d["errors"][:50]:
            console.print(f"[red]{err['name']}[/red]: {err['error']}")
        if len(d["errors"]) > 50:
            console.print(f"… and {len(d['errors']) - 50} more errors in job {d['id']}")
    return all(d["status"] in {JobStatus.succeeded, JobStatus.partial} for d in docs)


def index_remote(paths: list[Path], server: str, wait: bool, api_key: str | None) -> bool:
    headers = {"X-API-Key": api_key} if api_key else {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        httpx.Client(base_url=server, timeout=600, headers=headers) as client,
    ):
        archives, photos = plan_uploads(paths, Path(tmp))
        jobs: dict[str, str] = {}
        for archive in archives:
            jobs[_post(client, "/v1/archives", [archive], archive.name)] = archive.name
        for chunk in _chunks(photos, PHOTOS_PER_REQUEST):
            label = job_name([p.name for p in chunk])
            jobs[_post(client, "/v1/images", chunk, label)] = label
        for job_id, label in jobs.items():
            console.print(f"queued job {job_id} ({label})")
        if not wait:
            return True
        return summarise(follow(jobs, lambda job_id: get_job(client, job_id)))


def index_local(paths: list[Path], settings: Settings) -> bool:
    """Index without a server: the same ingest and classify code, run in this process, on
    files, archives and folders read where they are (nothing is copied or zipped)."""

    from pawdex.core.db import session_scope
    from pawdex.core.jobs import fail_job
    from pawdex.core.migrate import upgrade_to_head
    from pawdex.core.models import JobKind
    from pawdex.core.queue import get_celery
    from pawdex.core.uploads import record_in_place
    from pawdex.worker.ingest import ingest_job
    from pawdex.worker.model_cache import preload

    upgrade_to_head(settings)
    settings.ensure_dirs()
    preload(settings)  # this process is the worker: it registers the model it serves
    celery = get_celery(settings)
    celery.conf.task_always_eager = True
    import pawdex.worker.tasks  # noqa: F401  registers the tasks for eager runs

    archives = [p for p in paths if p.is_dir() or detect_archive_kind(p) is not None]
    photos = [p for p in paths if p not in archives]
    groups = [(JobKind.archive, [a]) for a in archives]
    groups += [(JobKind.images, c) for c in _chunks(photos, PHOTOS_PER_REQUEST)]
    jobs: dict[str, str] = {}
    for kind, files in groups:
        job = record_in_place(kind, files, settings)
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

    docs = follow(jobs, lambda job_id: read_job(settings, job_id))
    runner.join()
    return summarise(docs)
