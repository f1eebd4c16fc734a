"""Ingest: walk an upload entry by entry, store every readable photo, queue classification.

Progress is committed every ``batch_size`` entries together with the position reached, so a
redelivered task (worker killed, broker redelivery) resumes where the last commit left off.
"""

from __future__ import annotations

import logging
import posixpath
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

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


@dataclass
class _Prepared:
    entry: ArchiveEntry
    sha256: str | None = None
    row: dict | None = None  # a new photo, stored, ready to insert
    error: str | None = None


@lru_cache
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ingest")


def _hash(entry: ArchiveEntry) -> _Prepared:
    if entry.error is not None or entry.data is None:
        return _Prepared(entry, error=entry.error or "empty entry")
    if not entry.data:
        return _Prepared(entry, error="empty file (0 bytes)")
    return _Prepared(entry, sha256=sha256_bytes(entry.data))


def _decode_and_store(item: _Prepared, job_id: str, storage: Storage, settings: Settings) -> None:
    """Validate by decoding, store the bytes and a thumbnail (one decode for both)."""
    data, sha = item.entry.data, item.sha256
    try:
        img, info = open_image(data, settings.max_image_pixels, min_side=settings.thumbnail_size)
        thumbnail = make_thumbnail(img, settings.thumbnail_size)
    except UnsupportedImage as exc:
        item.error = str(exc)
        return
    key = storage.image_key(sha, info.format)
    storage.put(key, data)
    thumb_key = storage.thumbnail_key(sha)
    storage.put(thumb_key, thumbnail)
    item.row = dict(
        sha256=sha,
        filename=posixpath.basename(item.entry.name),
        path=item.entry.name,
        format=info.format,
        size_bytes=len(data),
        width=info.width,
        height=info.height,
        stored_path=key,
        thumbnail_path=thumb_key,
        job_id=job_id,
        created_at=utcnow(),
    )


def _commit_batch(
    job_id: str, batch: list[ArchiveEntry], position: int, storage: Storage, settings: Settings
) -> int:
    """Hash, dedupe, decode and store a batch, then record it in one short transaction.

    Decoding happens outside the transaction (and in threads) so that the write lock, which
    SQLite holds for the whole transaction, is held only for the inserts."""
    if not batch:
        return position
    items = [_hash(entry) for entry in batch]
    shas = {item.sha256 for item in items if item.sha256}
    with session_scope(settings) as session:
        known = dict(
            session.execute(select(Image.sha256, Image.id).where(Image.sha256.in_(shas))).all()
        )
        in_job = set(
            session.scalars(
                select(JobImage.image_id).where(
                    JobImage.job_id == job_id, JobImage.image_id.in_(known.values())
                )
            )
        )
    first_seen: dict[str, _Prepared] = {}
    for item in items:
        if item.sha256 and item.sha256 not in known:
            first_seen.setdefault(item.sha256, item)
    pool = _pool(settings.decode_threads)
    list(pool.map(lambda it: _decode_and_store(it, job_id, storage, settings), first_seen.values()))

    new_ids: list[int] = []
    failed = duplicates = 0
    with session_scope(settings) as session:
        for item in items:
            source = first_seen.get(item.sha256) if item.sha256 else None
            error = item.error or (source.error if source is not None else None)
            if error is not None:
                session.add(JobError(job_id=job_id, name=item.entry.name, error=error))
                failed += 1
                continue
            image_id, is_new = known.get(item.sha256), False
            if image_id is None:  # first sight of this photo anywhere
                stmt = insert_ignoring_conflicts(session, Image, ["sha256"]).values(**item.row)
                image_id = session.scalar(stmt.returning(Image.id))
                is_new = image_id is not None
                if not is_new:  # another job stored the same photo a moment ago
                    image_id = session.scalar(select(Image.id).where(Image.sha256 == item.sha256))
                known[item.sha256] = image_id
            if image_id in in_job:
                duplicates += 1  # already part of this job (the same photo twice)
                continue
            in_job.add(image_id)
            name = item.entry.name
            session.add(JobImage(job_id=job_id, image_id=image_id, name=name, duplicate=not is_new))
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
