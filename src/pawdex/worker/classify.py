"""Classify: the forward chunk by chunk as the photos decode, all predictions of a batch in one
transaction."""

from __future__ import annotations

import contextlib
import io
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image as PILImage
from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from pawdex.core.db import session_factory
from pawdex.core.errors import UnsupportedImage
from pawdex.core.imaging import DecodeBudget, decode_for_model
from pawdex.core.jobs import add_to_counters, finish_if_complete, insert_ignoring_conflicts, upsert
from pawdex.core.labels import show_labels
from pawdex.core.model_versions import replaces_predictions
from pawdex.core.models import Image, Job, JobError, JobImage, JobStatus, TrashedPrediction
from pawdex.core.models import Prediction as PredictionRow
from pawdex.core.settings import Settings, get_settings
from pawdex.core.storage import Storage, open_storage
from pawdex.core.trash import trashed_predictions_hidden
from pawdex.ml import BreedClassifier, Prediction
from pawdex.worker.model_cache import active_classifier
from pawdex.worker.presence import record_batch, record_delivery
from pawdex.worker.thumbnails import FetchedThumbnails

log = logging.getLogger("pawdex.classify")


@lru_cache
def _decoder_pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="decode")


def _stored(storage: Storage | FetchedThumbnails, key: str) -> Path | bytes:
    """A stored file: in the storage, or among what the API sent for the batch."""
    if isinstance(storage, FetchedThumbnails):
        return storage.read(key)
    return storage.local_path(key) or storage.read(key)  # object storage: its bytes


def model_input(row, storage: Storage | FetchedThumbnails, resize_size: int) -> PILImage.Image:
    """The ingest thumbnail when it is big enough for the model or is the whole photo (one
    decode per photo in the whole pipeline, ~0.5 ms), else the original decoded as small as
    possible, within the settings' decode budget (read here: wrappers in the tests patch
    this three-argument call)."""
    if row.thumbnail_path:
        source = _stored(storage, row.thumbnail_path)
        thumb = PILImage.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        # A photo smaller than the model's input is its thumbnail, pixel for pixel: its
        # original has nothing more (and on another host would cost a request of its own).
        # A library photo's original is not stored: its thumbnail is all there is.
        enough = min(resize_size, row.width, row.height)
        if min(thumb.size) >= enough or not row.stored_path:
            thumb.load()
            return thumb if thumb.mode == "RGB" else thumb.convert("RGB")
        thumb.close()
    budget = DecodeBudget.of(get_settings())
    return decode_for_model(_stored(storage, row.stored_path), resize_size, budget)


@dataclass
class _Batch:
    """One delivery of a classify task: what every step needs, decided once at task entry."""

    job_id: str
    model: BreedClassifier
    version_id: int
    sessions: sessionmaker[Session]
    storage: Storage
    decode_threads: int
    overwrite: bool = False  # a reindex of every photo replaces this model's predictions
    api: Settings | None = None  # PAWDEX_THUMBNAIL_SOURCE=api: each group fetched from it


def classify_images(job_id: str, image_ids: list[int], settings: Settings | None = None) -> None:
    """Classify a batch, idempotently, and so that a photo that kills the worker cannot
    take its batch down more than ``max_attempts`` times.

    Each delivery counts, per photo, that it took the photo in hand (``JobImage.attempts``,
    committed before the work). A photo already taken by an earlier delivery without result
    is suspect (that delivery died): suspects are classified one at a time, so only the photo
    that kills the worker keeps dying, and after ``max_attempts`` it becomes a file error."""
    settings = settings or get_settings()
    began = time.perf_counter()
    sessions = session_factory(settings)
    model, version_id = active_classifier(settings, sessions)

    with sessions.begin() as session:
        job = session.get(Job, job_id)
        if job is None or job.status == JobStatus.cancelled:
            return
        # A reindex of every photo replaces this model's earlier predictions: only what this
        # job itself wrote counts as done.
        overwrite = replaces_predictions(job)
        done = select(PredictionRow.image_id).where(
            PredictionRow.image_id.in_(image_ids), PredictionRow.model_version_id == version_id
        )
        if overwrite:
            done = done.where(PredictionRow.job_id == job_id)
        accounted = set(session.scalars(done))
        # Photos deleted since: their predictions wait in the trash, and count as done.
        trashed = select(TrashedPrediction.image_id).where(
            TrashedPrediction.image_id.in_(image_ids),
            TrashedPrediction.model_version_id == version_id,
        )
        if overwrite:
            trashed = trashed.where(TrashedPrediction.job_id == job_id)
        accounted.update(session.scalars(trashed))
        accounted.update(
            session.scalars(
                select(JobError.image_id).where(
                    JobError.job_id == job_id, JobError.image_id.in_(image_ids)
                )
            )
        )
        rows = session.execute(
            select(
                Image.id,
                Image.stored_path,
                Image.thumbnail_path,
                Image.width,
                Image.height,
                func.coalesce(JobImage.attempts, 0).label("attempts"),
            )
            .outerjoin(JobImage, and_(JobImage.image_id == Image.id, JobImage.job_id == job_id))
            .where(Image.id.in_(image_ids))
            .order_by(Image.id)
        ).all()
    todo = [row for row in rows if row.id not in accounted]
    poison = [row for row in todo if row.attempts >= settings.max_attempts]
    fresh = [row for row in todo if row.attempts == 0]
    suspects = [row for row in todo if 0 < row.attempts < settings.max_attempts]
    if poison:
        log.error("event=poison_photos job_id=%s image_ids=%s", job_id, [row.id for row in poison])
        message = f"this photo stopped the worker {settings.max_attempts} times; skipped"
        with sessions.begin() as session:
            _record(session, job_id, version_id, [], [(row.id, message) for row in poison])
    batch = _Batch(
        job_id, model, version_id, sessions, open_storage(settings),
        settings.decode_threads, overwrite,
        settings if settings.thumbnail_source == "api" else None,
    )  # fmt: skip
    for group in ([fresh] if fresh else []) + [[row] for row in suspects]:
        _classify_group(batch, group)
    with sessions.begin() as session:
        finish_if_complete(session, job_id)
    record_delivery(time.perf_counter() - began, settings)


def _classify_group(batch: _Batch, rows: list) -> None:
    """The forward over ``rows`` and one transaction for their results."""
    ids = [row.id for row in rows]
    with batch.sessions.begin() as session:
        _count_attempt(session, batch.job_id, ids, +1)
    try:
        _classify_rows(batch, rows)
    except Exception:
        # An error this process survived is not a death: give the attempt back if we can.
        with contextlib.suppress(Exception), batch.sessions.begin() as session:
            _count_attempt(session, batch.job_id, ids, -1)
        raise


def _count_attempt(session, job_id: str, image_ids: list[int], delta: int) -> None:
    session.execute(
        update(JobImage)
        .where(JobImage.job_id == job_id, JobImage.image_id.in_(image_ids))
        .where(JobImage.attempts + delta >= 0)
        .values(attempts=JobImage.attempts + delta)
    )


def _classify_rows(batch: _Batch, todo: list) -> None:
    """Decode in the pool and run the forward chunk by chunk as the crops arrive, so the
    forward of one chunk overlaps the decoding of the next (ONNX Runtime and Pillow both
    release the GIL); the results are written in one transaction."""
    model, job_id = batch.model, batch.job_id
    fetch_began = time.perf_counter()
    # Over HTTP, the whole group in one request before any decoding (ApiUnavailable: retry).
    source = FetchedThumbnails(batch.api, todo) if batch.api else batch.storage
    fetch_s = time.perf_counter() - fetch_began

    def prepare(row) -> PILImage.Image | str:
        try:
            return model.prepare(model_input(row, source, model.preset.resize_size))
        except (UnsupportedImage, OSError, ValueError) as exc:
            return f"cannot read the stored photo: {exc}"

    started = time.perf_counter()
    pool = _decoder_pool(batch.decode_threads)
    futures = [pool.submit(prepare, row) for row in todo]
    predicted: list[tuple[int, Prediction]] = []
    bad: list[tuple[int, str]] = []
    chunk: list[tuple[int, PILImage.Image]] = []
    wait_s = forward_s = 0.0

    def forward() -> None:
        nonlocal forward_s
        began = time.perf_counter()
        predictions = model.predict_prepared([crop for _, crop in chunk])
        forward_s += time.perf_counter() - began
        predicted.extend((image_id, p) for (image_id, _), p in zip(chunk, predictions, strict=True))
        chunk.clear()

    try:
        for row, future in zip(todo, futures, strict=True):
            began = time.perf_counter()
            crop = future.result()
            wait_s += time.perf_counter() - began
            if isinstance(crop, str):
                bad.append((row.id, crop))
                continue
            chunk.append((row.id, crop))
            if len(chunk) == model.forward_batch:
                forward()
        if chunk:
            forward()
    finally:
        for future in futures:  # after a failed forward, decode nothing more for this batch
            future.cancel()
    computed = time.perf_counter()
    record_batch(len(predicted), forward_s)

    with batch.sessions.begin() as session:
        inserted = _record(session, job_id, batch.version_id, predicted, bad, batch.overwrite)
    log.info(
        "event=classified job_id=%s batch=%s new=%s failed=%s fetch_s=%.3f decode_wait_s=%.3f "
        "forward_s=%.3f compute_s=%.3f write_s=%.3f", job_id, len(todo), inserted, len(bad),
        fetch_s, wait_s, forward_s, computed - started, time.perf_counter() - computed,
    )  # fmt: skip


def _record(
    session,
    job_id: str,
    version_id: int,
    predicted: list,
    bad: list[tuple[int, str]],
    overwrite: bool = False,
) -> int:
    """Write predictions and per-file errors; count what was new. Counted in the same
    transaction as the rows: a redelivered task inserts nothing and so counts nothing."""
    inserted: list[int] = []
    if predicted:
        values = [
            {
                "image_id": image_id,
                "model_version_id": version_id,
                "job_id": job_id,
                "species": p.species,
                "breed": p.breed,
                "catalog_species": p.species,
                "catalog_breed": p.breed,
                "labelled": False,
                "confidence": p.confidence,
                "species_confidence": p.species_confidence,
                "top_k": [{"breed": b, "confidence": c} for b, c in p.top_k],
            }
            for image_id, p in predicted
        ]
        keys = ["image_id", "model_version_id"]
        if overwrite:  # replace earlier rows of this model, unless this job wrote them
            stmt = upsert(session, PredictionRow, keys, values, where_not={"job_id": job_id})
        else:
            stmt = insert_ignoring_conflicts(session, PredictionRow, keys).values(values)
        inserted = list(session.scalars(stmt.returning(PredictionRow.image_id)))
        show_labels(session, inserted)  # photos a person labelled before (a reindex)
        trashed_predictions_hidden(session, inserted)  # deleted while it was classified
    failed = 0
    for image_id, message in bad:
        already = session.scalar(
            select(JobError.id).where(JobError.job_id == job_id, JobError.image_id == image_id)
        )
        if already is None:
            name = session.scalar(select(Image.path).where(Image.id == image_id)) or str(image_id)
            session.add(JobError(job_id=job_id, name=name, error=message, image_id=image_id))
            failed += 1
    add_to_counters(session, job_id, done=len(inserted), failed=failed)
    return len(inserted)


def give_up(
    job_id: str, image_ids: list[int], message: str, settings: Settings | None = None
) -> None:
    """Account for a batch that cannot be classified, so its job still ends (as partial)."""
    sessions = session_factory(settings or get_settings())
    with sessions.begin() as session:
        predicted = set(
            session.scalars(
                select(PredictionRow.image_id).where(
                    PredictionRow.image_id.in_(image_ids), PredictionRow.job_id == job_id
                )
            )
        )
        recorded = set(
            session.scalars(
                select(JobError.image_id).where(
                    JobError.job_id == job_id, JobError.image_id.in_(image_ids)
                )
            )
        )
        rows = session.execute(select(Image.id, Image.path).where(Image.id.in_(image_ids))).all()
        lost = [row for row in rows if row.id not in predicted and row.id not in recorded]
        for row in lost:
            session.add(JobError(job_id=job_id, name=row.path, error=message, image_id=row.id))
        add_to_counters(session, job_id, failed=len(lost))
    with sessions.begin() as session:
        finish_if_complete(session, job_id)
