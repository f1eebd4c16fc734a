"""ORM models (SQLAlchemy 2.0, typed). Every change here needs an Alembic revision."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC on every backend (SQLite stores naive values and returns them)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def new_job_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    pass


class JobStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    partial = "partial"
    failed = "failed"
    cancelled = "cancelled"


FINISHED_STATUSES = frozenset(
    {JobStatus.succeeded, JobStatus.partial, JobStatus.failed, JobStatus.cancelled}
)


class JobKind(enum.StrEnum):
    images = "images"
    archive = "archive"
    reindex = "reindex"  # stored photos classified again by the active model
    scan = "scan"  # a library's folder read in place: new, changed and removed files


class JobOrigin(enum.StrEnum):
    """Where a job came from, as people tell jobs apart."""

    upload = "upload"  # the web UI or the HTTP API
    cli = "cli"  # pawdex index
    admin = "admin"  # a reindex asked by an admin
    library = "library"  # a library scan


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_job_id)
    kind: Mapped[JobKind] = mapped_column(Enum(JobKind, native_enum=False, length=16))
    status: Mapped[JobStatus] = mapped_column(
        Enum(JobStatus, native_enum=False, length=16), default=JobStatus.queued, index=True
    )
    # What was uploaded: spool paths relative to the spool dir, with their client names.
    source: Mapped[list[dict]] = mapped_column(JSON, default=list)
    # How people recognise it: the archive's or folder's name unless one was given.
    name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    origin: Mapped[JobOrigin] = mapped_column(
        Enum(JobOrigin, native_enum=False, length=16), default=JobOrigin.upload,
        server_default=JobOrigin.upload.value,
    )  # fmt: skip
    created_by: Mapped[str | None] = mapped_column(String(128))  # the key's name
    # The key itself: what an archivist may delete is what their own key uploaded.
    created_by_key_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    # How its new photos are grouped into animals (``core.animals.Grouping``).
    grouping: Mapped[str] = mapped_column(String(300), default="photo", server_default="photo")
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    # System clutter (.DS_Store, __MACOSX/, Thumbs.db…): neither a photo nor a failure.
    skipped: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Entries of the upload already ingested (committed), so a redelivered ingest resumes.
    ingest_position: Mapped[int] = mapped_column(Integer, default=0)
    ingest_done: Mapped[bool] = mapped_column(Boolean, default=False)
    # The ingest lease: one delivery of ``ingest`` at a time works on a job. Its holder renews
    # the heartbeat with every batch; a lease whose heartbeat is stale belongs to a worker that
    # vanished, and the job is resumed (see core.jobs). Attempts count the deliveries since
    # the last committed batch: a job that keeps killing its worker ends, never loops.
    ingest_lease: Mapped[str | None] = mapped_column(String(32))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ingest_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When the counters last moved (a batch ingested or classified) or work was re-sent: a
    # running job silent for ``stall_timeout`` with an empty queue has lost its messages.
    progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message: Mapped[str | None] = mapped_column(Text)
    deletion_id: Mapped[int | None] = mapped_column(ForeignKey("deletions.id"))  # in the trash
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    errors: Mapped[list[JobError]] = relationship(
        back_populates="job", order_by="JobError.id", cascade="all, delete-orphan"
    )

    @property
    def accounted(self) -> int:
        """Entries with an outcome: classified, failed, duplicate or skipped."""
        return self.done + self.failed + self.duplicates + self.skipped


class JobError(Base):
    """One file of a job that could not be indexed, with a message for the archivist."""

    __tablename__ = "job_errors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text)
    error: Mapped[str] = mapped_column(Text)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    job: Mapped[Job] = relationship(back_populates="errors")

    # A job's errors in order, a page at a time (and the first few per job), from the index;
    # the dashboard's "errors in the last hour" from the newest end of created_at's.
    __table_args__ = (
        Index("ix_job_errors_job_id_id", "job_id", "id"),
        Index("ix_job_errors_created_at", "created_at"),
    )


class DeletionKind(enum.StrEnum):
    photos = "photos"
    animal = "animal"
    job = "job"
    library = "library"


class Deletion(Base):
    """One deletion, as people asked for it (photos, an animal, a job, a library): what went
    to the trash, who sent it there and when, and what became of it. Restorable until
    ``purge_after``; then purged (rows and files). The record itself is never deleted."""

    __tablename__ = "deletions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[DeletionKind] = mapped_column(Enum(DeletionKind, native_enum=False, length=16))
    target: Mapped[str | None] = mapped_column(String(64))  # the animal's, job's or library's id
    name: Mapped[str] = mapped_column(String(300))  # what people would call it
    photos: Mapped[int] = mapped_column(Integer, default=0)
    deleted_by: Mapped[str] = mapped_column(String(128))  # the key's name
    deleted_by_key_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    deleted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    purge_after: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    restored_by: Mapped[str | None] = mapped_column(String(128))
    restored_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    purged_by: Mapped[str | None] = mapped_column(String(128))
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def in_trash(self) -> bool:
        return self.restored_at is None and self.purged_at is None


class Animal(Base):
    """A shelter animal: its photos (``images.animal_id``), the shelter's own id for it (often
    in the folder or file names: ``A123456/``), a name. Photos are grouped into animals at
    ingest by the job's grouping rule (``core.animals``); people merge, split and move them."""

    __tablename__ = "animals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    intake_date: Mapped[date | None] = mapped_column(Date, index=True)  # into the shelter
    deletion_id: Mapped[int | None] = mapped_column(ForeignKey("deletions.id"))  # in the trash
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Image(Base):
    """A stored photo, content-addressed: one row per distinct sha256."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    filename: Mapped[str] = mapped_column(Text, index=True)  # original base name
    path: Mapped[str] = mapped_column(Text)  # sanitised path inside the upload
    format: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    # Relative to the storage dir; None for a photo read in place from a library (its
    # original stays in the library's folder: ``core.libraries.original_path``).
    stored_path: Mapped[str | None] = mapped_column(Text)
    thumbnail_path: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    animal_id: Mapped[int | None] = mapped_column(
        ForeignKey("animals.id", ondelete="SET NULL"), index=True
    )
    # In the trash (``core.trash``): its predictions wait in ``trashed_predictions``, so no
    # catalogue query sees it, until it is restored or purged.
    deletion_id: Mapped[int | None] = mapped_column(ForeignKey("deletions.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # text_pattern_ops: PostgreSQL uses the index for ``path LIKE 'prefix%'`` in any locale.
    __table_args__ = (Index("ix_images_path", "path", postgresql_ops={"path": "text_pattern_ops"}),)


class JobImage(Base):
    """Every photo a job accepted, new or duplicate: what the job is made of."""

    __tablename__ = "job_images"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    name: Mapped[str] = mapped_column(Text)
    duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    # Deliveries of ``classify`` that took this photo in hand without finishing (the worker
    # died): past ``max_attempts`` the photo is a poison file and is skipped.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class JobDuplicate(Base):
    """A file of a job whose bytes were already in the archive: which photo it repeats
    (stored once, under the path it first came with)."""

    __tablename__ = "job_duplicates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(Text)  # the file's path in this upload
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))

    image: Mapped[Image] = relationship()


class Library(Base):
    """A folder on the server (a mounted NAS share) indexed in place: its photos are read
    where they are, only thumbnails are stored. Its root lies inside one of the roots the
    operator allowed (``PAWDEX_LIBRARY_ROOTS``)."""

    __tablename__ = "libraries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    root: Mapped[str] = mapped_column(Text, unique=True)  # absolute, symbolic links resolved
    created_by: Mapped[str | None] = mapped_column(String(128))
    grouping: Mapped[str] = mapped_column(String(300), default="photo", server_default="photo")
    deletion_id: Mapped[int | None] = mapped_column(ForeignKey("deletions.id"))  # in the trash
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))

    last_job: Mapped[Job | None] = relationship()


class LibraryFile(Base):
    """A file of a library as the last scan saw it: a re-scan reads only files whose size or
    modification time changed, and drops the photos of files that went away."""

    __tablename__ = "library_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("libraries.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)  # POSIX, relative to the library's root
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    # None: the file is not a photo pawdex can read (its error is in the scan's job).
    image_id: Mapped[int | None] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), index=True
    )
    seen_job_id: Mapped[str | None] = mapped_column(String(32))  # the last scan that saw it

    __table_args__ = (UniqueConstraint("library_id", "path", name="uq_library_files_path"),)


class ModelVersion(Base):
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def _catalog_indexes() -> list[Index]:
    """Per model version: by confidence and by date, alone, within a breed, within a species
    (as the catalogue shows them), and over labelled photos only (a small partial index:
    ``label_source=human`` would otherwise walk every unlabelled photo). The other filtered
    columns ride along (INCLUDE) so a page's rows are found from the index alone: filtering a
    walk by date on the confidence read from the table cost 100 ms at 1M rows for a species
    whose photos were rarely that confident."""
    indexes = []
    for sort, short in (("confidence", "conf"), ("created_at", "created")):
        include = ["confidence", "labelled"] if sort == "created_at" else ["labelled"]
        # The review queue leaves out confident not-dogs; dates filter the default sort.
        walked = ["species", "species_confidence", "created_at"] if sort == "confidence" else []
        indexes.append(
            Index(f"ix_predictions_model_{short}", "model_version_id", sort, "image_id",
                  postgresql_include=include + walked)
        )  # fmt: skip
        for column, name in (("catalog_breed", "breed"), ("catalog_species", "species")):
            indexes.append(
                Index(f"ix_predictions_model_{name}_{short}", "model_version_id", column, sort,
                      "image_id", postgresql_include=include)
            )  # fmt: skip
        labelled = text("labelled")
        indexes.append(
            Index(f"ix_predictions_labelled_{short}", "model_version_id", sort, "image_id",
                  postgresql_where=labelled, sqlite_where=labelled,
                  postgresql_include=["catalog_species", "catalog_breed", *include[:-1]])
        )  # fmt: skip
    return indexes


class Prediction(Base):
    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    species: Mapped[str] = mapped_column(String(16))
    breed: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float] = mapped_column(Float)
    species_confidence: Mapped[float] = mapped_column(Float)
    top_k: Mapped[list[dict]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # What the catalogue shows and filters on: the photo's current human label when a person
    # decided, else the model's own species and breed (kept in sync by
    # ``core.labels.show_labels``). With them on this row every list is one index range scan;
    # joining labels to filter took 270 ms at 1M rows for a breed's labelled photos.
    catalog_species: Mapped[str] = mapped_column(String(16))
    catalog_breed: Mapped[str | None] = mapped_column(String(64))
    labelled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    image: Mapped[Image] = relationship()
    model_version: Mapped[ModelVersion] = relationship()

    __table_args__ = (
        UniqueConstraint("image_id", "model_version_id", name="uq_predictions_image_model"),
        # Each query path of /v1/photos is one index range scan, already in the order of
        # its keyset pagination (sort key, then image_id), by confidence and newest first.
        *_catalog_indexes(),
    )


class BreedCandidate(Base):
    """One breed of a prediction's top-k with its probability: "might be a Labrador" is one
    range scan of (model version, breed, probability). Written by database triggers on
    ``predictions`` (migration 0016), so every writer keeps it; gone with its prediction."""

    __tablename__ = "breed_candidates"

    prediction_id: Mapped[int] = mapped_column(
        ForeignKey("predictions.id", ondelete="CASCADE"), primary_key=True
    )
    breed: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_version_id: Mapped[int] = mapped_column(Integer)
    image_id: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_breed_candidates_model_breed_conf", "model_version_id", "breed", "confidence",
              "image_id", postgresql_include=["prediction_id"]),
    )  # fmt: skip


class TrashedPrediction(Base):
    """A prediction of a photo in the trash, set aside unchanged: the catalogue's indexes
    never hold a deleted photo (no filter on every query at a million rows), and a restore
    puts the row back as it was."""

    __tablename__ = "trashed_predictions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    model_version_id: Mapped[int] = mapped_column(Integer)
    # Unset when the job is purged, as a live prediction's is: the photo still restores.
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    species: Mapped[str] = mapped_column(String(16))
    breed: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float] = mapped_column(Float)
    species_confidence: Mapped[float] = mapped_column(Float)
    top_k: Mapped[list[dict]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    catalog_species: Mapped[str] = mapped_column(String(16))
    catalog_breed: Mapped[str | None] = mapped_column(String(64))
    labelled: Mapped[bool] = mapped_column(Boolean)


class BreedTally(Base):
    """Photos per breed as the catalogue shows them, per model version: ``GET /v1/breeds``
    without counting a million predictions (200 ms at 1M rows). Database triggers on
    ``predictions`` append every change to ``breed_tally_deltas`` (no row contended by
    concurrent writers); the sweeper folds them in here; readers add both."""

    __tablename__ = "breed_tallies"

    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    breed: Mapped[str] = mapped_column(String(64), primary_key=True)
    photos: Mapped[int] = mapped_column(Integer)


class BreedTallyDelta(Base):
    __tablename__ = "breed_tally_deltas"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_version_id: Mapped[int] = mapped_column(Integer)
    breed: Mapped[str] = mapped_column(String(64))
    photos: Mapped[int] = mapped_column(Integer)


class Role(enum.StrEnum):
    viewer = "viewer"  # read the index
    archivist = "archivist"  # + upload, correct
    admin = "admin"  # + jobs, models, keys

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


class ApiKey(Base):
    """An API key: only its SHA-256 is stored (keys are 256-bit random, so a fast hash is
    safe: nothing to brute-force), with its first characters to tell keys apart."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[Role] = mapped_column(Enum(Role, native_enum=False, length=16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LabelSource(enum.StrEnum):
    model = "model"
    human = "human"


class Label(Base):
    """A person's verdict on a photo (confirmed, corrected, or "not a dog"), kept beside the
    model's predictions, never over them. Every verdict is kept; the newest one of a photo
    is ``current`` and is what queries show (``label_source`` = human)."""

    __tablename__ = "labels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    species: Mapped[str] = mapped_column(String(16))
    # The primary breed (``breeds[0]``), kept as a column because the catalogue filters and
    # tallies on it: a "Labrador Retriever mix" is found under labrador_retriever.
    breed: Mapped[str | None] = mapped_column(String(64))
    # Up to three named parents, primary first; ``mix`` with no parents is "mixed breed",
    # a dog with neither is "unknown".
    breeds: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    mix: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # What the model said when the person decided (the active version's prediction).
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL")
    )
    model_breed: Mapped[str | None] = mapped_column(String(64))
    key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    key_name: Mapped[str] = mapped_column(String(128))
    current: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when someone withdrew the label (then no longer current); the row stays as history.
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    withdrawn_by: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (
        Index("ix_labels_image_current", "image_id", "current"),
        Index("ix_labels_current_breed", "current", "breed"),
    )


class WorkerPresence(Base):
    """What each Celery worker reports about itself every few seconds: the admin dashboard's
    "workers online" and the inference batch figures of ``/metrics``."""

    __tablename__ = "workers"

    hostname: Mapped[str] = mapped_column(String(255), primary_key=True)
    queues: Mapped[list[str]] = mapped_column(JSON, default=list)
    device: Mapped[str | None] = mapped_column(String(32))
    runtime: Mapped[str | None] = mapped_column(String(16))
    model_version: Mapped[str | None] = mapped_column(String(128))
    pid: Mapped[int] = mapped_column(Integer)
    current_task: Mapped[str | None] = mapped_column(Text)
    batches: Mapped[int] = mapped_column(Integer, default=0)
    photos: Mapped[int] = mapped_column(Integer, default=0)
    batch_seconds_total: Mapped[float] = mapped_column(Float, default=0.0)
    last_batch_seconds: Mapped[float | None] = mapped_column(Float)
    # The machine (PAWDEX_WORKER_HOST, else its host name) and the address it reaches the
    # broker from: the dashboard groups workers per host (migration 0018).
    host: Mapped[str | None] = mapped_column(String(255))
    address: Mapped[str | None] = mapped_column(String(64))
    # The longest classify delivery, start to end: checked against the broker's visibility
    # timeout (a task still running past it is delivered again elsewhere).
    longest_batch_seconds: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
