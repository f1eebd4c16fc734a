"""Ingest: walk an upload entry by entry, store every readable photo, queue classification.

Progress is committed every ``batch_size`` entries together with the position reached, so a
redelivered task (worker killed, broker redelivery) resumes where the last commit left off.
"""

from __future__ import annotations

import logging
import posixpath
import shutil
from collections.abc import Iterator

from sqlalchemy import exists, select

from core.archive import ArchiveEntry, ArchiveLimits, iter_archive, iter_single_files
from core.db import session_scope
from core.errors import PawdexError, UnsupportedImage
from core.imaging import make_thumbnail, open_image, sha256_bytes
from core.jobs import add_to_counters, finish_if_complete, insert_ignoring_conflicts
from core.models import (
    FINISHED_STATUSES,
    Image,
    Job,
    JobError,
    JobImage,
    JobKind,
    JobStatus,
    utcnow,
)
from core.models import Prediction as PredictionRow
from core.queue import enqueue_classify
from core.settings import Settings, get_settings
from core.storage import Storage

log = logging.getLogger("pawdex.ingest")


def job_entries(job: Job, settings: Settings) -> Iterator[ArchiveEntry]:
    limits = ArchiveLimits.from_settings(settings)
    sources = [(item["name"], settings.spool_dir / item["spool"]) for item in job.source]
    if job.kind == JobKind.archive:
        for name, path in sources:
            try:
                yield from iter_archive(path, limits)
            except PawdexError as exc:
                yield ArchiveEntry(index=0, name=name, data=None, error=str(exc))
    else:
        yield from iter_single_files(sources, limits)


def ingest_job(job_id: str, settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    with session_scope(settings) as session:
        job = session.get(Job, job_id)
        if job is None:
            log.warning("event=ingest_unknown_job job_id=%s", job_id)
            return
        if job.status in FINISHED_STATUSES or job.ingest_done:
            return
        resuming = job.status == JobStatus.running
        job.status = JobStatus.running
        job.started_at = job.started_at or utcnow()
        session.flush()
        session.expunge(job)
    log.info(
        "event=ingest_start job_id=%s resume=%s position=%s", job_id, resuming, job.ingest_position
    )
    if resuming:
        _requeue_unclassified(job_id, settings)

    storage = Storage(settings.storage_dir)
    batch: list[ArchiveEntry] = []
    position = job.ingest_position
    for ordinal, entry in enumerate(job_entries(job, settings)):
        if ordinal < position:
            continue  # committed by an earlier delivery of this task
        batch.append(entry)
        if len(batch) >= settings.batch_size:
            position = _commit_batch(job_id, batch, position, storage, settings)
            batch = []
    position = _commit_batch(job_id, batch, position, storage, settings)

    with session_scope(settings) as session:
        job = session.get(Job, job_id)
        if job is not None and job.status == JobStatus.running:
            job.ingest_done = True
    with session_scope(settings) as session:
        finish_if_complete(session, job_id)
    _discard_spool(job, settings)
    log.info("event=ingest_done job_id=%s entries=%s", job_id, position)


def _commit_batch(
    job_id: str, batch: list[ArchiveEntry], position: int, storage: Storage, settings: Settings
) -> int:
    if not batch:
        return position
    new_ids: list[int] = []
    failed = duplicates = 0
    with session_scope(settings) as session:
        seen_in_job = set(
            session.scalars(select(JobImage.image_id).where(JobImage.job_id == job_id))
        )
        for entry in batch:
            try:
                image_id, is_new = _store_entry(session, entry, job_id, storage, settings)
            except UnsupportedImage as exc:
                session.add(JobError(job_id=job_id, name=entry.name, error=str(exc)))
                failed += 1
                continue
            if image_id in seen_in_job:
                duplicates += 1  # the same photo twice in one upload
                continue
            seen_in_job.add(image_id)
            session.add(
                JobImage(job_id=job_id, image_id=image_id, name=entry.name, duplicate=not is_new)
            )
            if is_new:
                new_ids.append(image_id)
            else:
                duplicates += 1
        position += len(batch)
        add_to_counters(session, job_id, total=len(batch), failed=failed, duplicates=duplicates)
        session.get(Job, job_id).ingest_position = position
    # Commit before enqueue: the worker must find the rows it is sent.
    for start in range(0, len(new_ids), settings.batch_size):
        enqueue_classify(job_id, new_ids[start : start + settings.batch_size], settings)
    return position


def _store_entry(
    session, entry: ArchiveEntry, job_id: str, storage: Storage, settings: Settings
) -> tuple[int, bool]:
    if entry.error is not None or entry.data is None:
        raise UnsupportedImage(entry.error or "empty entry")
    if not entry.data:
        raise UnsupportedImage("empty file (0 bytes)")
    sha = sha256_bytes(entry.data)
    existing = session.scalar(select(Image.id).where(Image.sha256 == sha))
    if existing is not None:
        return existing, False
    img, info = open_image(entry.data, settings.max_image_pixels)
    key = storage.image_key(sha, info.format)
    storage.put(key, entry.data)
    thumb_key = storage.thumbnail_key(sha)
    storage.put(thumb_key, make_thumbnail(img, settings.thumbnail_size))
    row = dict(
        sha256=sha,
        filename=posixpath.basename(entry.name),
        path=entry.name,
        format=info.format,
        size_bytes=len(entry.data),
        width=info.width,
        height=info.height,
        stored_path=key,
        thumbnail_path=thumb_key,
        job_id=job_id,
        created_at=utcnow(),
    )
    stmt = insert_ignoring_conflicts(session, Image, ["sha256"]).values(**row).returning(Image.id)
    image_id = session.scalar(stmt)
    if image_id is None:  # another job stored the same photo a moment ago
        return session.scalar(select(Image.id).where(Image.sha256 == sha)), False
    return image_id, True


def _requeue_unclassified(job_id: str, settings: Settings) -> None:
    """After a crash between a commit and its enqueue, send the job's orphans again."""
    with session_scope(settings) as session:
        ids = list(
            session.scalars(
                select(JobImage.image_id)
                .where(JobImage.job_id == job_id, JobImage.duplicate.is_(False))
                .where(
                    ~exists().where(
                        PredictionRow.image_id == JobImage.image_id, PredictionRow.job_id == job_id
                    )
                )
                .where(
                    ~exists().where(
                        JobError.job_id == job_id, JobError.image_id == JobImage.image_id
                    )
                )
                .order_by(JobImage.image_id)
            )
        )
    for start in range(0, len(ids), settings.batch_size):
        enqueue_classify(job_id, ids[start : start + settings.batch_size], settings)


def _discard_spool(job: Job, settings: Settings) -> None:
    for item in job.source:
        path = (settings.spool_dir / item["spool"]).resolve()
        if path.is_relative_to(settings.spool_dir.resolve()):
            parent = path.parent
            path.unlink(missing_ok=True)
            if parent != settings.spool_dir.resolve() and not any(parent.iterdir()):
                shutil.rmtree(parent, ignore_errors=True)
