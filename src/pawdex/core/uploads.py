"""Uploads: stream to the spool, record the job, commit, then enqueue ``ingest``."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select

from pawdex.core.archive import detect_archive_kind, sanitize_member_name
from pawdex.core.db import session_scope
from pawdex.core.errors import PawdexError, UnsupportedArchive
from pawdex.core.models import Job, JobKind, JobStatus, utcnow
from pawdex.core.queue import enqueue_ingest
from pawdex.core.settings import Settings

CHUNK = 1024 * 1024


class UploadTooLarge(PawdexError):
    """The upload is larger than ``max_upload_bytes``."""


class BrokerUnavailable(PawdexError):
    """The job was recorded but could not be queued."""


@dataclass
class IncomingFile:
    name: str
    stream: BinaryIO


def _spool(files: Iterable[IncomingFile], settings: Settings) -> tuple[Path, list[dict]]:
    batch_dir = settings.spool_dir / uuid.uuid4().hex
    batch_dir.mkdir(parents=True)
    budget = settings.max_upload_bytes
    items: list[dict] = []
    try:
        for number, incoming in enumerate(files):
            target = batch_dir / f"{number:06d}"
            with target.open("wb") as out:
                while chunk := incoming.stream.read(CHUNK):
                    budget -= len(chunk)
                    if budget < 0:
                        raise UploadTooLarge(
                            f"upload larger than the limit of {settings.max_upload_bytes} bytes"
                        )
                    out.write(chunk)
            items.append(
                {
                    # Client file names are untrusted text, like archive member names.
                    "name": sanitize_member_name(incoming.name or f"file-{number}"),
                    "spool": f"{batch_dir.name}/{target.name}",
                }
            )
    except BaseException:
        shutil.rmtree(batch_dir, ignore_errors=True)
        raise
    return batch_dir, items


def sweep_spool(settings: Settings, min_age_s: float = 3600) -> list[str]:
    """Delete spool batches that no queued or running job reads: what an API killed while
    spooling left behind (its job was never committed), and the uploads of failed jobs.

    Only batches untouched for ``min_age_s`` go: a batch being spooled right now by another
    API process has no job yet. Returns the names of the batches deleted."""
    spool = settings.spool_dir
    if not spool.is_dir():
        return []
    with session_scope(settings) as session:
        sources = session.scalars(
            select(Job.source).where(Job.status.in_([JobStatus.queued, JobStatus.running]))
        )
        in_use = {item["spool"].split("/", 1)[0] for source in sources for item in source or []}
    cutoff = time.time() - min_age_s
    deleted = []
    for batch in spool.iterdir():
        if batch.name in in_use:
            continue
        try:
            newest = max(p.stat().st_mtime for p in (batch, *batch.rglob("*")))
        except OSError:
            continue  # deleted meanwhile
        if newest < cutoff:
            if batch.is_dir():
                shutil.rmtree(batch, ignore_errors=True)
            else:
                batch.unlink(missing_ok=True)
            deleted.append(batch.name)
    return deleted


def submit(
    kind: JobKind, files: list[IncomingFile], settings: Settings, *, enqueue: bool = True
) -> Job:
    """Spool the files, create the job and queue it. Returns the committed job."""
    settings.ensure_dirs()
    batch_dir, items = _spool(files, settings)
    try:
        if kind == JobKind.archive:
            for item in items:
                if detect_archive_kind(settings.spool_dir / item["spool"]) is None:
                    raise UnsupportedArchive(
                        f"{item['name']}: not a zip or tar archive (.zip, .tar, .tar.gz, .tgz)"
                    )
        with session_scope(settings) as session:
            job = Job(kind=kind, source=items)
            session.add(job)
    except BaseException:
        shutil.rmtree(batch_dir, ignore_errors=True)
        raise
    if not enqueue:
        return job
    try:
        enqueue_ingest(job.id, settings)
    except Exception as exc:
        with session_scope(settings) as session:
            row = session.get(Job, job.id)
            row.status = JobStatus.failed
            row.message = f"could not queue the job: {exc}"
            row.finished_at = utcnow()
        raise BrokerUnavailable("the job queue is unavailable; try again shortly") from exc
    return job
