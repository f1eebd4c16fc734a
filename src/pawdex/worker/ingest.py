"""Ingest: walk an upload entry by entry, store every readable photo, queue classification.

Progress is committed every ``batch_size`` entries together with the position reached, so a
redelivered task (worker killed, broker redelivery) resumes where the last commit left off.
One delivery at a time works on a job: it holds the job's lease and renews its heartbeat with
every batch (``core.jobs``); the workers' sweeper resumes a job whose heartbeat went stale.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import posixpath
import shutil
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from pawdex.core.animals import ONE_PER_PHOTO, Grouping, InvalidGrouping, assign_animals
from pawdex.core.archive import (
    ArchiveEntry,
    ArchiveLimits,
    InPlace,
    iter_archive,
    iter_folder,
    iter_single_files,
)
from pawdex.core.db import session_factory
from pawdex.core.errors import PawdexError, UnsupportedImage
from pawdex.core.imaging import (
    DecodeBudget,
    ImageInfo,
    make_thumbnail,
    open_image,
    sha256_bytes,
)
from pawdex.core.jobs import (
    LeaseLost,
    add_to_counters,
    fail_job,
    finish_if_complete,
    insert_ignoring_conflicts,
    release_ingest_lease,
    renew_ingest_lease,
    take_ingest_lease,
    unclassified_image_ids,
)
from pawdex.core.libraries import finish_scan, record_files, scan_entries
from pawdex.core.model_versions import active_version
from pawdex.core.models import (
    Image,
    Job,
    JobDuplicate,
    JobError,
    JobImage,
    JobKind,
    JobStatus,
    utcnow,
)
from pawdex.core.queue import enqueue_classify_batches
from pawdex.core.settings import Settings, get_settings
from pawdex.core.storage import Storage, open_storage

log = logging.getLogger("pawdex.ingest")
FIRST_BATCH = 8  # photos in the first committed batch of a delivery


def job_entries(job: Job, settings: Settings) -> Iterator[ArchiveEntry]:
    """The job's files in a stable order: its spooled uploads or, for ``pawdex index
    --local``, files, archives and folders read in place (``path``), never copied."""
    limits = ArchiveLimits.from_settings(settings)
    if job.kind == JobKind.scan:
        yield from scan_entries(job, session_factory(settings), limits)
        return
    sources = [(item["name"], _source_path(item, settings)) for item in job.source]
    if job.kind != JobKind.archive:
        yield from iter_single_files(sources, limits)
        return
    for name, path in sources:
        if path.is_dir():
            yield from iter_folder(path, limits)
            continue
        try:
            yield from iter_archive(path, limits.for_archive(path.stat().st_size))
        except PawdexError as exc:
            yield ArchiveEntry(index=0, name=name, data=None, error=str(exc))
        except OSError as exc:  # a file read in place that went away
            message = f"cannot be read ({exc.strerror or exc})"
            yield ArchiveEntry(index=0, name=name, data=None, error=message)


def _source_path(item: dict, settings: Settings) -> Path:
    return Path(item["path"]) if "path" in item else settings.spool_dir / item["spool"]


@dataclass
class Delivery:
    """One delivery of a job's ingest: what every step needs, decided once at task entry."""

    job_id: str
    token: str  # the lease this delivery holds
    settings: Settings
    sessions: sessionmaker[Session]
    storage: Storage
    thumbnail_side: int  # the thumbnails' shorter side: the classifier reads them as they are
    grouping: Grouping = ONE_PER_PHOTO  # how new photos become animals

    @classmethod
    def of(cls, job_id: str, token: str, settings: Settings) -> Delivery:
        sessions = session_factory(settings)
        with sessions() as session:
            version = active_version(session)
        model_side = int((version.details or {}).get("resize_size", 0)) if version else 0
        return cls(
            job_id, token, settings, sessions, open_storage(settings),
            max(settings.thumbnail_size, model_side),
        )  # fmt: skip


def ingest_job(job_id: str, settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    token = uuid.uuid4().hex
    sessions = session_factory(settings)
    with sessions.begin() as session:
        job = take_ingest_lease(session, job_id, token, settings.ingest_heartbeat_timeout)
        if job is None:
            log.info("event=ingest_skipped job_id=%s reason=unknown_finished_or_leased", job_id)
            return
        attempts, position = job.ingest_attempts, job.ingest_position
        if attempts > settings.max_attempts + 1:
            # Even skipping the entry at the position did not help: the archive itself
            # (or this host) kills the worker. End clearly rather than loop.
            fail_job(
                session,
                job_id,
                f"ingest stopped: its worker was lost {attempts - 1} times in a row at entry "
                f"{position} of the upload (killed, out of memory?)",
            )
            job.ingest_lease = None
            log.error("event=ingest_given_up job_id=%s attempts=%s", job_id, attempts - 1)
            return
        resuming = job.started_at is not None
        job.status = JobStatus.running
        job.started_at = job.started_at or utcnow()
        session.flush()
        session.expunge(job)
    log.info(
        "event=ingest_start job_id=%s resume=%s position=%s attempt=%s",
        job_id, resuming, position, attempts,
    )  # fmt: skip
    run = dataclasses.replace(Delivery.of(job_id, token, settings), grouping=_grouping(job))
    try:
        _ingest_from(run, job, attempts, resuming=resuming)
    except LeaseLost:
        log.warning("event=ingest_lease_lost job_id=%s (another delivery took over)", job_id)
    except Exception:
        # Not a crash: this delivery does not count as an attempt, and the retry (or the
        # sweeper) may take the job at once.
        with contextlib.suppress(Exception), sessions.begin() as session:
            release_ingest_lease(session, job_id, token, attempt=False)
        raise


def _grouping(job: Job) -> Grouping:
    try:
        return Grouping.parse(job.grouping)
    except InvalidGrouping:  # checked when the job was made; a rule that broke since
        log.warning("event=grouping_invalid job_id=%s grouping=%r", job.id, job.grouping)
        return ONE_PER_PHOTO


def _ingest_from(run: Delivery, job: Job, attempts: int, resuming: bool) -> None:
    """Walk the upload from the committed position, under the lease ``token``.

    ``attempts`` counts the deliveries since the last one that committed progress, this one
    included. After a death (``attempts`` > 1) the next ``batch_size`` entries are committed
    one at a time, so that the entry which kills the worker ends up at the position; when it
    killed ``max_attempts`` deliveries that read it alone, it is skipped as a file error."""
    job_id, settings = job.id, run.settings
    if resuming:
        _requeue_unclassified(run)
    # A scan walks its library from the start every time: what an earlier delivery committed
    # is recorded as seen, so the walk passes over it unread.
    start = position = 0 if job.kind == JobKind.scan else job.ingest_position
    careful_until = start + settings.batch_size if attempts > 1 else start
    poison_at = start if attempts > settings.max_attempts else None
    beat_every = settings.ingest_heartbeat_timeout / 10
    last_beat = time.monotonic()
    # The first batch is small: the inference worker starts while ingest goes on, instead of
    # waiting for a whole batch to be decoded (bench: 0.28 s of idle cores per job).
    first_until = start + min(FIRST_BATCH, settings.batch_size)
    batch: list[ArchiveEntry] = []
    for ordinal, entry in enumerate(job_entries(job, settings)):
        if ordinal < position:  # committed by an earlier delivery of this task
            if time.monotonic() - last_beat > beat_every:  # a long skip is not a death
                with run.sessions.begin() as session:
                    renew_ingest_lease(session, job_id, run.token, progress=False)
                last_beat = time.monotonic()
            continue
        if ordinal == poison_at:
            log.error("event=poison_entry job_id=%s position=%s", job_id, ordinal)
            entry = dataclasses.replace(
                entry,
                data=None,
                error=f"this file stopped the worker {settings.max_attempts} times while it "
                "was read; skipped",
            )
        batch.append(entry)
        if ordinal < careful_until:
            limit = 1
        elif ordinal < first_until:
            limit = first_until - start
        else:
            limit = settings.batch_size
        if len(batch) >= limit:
            position = _commit_batch(run, batch, position)
            last_beat = time.monotonic()
            batch = []
    position = _commit_batch(run, batch, position)

    with run.sessions.begin() as session:
        job_row = renew_ingest_lease(session, job_id, run.token, progress=False)
        if job_row.status == JobStatus.running:
            job_row.ingest_done = True
            if job_row.kind == JobKind.scan:
                finish_scan(session, job_row, run.storage)
        job_row.ingest_lease = None
    with run.sessions.begin() as session:
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
    if entry.skipped is not None:
        return _Prepared(entry)
    if entry.error is not None or entry.data is None:
        return _Prepared(entry, error=entry.error or "empty entry")
    if not entry.data:
        return _Prepared(entry, error="empty file (0 bytes)")
    return _Prepared(entry, sha256=sha256_bytes(entry.data))


@dataclass(frozen=True)
class StoredPhoto:
    info: ImageInfo
    key: str  # the photo's storage key (not written when the original stays in a library)
    thumbnail_key: str


def store_photo(
    data: bytes,
    sha256: str,
    storage: Storage,
    settings: Settings,
    thumbnail_side: int,
    keep_original: bool = True,
) -> StoredPhoto:
    """Validate by decoding, store the bytes (unless the original stays in a library) and a
    thumbnail (one decode for both); raises UnsupportedImage. No database: ``pawdex bench``
    runs it alone for its pipeline limit."""
    img, info = open_image(
        data, settings.max_image_pixels, min_side=thumbnail_side, budget=DecodeBudget.of(settings)
    )
    thumbnail = make_thumbnail(img, thumbnail_side)
    key = storage.image_key(sha256, info.format)
    if keep_original:
        storage.put(key, data)
    thumbnail_key = storage.thumbnail_key(sha256)
    storage.put(thumbnail_key, thumbnail)
    return StoredPhoto(info, key, thumbnail_key)


def _decode_and_store(item: _Prepared, run: Delivery) -> None:
    data, sha, in_place = item.entry.data, item.sha256, item.entry.in_place is not None
    try:
        stored = store_photo(
            data, sha, run.storage, run.settings, run.thumbnail_side, keep_original=not in_place
        )
    except UnsupportedImage as exc:
        item.error = str(exc)
        return
    info = stored.info
    item.row = dict(
        sha256=sha,
        filename=posixpath.basename(item.entry.name),
        path=item.entry.name,
        format=info.format,
        size_bytes=len(data),
        width=info.width,
        height=info.height,
        stored_path=None if in_place else stored.key,
        thumbnail_path=stored.thumbnail_key,
        job_id=run.job_id,
        created_at=utcnow(),
    )


def _commit_batch(run: Delivery, batch: list[ArchiveEntry], position: int) -> int:
    """Hash, dedupe, decode and store a batch, then record it in one short transaction.

    Decoding happens outside the transaction (and in threads) so that the write lock, which
    SQLite holds for the whole transaction, is held only for the inserts. The transaction
    starts by locking the job row and checking the lease ``token``: a delivery presumed dead
    that wakes up again records nothing."""
    if not batch:
        return position
    job_id = run.job_id
    items = [_hash(entry) for entry in batch]
    shas = {item.sha256 for item in items if item.sha256}
    with run.sessions.begin() as session:
        rows = session.execute(
            select(Image.sha256, Image.id, Image.format, Image.stored_path).where(
                Image.sha256.in_(shas)
            )
        ).all()
        known = {row.sha256: row.id for row in rows}
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
    pool = _pool(run.settings.decode_threads)
    list(pool.map(lambda it: _decode_and_store(it, run), first_seen.values()))
    originals = _keep_originals(run, items, rows)

    new_ids: list[int] = []
    new_photos: list[tuple[int, str]] = []  # (image id, path): to group into animals
    known_photos: list[tuple[int, str]] = []  # already indexed: may join their animal
    failed = duplicates = skipped = 0
    in_place: list[tuple[InPlace, int | None]] = []
    with run.sessions.begin() as session:
        job = renew_ingest_lease(session, job_id, run.token, progress=True)
        for image_id, key in originals.items():
            session.execute(
                update(Image).where(Image.id == image_id, Image.stored_path.is_(None))
                .values(stored_path=key)
            )  # fmt: skip
        for item in items:
            source = first_seen.get(item.sha256) if item.sha256 else None
            error = item.error or (source.error if source is not None else None)
            if item.entry.in_place is not None and (item.entry.skipped or error):
                in_place.append((item.entry.in_place, None))  # read, not a photo
            if item.entry.skipped is not None:
                skipped += 1
                continue
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
            name = item.entry.name
            if item.entry.in_place is not None:
                in_place.append((item.entry.in_place, image_id))
            if not is_new:
                known_photos.append((image_id, name))
            if image_id in in_job or not is_new:  # the same photo twice, or already indexed
                duplicates += 1
                session.add(JobDuplicate(job_id=job_id, name=name, image_id=image_id))
            if image_id in in_job:
                continue
            in_job.add(image_id)
            session.add(JobImage(job_id=job_id, image_id=image_id, name=name, duplicate=not is_new))
            if is_new:
                new_ids.append(image_id)
                new_photos.append((image_id, name))
        record_files(session, job_id, in_place)
        assign_animals(session, run.grouping, new_photos, known_photos)
        position += len(batch)
        add_to_counters(
            session, job_id, total=len(batch), failed=failed, duplicates=duplicates,
            skipped=skipped,
        )  # fmt: skip
        job.ingest_position = position
    # Commit before enqueue: the worker must find the rows it is sent.
    enqueue_classify_batches(job_id, new_ids, run.settings)
    return position


def _keep_originals(run: Delivery, items: list[_Prepared], known: list) -> dict[int, str]:
    """An uploaded photo already indexed in place from a library is stored now: the upload
    keeps its original when the library's file goes away. Returns ``{image id: key}``."""
    lacking = {row.sha256: row for row in known if row.stored_path is None}
    stored: dict[int, str] = {}
    for item in items:
        row = lacking.get(item.sha256) if item.entry.in_place is None else None
        if row is not None and row.id not in stored:
            key = run.storage.image_key(row.sha256, row.format)
            run.storage.put(key, item.entry.data)
            stored[row.id] = key
    return stored


def _requeue_unclassified(run: Delivery) -> None:
    """After a crash between a commit and its enqueue, send the job's orphans again."""
    with run.sessions.begin() as session:
        ids = unclassified_image_ids(session, run.job_id)
    enqueue_classify_batches(run.job_id, ids, run.settings)


def _discard_spool(job: Job, settings: Settings) -> None:
    """Delete the job's spooled uploads (never a folder read in place)."""
    for item in job.source:
        if "spool" not in item:
            continue
        path = (settings.spool_dir / item["spool"]).resolve()
        if path.is_relative_to(settings.spool_dir.resolve()):
            parent = path.parent
            path.unlink(missing_ok=True)
            if parent != settings.spool_dir.resolve() and not any(parent.iterdir()):
                shutil.rmtree(parent, ignore_errors=True)
