"""Worker tasks are idempotent: a redelivered task writes and counts nothing twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from pawdex.core.db import session_scope
from pawdex.core.models import Image, Job, Prediction
from tests.factories import jpeg_bytes, make_zip


def _job(session, job_id: str) -> Job:
    return session.get(Job, job_id)


def test_redelivered_classify_and_ingest_change_nothing(eager_client, embedded_settings, tmp_path):
    from pawdex.worker.classify import classify_images
    from pawdex.worker.ingest import ingest_job

    archive = make_zip(tmp_path / "a.zip", {f"{i}.jpg": jpeg_bytes(seed=200 + i) for i in range(6)})
    with archive.open("rb") as fh:
        job_id = eager_client.post("/v1/archives", files={"file": ("a.zip", fh)}).json()["job_id"]

    with session_scope(embedded_settings) as s:
        before = (_job(s, job_id).done, _job(s, job_id).total, _job(s, job_id).status)
        ids = list(s.scalars(select(Image.id)))
    assert before == (6, 6, "succeeded")

    classify_images(job_id, ids, embedded_settings)  # as if the broker redelivered it
    ingest_job(job_id, embedded_settings)
    with session_scope(embedded_settings) as s:
        job = _job(s, job_id)
        assert (job.done, job.total, job.failed, job.duplicates, job.status) == (
            6,
            6,
            0,
            0,
            "succeeded",
        )
        assert s.scalar(select(func.count()).select_from(Prediction)) == 6


def test_ingest_resumes_from_the_committed_position(eager_client, embedded_settings, tmp_path):
    """A worker killed mid-ingest: the redelivered task skips what was committed."""
    from pawdex.core.models import JobStatus
    from pawdex.worker.ingest import ingest_job

    archive = make_zip(
        tmp_path / "b.zip", {f"{i}.jpg": jpeg_bytes(seed=300 + i) for i in range(10)}
    )
    from pawdex.core.models import JobKind
    from pawdex.core.uploads import IncomingFile, submit

    with archive.open("rb") as fh:
        job = submit(JobKind.archive, [IncomingFile("b.zip", fh)], embedded_settings, enqueue=False)
    # Simulate a first delivery that took the lease, committed 4 entries (one batch) and died.
    from pawdex.core.jobs import take_ingest_lease
    from pawdex.worker.ingest import Delivery, _commit_batch, job_entries

    with session_scope(embedded_settings) as s:
        row = take_ingest_lease(s, job.id, "first-delivery", timeout=300)
        row.status = JobStatus.running
        row.started_at = row.heartbeat_at
        entries = list(job_entries(row, embedded_settings))[:4]
    _commit_batch(Delivery.of(job.id, "first-delivery", embedded_settings), entries, 0)

    ingest_job(job.id, embedded_settings)  # its heartbeat is fresh: it may still be alive
    with session_scope(embedded_settings) as s:
        assert (_job(s, job.id).ingest_position, _job(s, job.id).total) == (4, 4)
    with session_scope(embedded_settings) as s:  # ... until it falls silent for too long
        _job(s, job.id).heartbeat_at -= timedelta(seconds=301)

    ingest_job(job.id, embedded_settings)
    with session_scope(embedded_settings) as s:
        row = _job(s, job.id)
        assert (row.total, row.done, row.duplicates, row.failed, row.status) == (
            10,
            10,
            0,
            0,
            "succeeded",
        )
        assert s.scalar(select(func.count()).select_from(Prediction)) == 10


def _ingested_job(settings, photos: dict[str, bytes]) -> tuple[str, list[int]]:
    """Ingest without running classification (the filesystem broker just keeps the tasks)."""
    import io

    from pawdex.core.models import JobKind
    from pawdex.core.uploads import IncomingFile, submit
    from pawdex.worker.ingest import ingest_job

    files = [IncomingFile(name, io.BytesIO(data)) for name, data in photos.items()]
    job = submit(JobKind.images, files, settings, enqueue=False)
    ingest_job(job.id, settings)
    with session_scope(settings) as s:
        return job.id, list(s.scalars(select(Image.id).order_by(Image.id)))


def test_a_stored_photo_that_cannot_be_read_is_a_file_error(embedded_settings, served_model):
    from pawdex.core.storage import LocalStorage
    from pawdex.worker.classify import classify_images

    job_id, ids = _ingested_job(
        embedded_settings, {"a.jpg": jpeg_bytes(seed=400), "b.jpg": jpeg_bytes(seed=401)}
    )
    with session_scope(embedded_settings) as s:
        assert _job(s, job_id).status == "running"
        image = s.get(Image, ids[0])
        damaged = [image.stored_path, image.thumbnail_path]  # a small photo is read from either
    for key in damaged:
        LocalStorage(embedded_settings.storage_dir).path(key).write_bytes(b"disk corruption")

    classify_images(job_id, ids, embedded_settings)
    classify_images(job_id, ids, embedded_settings)  # redelivered: nothing counted twice
    with session_scope(embedded_settings) as s:
        job = _job(s, job_id)
        assert (job.status, job.done, job.failed) == ("partial", 1, 1)
        assert [e.name for e in job.errors] == ["a.jpg"]
        assert "cannot read the stored photo" in job.errors[0].error


def test_a_batch_that_cannot_be_classified_still_ends_its_job(embedded_settings):
    from pawdex.worker.classify import give_up

    job_id, ids = _ingested_job(
        embedded_settings, {"c.jpg": jpeg_bytes(seed=402), "d.jpg": jpeg_bytes(seed=403)}
    )
    give_up(job_id, ids, "classification failed: RuntimeError('out of memory')", embedded_settings)
    give_up(job_id, ids, "classification failed again", embedded_settings)
    with session_scope(embedded_settings) as s:
        job = _job(s, job_id)
        assert (job.status, job.done, job.failed, job.total) == ("failed", 0, 2, 2)
        assert {e.name for e in job.errors} == {"c.jpg", "d.jpg"}


def test_model_input_is_the_thumbnail_when_it_covers_the_model_resize(tmp_path):
    """One decode per photo: the worker reads the ingest thumbnail, not the original, when
    it covers the model's resize or is the whole photo."""
    import io
    from types import SimpleNamespace

    from PIL import Image as PILImage

    from pawdex.core.imaging import make_thumbnail
    from pawdex.core.storage import LocalStorage
    from pawdex.worker.classify import model_input

    storage = LocalStorage(tmp_path)
    original = jpeg_bytes(width=1600, height=1200, seed=500)
    big = make_thumbnail(PILImage.open(io.BytesIO(original)).convert("RGB"), 256)
    storage.put("thumbs/big.jpg", big)
    storage.put("images/broken.jpg", b"the original is never read")
    row = SimpleNamespace(
        thumbnail_path="thumbs/big.jpg", stored_path="images/broken.jpg", width=1600, height=1200
    )
    assert model_input(row, storage, resize_size=256).size == (341, 256)

    tiny = jpeg_bytes(width=200, height=150, seed=501)  # smaller than the model's input
    storage.put("thumbs/tiny.jpg", make_thumbnail(PILImage.open(io.BytesIO(tiny)), 256))
    row = SimpleNamespace(
        thumbnail_path="thumbs/tiny.jpg", stored_path="images/broken.jpg", width=200, height=150
    )
    assert model_input(row, storage, resize_size=256).size == (200, 150)  # the whole photo

    small = make_thumbnail(PILImage.open(io.BytesIO(original)).convert("RGB"), 128)
    storage.put("thumbs/small.jpg", small)
    storage.put("images/original.jpg", original)
    row = SimpleNamespace(
        thumbnail_path="thumbs/small.jpg", stored_path="images/original.jpg", width=1600,
        height=1200,
    )  # fmt: skip
    assert min(model_input(row, storage, resize_size=256).size) >= 256  # from the original


def test_classify_reads_thumbnails_and_never_opens_an_original(tmp_path, monkeypatch, classifier):
    """Thumbnails are made at least as big as the served model's resize (read from its
    registered version), whatever ``thumbnail_size`` says: each photo is decoded once, at
    ingest, and the inference worker reads only thumbnails."""
    from PIL import Image as PILImage

    from pawdex.core.storage import LocalStorage
    from pawdex.worker import classify
    from pawdex.worker.model_cache import preload
    from tests.conftest import _eager_client, embedded_settings_at

    def no_original(*args, **kwargs):
        raise AssertionError("the inference worker opened an original")

    monkeypatch.setattr(classify, "decode_for_model", no_original)
    with embedded_settings_at(monkeypatch, tmp_path / "var", PAWDEX_THUMBNAIL_SIZE="64") as s:
        preload(s)
        with _eager_client(s) as client, session_scope(s) as session:
            files = [("file", (f"{i}.jpg", jpeg_bytes(seed=700 + i, width=640, height=480)))
                     for i in range(3)]  # fmt: skip
            job_id = client.post("/v1/images", files=files).json()["job_id"]
            job = _job(session, job_id)
            thumbs = session.scalars(select(Image.thumbnail_path)).all()
        storage = LocalStorage(s.storage_dir)
        sizes = [PILImage.open(storage.path(t)).size for t in thumbs]
    assert (job.status, job.done, job.failed) == ("succeeded", 3, 0)
    assert all(min(size) == classifier.preset.resize_size for size in sizes), sizes


class _WaitingModel:
    """The served model in chunks of two, whose first forward (chunk 1) begins, then waits
    until the decoder has started on a photo of chunk 2."""

    forward_batch = 2

    def __init__(self, model, forward_began, next_decode_began) -> None:
        self.model, self.preset = model, model.preset
        self.forward_began, self.next_decode_began = forward_began, next_decode_began
        self.chunks: list[int] = []

    def prepare(self, img):
        return self.model.prepare(img)

    def predict_prepared(self, crops):
        self.chunks.append(len(crops))
        if len(self.chunks) == 1:
            self.forward_began.set()
            assert self.next_decode_began.wait(60), "chunk 2 was not decoding during chunk 1"
        return self.model.predict_prepared(crops)


def test_the_forward_of_a_chunk_overlaps_the_decoding_of_the_next(
    embedded_settings, served_model, monkeypatch
):
    """The forward of chunk 1 waits for the decoding of chunk 2 to begin, and that decoding
    waits for the forward of chunk 1 to begin: both at once, or the batch fails. A photo that
    cannot be read is its own file error, and the predictions are those of one forward over
    every readable photo."""
    import threading

    from pawdex.core.storage import LocalStorage
    from pawdex.worker import classify
    from pawdex.worker.model_cache import active_classifier

    job_id, ids = _ingested_job(
        embedded_settings, {f"{i}.jpg": jpeg_bytes(seed=800 + i) for i in range(6)}
    )
    storage = LocalStorage(embedded_settings.storage_dir)
    with session_scope(embedded_settings) as s:
        broken = s.get(Image, ids[1])
        for key in (broken.stored_path, broken.thumbnail_path):
            storage.path(key).write_bytes(b"disk corruption")
        rows = [s.get(Image, image_id) for image_id in ids]
        resize = served_model.preset.resize_size
        readable = [row for row in rows if row.id != ids[1]]
        crops = [served_model.prepare(classify.model_input(r, storage, resize)) for r in readable]
        expected = {
            row.id: (p.species, p.breed, p.confidence)
            for row, p in zip(readable, served_model.predict_prepared(crops), strict=True)
        }
    forward_began, next_decode_began = threading.Event(), threading.Event()
    second_chunk = {ids[3], ids[4]}  # readable photos 3 and 4: ids[1] is the broken one
    real_model_input = classify.model_input

    def model_input(row, storage, resize_size):
        if row.id in second_chunk:
            next_decode_began.set()
            assert forward_began.wait(60), "chunk 2 was decoded before chunk 1's forward began"
        return real_model_input(row, storage, resize_size)

    model = _WaitingModel(served_model, forward_began, next_decode_began)
    _, version_id = active_classifier(embedded_settings)
    monkeypatch.setattr(classify, "active_classifier", lambda *_: (model, version_id))
    monkeypatch.setattr(classify, "model_input", model_input)

    classify.classify_images(job_id, ids, embedded_settings)
    assert model.chunks == [2, 2, 1]
    with session_scope(embedded_settings) as s:
        job = _job(s, job_id)
        assert (job.status, job.done, job.failed) == ("partial", 5, 1)
        assert "cannot read the stored photo" in job.errors[0].error
        written = s.scalars(select(Prediction)).all()
        got = {p.image_id: (p.species, p.breed, p.confidence) for p in written}
    assert got.keys() == expected.keys()
    for image_id, (species, breed, confidence) in expected.items():
        assert got[image_id][:2] == (species, breed)
        assert got[image_id][2] == pytest.approx(confidence, abs=1e-5)
