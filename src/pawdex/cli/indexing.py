"""``pawdex index``: send folders, photos and archives, then follow the jobs to the end."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from pawdex.cli.client import get_job, is_finished, read_job
from pawdex.cli.resumable import send_archive
from pawdex.cli.sending import (
    Journal,
    Photo,
    Sender,
    SendError,
    folder_photos,
    journal_path,
)
from pawdex.core.archive import detect_archive_kind
from pawdex.core.archive.names import junk_reason
from pawdex.core.jobs import job_name
from pawdex.core.models import JobStatus
from pawdex.core.settings import Settings

console = Console(stderr=True)
PHOTOS_PER_REQUEST = 200  # per job of `pawdex index --local`
POLL_S = 0.5
# One request of `pawdex index`: bounded whatever the folder, under the server's default
# upload limit (2 GiB), small enough that an interrupted batch costs little to send again.
BATCH_FILES = 200
BATCH_BYTES = 256 * 1024 * 1024
_COLUMNS = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn())  # fmt: skip
_BYTE_COLUMNS = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                 TransferSpeedColumn(), TimeElapsedColumn())  # fmt: skip


def _chunks(items: list[Path], size: int) -> Iterator[list[Path]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def summarise(docs: list[dict]) -> bool:
    table = Table("job", "status", "files", "indexed", "duplicates", "skipped", "failed")
    for d in docs:
        table.add_row(d.get("name") or d["id"], d["status"], str(d["total"]), str(d["done"]),
                      str(d["duplicates"]), str(d.get("skipped", 0)), str(d["failed"]))  # fmt: skip
    console.print(table)
    for d in docs:
        for err in d["errors"]:  # the job's first ones
            console.print(f"[red]{err['name']}[/red]: {err['error']}")
        if (more := d["failed"] - len(d["errors"])) > 0:
            console.print(f"… and {more} more errors in job {d['id']} "
                          f"(GET /v1/jobs/{d['id']}/errors, or the job's page)")  # fmt: skip
    return all(d["status"] in {JobStatus.succeeded, JobStatus.partial} for d in docs)


def index_remote(
    paths: list[Path],
    server: str,
    wait: bool,
    api_key: str | None,
    batch_files: int = BATCH_FILES,
    batch_bytes: int = BATCH_BYTES,
) -> bool:
    """Send folders and photos in bounded batches, only the photos the server lacks (so a
    rerun carries on), and archives as they are; then follow the jobs with one bar."""
    headers = {"X-API-Key": api_key} if api_key else {}
    groups: list[tuple[str, list[Photo]]] = []
    loose: list[Photo] = []
    archives: list[Path] = []
    for path in paths:
        if path.is_dir():
            groups.append((path.resolve().name or "folder", list(folder_photos(path))))
        elif detect_archive_kind(path) is not None:
            archives.append(path)
        elif junk_reason(path.name) is None:
            loose.append(Photo(path.name, path, path.stat().st_size))
    if loose:
        groups.append((job_name([p.name for p in loose]), loose))
    total = sum(len(photos) for _, photos in groups)
    journal = Journal(journal_path(server))
    try:
        with httpx.Client(base_url=server, timeout=600, headers=headers) as client:
            sender = Sender(client, journal, batch_files, batch_bytes)
            with Progress(*_COLUMNS, console=console, transient=True) as progress:
                bar = progress.add_task("checking and sending", total=total)
                for name, photos in groups:
                    sender.send(photos, name, lambda n: progress.advance(bar, n))
            for archive in archives:
                sender.jobs.append(_post_archive(client, archive))
            if total:
                console.print(f"{total} photos: {total - sender.already} sent in "
                              f"{len(sender.jobs) - len(archives)} batches, {sender.already} "
                              "already on the server")  # fmt: skip
            if not wait:
                return True
            docs = follow_all(sender.jobs, lambda job_id: get_job(client, job_id))
    except SendError as exc:
        console.print(f"[red]{exc}[/red]")
        return False
    except httpx.TransportError as exc:
        console.print(f"[red]cannot reach the pawdex server at {server} ({exc}); is it "
                      "running? (`make run` or `pawdex serve`)[/red]")  # fmt: skip
        return False
    ok = summarise(docs)
    if ok and all(d["status"] == JobStatus.succeeded for d in docs):
        journal.forget()
    return ok


def _post_archive(client: httpx.Client, archive: Path) -> str:
    """Every archive goes as a resumable upload (``cli.resumable``): whatever its size and
    the server's limit on plain uploads, and a rerun carries on where a stopped one was."""
    with Progress(*_BYTE_COLUMNS, console=console, transient=True) as progress:
        bar = progress.add_task(f"sending {archive.name}", total=archive.stat().st_size)
        return send_archive(
            client, archive, lambda sent, total: progress.update(bar, completed=sent, total=total)
        )


def follow_all(job_ids: list[str], fetch: Callable[[str], dict]) -> list[dict]:
    """One bar for every file of every job, until they have all finished."""
    docs: dict[str, dict] = {}
    with Progress(*_COLUMNS, console=console) as progress:
        bar = progress.add_task("indexing", total=None)
        while True:
            for job_id in job_ids:
                if job_id not in docs or not is_finished(docs[job_id]):
                    docs[job_id] = fetch(job_id)
            progress.update(
                bar,
                total=sum(d["total"] for d in docs.values()) or None,
                completed=sum(_accounted(d) for d in docs.values()),
            )
            if all(is_finished(d) for d in docs.values()):
                return [docs[job_id] for job_id in job_ids]
            time.sleep(POLL_S)


def _accounted(doc: dict) -> int:
    return sum(doc.get(k, 0) for k in ("done", "failed", "duplicates", "skipped"))


def index_local(paths: list[Path], settings: Settings) -> bool:
    """Index without a server: the same ingest and classify code, run in this process, on
    files, archives and folders read where they are (nothing is copied or zipped)."""

    from pawdex.core.db import session_scope
    from pawdex.core.jobs import fail_job
    from pawdex.core.migrate import upgrade_to_head
    from pawdex.core.models import JobKind
    from pawdex.core.queue import get_celery
    from pawdex.core.storage import prepare_storage
    from pawdex.core.uploads import record_in_place
    from pawdex.worker.ingest import ingest_job
    from pawdex.worker.model_cache import preload

    upgrade_to_head(settings)
    prepare_storage(settings)  # as `pawdex migrate`: object storage's bucket
    settings.ensure_dirs()
    preload(settings)  # this process is the worker: it registers the model it serves
    celery = get_celery(settings)
    celery.conf.task_always_eager = True
    import pawdex.worker.tasks  # noqa: F401  registers the tasks for eager runs

    archives = [p for p in paths if p.is_dir() or detect_archive_kind(p) is not None]
    photos = [p for p in paths if p not in archives]
    groups = [(JobKind.archive, [a]) for a in archives]
    groups += [(JobKind.images, c) for c in _chunks(photos, PHOTOS_PER_REQUEST)]
    jobs: list[str] = []
    for kind, files in groups:
        job = record_in_place(kind, files, settings)
        jobs.append(job.id)

    def run_all() -> None:
        for job_id in jobs:
            try:
                ingest_job(job_id, settings)
            except Exception as exc:  # the job must end, whatever happened
                with session_scope(settings) as session:
                    fail_job(session, job_id, f"indexing stopped: {exc!r}")

    runner = threading.Thread(target=run_all, daemon=True)
    runner.start()

    docs = follow_all(jobs, lambda job_id: read_job(settings, job_id))
    runner.join()
    return summarise(docs)
