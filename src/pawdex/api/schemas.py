"""Request and response bodies of the v1 HTTP contract."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, model_validator

from pawdex.core.catalog import PhotoRecord
from pawdex.core.cursors import MAX_ROW_ID
from pawdex.core.jobs import NAME_MAX, job_rate
from pawdex.core.labels import InvalidLabel
from pawdex.core.labels import validate as validate_label
from pawdex.core.models import (
    ApiKey,
    Job,
    JobKind,
    JobOrigin,
    JobStatus,
    LabelSource,
    Library,
    Role,
)
from pawdex.taxonomy import BREED_NAMES, SPECIES

if TYPE_CHECKING:
    from pawdex.core.monitoring import Overview


NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL: refused as invalid input (422)
GROUPING_DOC = (
    "How the photos become animals: `photo` (one photo, one animal), `folder` (the "
    "photo's folder is the animal's id: `2021/A1001/rex.jpg`), a path template with "
    "`{animal_id}` (`{year}/{animal_id}/*`), or `re:` and an expression with a group "
    "`(?P<animal_id>…)` (`re:(?P<animal_id>A\\d{6})`). Photos with the same id, in any job, "
    "are one animal."
)


class ErrorOut(BaseModel):
    """Every error but a request validation error (422) is ``{"detail": "..."}``."""

    detail: str = Field(examples=["job 3f2b8c1e9a7d4e1f8b6c5d4e3f2a1b0c not found"])


_ERRORS: dict[int, str] = {
    400: (
        "Bad input: an invalid cursor, an unknown model version, a NUL byte in the URL, a "
        "folder that cannot be a library."
    ),
    401: "No API key, or an invalid or revoked one.",
    403: "The key's role may not do this.",
    404: "Not found.",
    409: "The job is not in a state that allows this.",
    422: "The request's parameters or body are not valid.",
    413: "The upload is larger than `PAWDEX_MAX_UPLOAD_BYTES`.",
    415: "An upload that is not a zip or tar archive (whatever its name says).",
    429: (
        "The key's rate limit is reached (`PAWDEX_RATE_LIMIT_PER_MINUTE`), or this address "
        "made too many failed authentications."
    ),
    503: (
        "The database or the job queue is unavailable, or every database connection is busy: "
        "retry after `Retry-After` seconds (an upload refused so is recorded as a failed job)."
    ),
}
_RETRY_AFTER = {
    429: "Seconds until the key (or the address) may send again.",
    503: "Seconds after which to try again.",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error status codes (body ``ErrorOut``)."""
    documented: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        documented[code] = {"model": ErrorOut, "description": _ERRORS[code]}
        if code in _RETRY_AFTER:
            documented[code]["headers"] = {
                "Retry-After": {
                    "description": _RETRY_AFTER[code],
                    "schema": {"type": "integer", "minimum": 1},
                }
            }
    return documented


class Readiness(BaseModel):
    status: str = Field(examples=["ok"], description="ok, or unavailable (503)")
    database: str = Field(examples=["ok"], description="ok, or the error's type")
    broker: str = Field(examples=["ok"], description="ok, or the error's type")


class JobAccepted(BaseModel):
    job_id: str = Field(examples=["3f2b8c1e9a7d4e1f8b6c5d4e3f2a1b0c"])
    name: str = Field(examples=["kennel-2021.zip"])
    status: JobStatus

    @classmethod
    def of(cls, job: Job) -> JobAccepted:
        return cls(job_id=job.id, name=job.name, status=job.status)


class FileError(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str = Field(description="Path of the file inside the upload.", examples=["2019/rex.jpg"])
    error: str = Field(examples=["not an image: the bytes are plain text"])


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str = Field(
        description="What people call it: the upload's or folder's name, or one given."
    )
    kind: JobKind
    origin: JobOrigin = Field(
        description="Where it came from: upload (web UI, API), cli, admin, library (a scan)."
    )
    created_by: str | None = Field(description="The name of the key that started it.")
    status: JobStatus
    total: int = Field(description="Files seen so far (final once ingest has finished).")
    done: int = Field(description="Photos classified.")
    failed: int = Field(description="Files that could not be indexed (see errors).")
    duplicates: int = Field(description="Photos already in the archive (same bytes).")
    skipped: int = Field(
        description="System files skipped unread (.DS_Store, Thumbs.db, __MACOSX/, ._*): "
        "neither photos nor failures."
    )
    message: str | None = None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    errors: list[FileError]
    photos_per_second: float | None = Field(
        None, description="Photos handled per second since the job started."
    )
    eta_seconds: float | None = Field(
        None, description="Seconds left at that pace (null until the upload's size is known)."
    )

    @classmethod
    def of(cls, job: Job) -> JobOut:
        out = cls.model_validate(job)
        rate, eta = job_rate(job)
        out.photos_per_second = round(rate, 2) if rate is not None else None
        out.eta_seconds = round(eta, 1) if eta is not None else None
        return out


class DuplicateOut(BaseModel):
    name: str = Field(description="The file's path in this upload.", examples=["2021/rex (1).jpg"])
    image_id: int = Field(description="The photo it repeats (`GET /v1/photos/{id}`).")
    path: str = Field(description="That photo's path in the upload it first came with.")
    first_job_id: str | None = Field(description="The job that first brought the photo.")


class DuplicatePage(BaseModel):
    items: list[DuplicateOut]
    next_cursor: str | None


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class TopK(BaseModel):
    breed: str
    confidence: float


class Photo(BaseModel):
    id: int = Field(description="The photo's id.")
    sha256: str
    filename: str
    path: str = Field(description="Sanitised path inside the upload (folders kept).")
    species: str = Field(
        examples=["dog"], description="dog, cat or other: a person's label if there is one"
    )
    breed: str | None = Field(
        examples=["golden_retriever"],
        description="null unless a dog: a person's label if there is one, else the model's",
    )
    label_source: LabelSource = Field(description="human when a person labelled the photo")
    model_species: str = Field(description="What the model says, whatever a person said.")
    model_breed: str | None
    labeled_by: str | None = Field(None, description="Name of the key that labelled it.")
    labeled_at: datetime | None = None
    confidence: float = Field(description="The model's probability of its breed (of 120).")
    species_confidence: float
    top_k: list[TopK]
    model_version: str
    job_id: str | None
    width: int
    height: int
    image_url: str
    thumbnail_url: str
    indexed_at: datetime

    @classmethod
    def of(cls, record: PhotoRecord) -> Photo:
        img, pred = record.image, record.prediction
        return cls(
            id=img.id,
            sha256=img.sha256,
            filename=img.filename,
            path=img.path,
            species=record.species,
            breed=record.breed,
            label_source=record.label_source,
            model_species=pred.species,
            model_breed=pred.breed,
            labeled_by=record.label.key_name if record.label else None,
            labeled_at=record.label.created_at if record.label else None,
            confidence=pred.confidence,
            species_confidence=pred.species_confidence,
            top_k=[TopK(**item) for item in pred.top_k],
            model_version=record.model_version,
            job_id=pred.job_id,
            width=img.width,
            height=img.height,
            image_url=f"/v1/images/{img.id}/file",
            thumbnail_url=f"/v1/images/{img.id}/thumbnail",
            indexed_at=pred.created_at,
        )


class PhotoPage(BaseModel):
    items: list[Photo]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


RowIdIn = Annotated[int, Field(ge=1, le=MAX_ROW_ID)]


class AnimalPhoto(BaseModel):
    id: int = Field(description="The photo (`GET /v1/photos/{id}`).")
    path: str
    thumbnail_url: str
    breed: str | None = Field(description="The model's top breed for this photo alone.")
    confidence: float | None
    agrees: bool = Field(description="Its own top breed is the animal's breed.")


class AnimalOut(BaseModel):
    id: int
    external_id: str | None = Field(description="The shelter's id for it (e.g. A123456).")
    name: str | None
    photo_count: int
    breed: str | None = Field(
        description="From all its photos: the mean of their probabilities (the model's top 5 "
        "per photo); null when no photo is classified yet or none looks like a dog."
    )
    confidence: float | None = Field(description="The pooled probability of that breed.")
    top_k: list[TopK] = Field(description="The pooled top 5.")
    cover_url: str | None = Field(description="A thumbnail of its first photo.")
    photos: list[AnimalPhoto] | None = Field(
        None, description="Its photos (one animal's page only)."
    )

    @classmethod
    def of(cls, animal, count: int, pooled, cover: int | None, photos=None) -> AnimalOut:
        return cls(
            id=animal.id, external_id=animal.external_id, name=animal.name, photo_count=count,
            breed=pooled.breed if pooled else None,
            confidence=pooled.confidence if pooled and pooled.breed else None,
            top_k=[TopK(**t) for t in pooled.top_k] if pooled else [],
            cover_url=f"/v1/images/{cover}/thumbnail" if cover else None, photos=photos,
        )  # fmt: skip


class AnimalPage(BaseModel):
    items: list[AnimalOut]
    next_cursor: str | None


class AnimalIn(BaseModel):
    external_id: str | None = Field(None, max_length=64, pattern=NO_NUL, description="Empty: none.")
    name: str | None = Field(None, max_length=200, pattern=NO_NUL, description="Empty: none.")


class NewAnimalIn(AnimalIn):
    photo_ids: list[RowIdIn] = Field(
        min_length=1, max_length=1000, description="Photos taken from their animals into it."
    )


class PhotoIdsIn(BaseModel):
    photo_ids: list[RowIdIn] = Field(min_length=1, max_length=1000)


class MergeIn(BaseModel):
    animal_ids: list[RowIdIn] = Field(
        min_length=1, max_length=1000, description="Animals whose photos join this one."
    )


class BreedCount(BaseModel):
    breed: str
    count: int


class ReviewPage(PhotoPage):
    threshold: float = Field(description="Photos below this model confidence are listed.")


def _label_rule(schema: dict[str, Any]) -> None:
    """What ``core.labels.validate`` enforces, declared: a dog has one of the 120 breeds, a cat
    or anything else has none (schema-valid labels are accepted)."""
    schema["properties"]["species"]["enum"] = list(SPECIES)
    schema["oneOf"] = [
        {
            "properties": {
                "species": {"const": "dog"},
                "breed": {"type": "string", "enum": sorted(BREED_NAMES)},
            },
            "required": ["species", "breed"],
        },
        {
            "properties": {
                "species": {"enum": [s for s in SPECIES if s != "dog"]},
                "breed": {"type": "null"},
            }
        },
    ]


class LabelIn(BaseModel):
    model_config = ConfigDict(json_schema_extra=_label_rule)

    species: str = Field(examples=["dog"], description="dog, cat or other ('not a dog')")
    breed: str | None = Field(
        None, examples=["beagle"], description="A Stanford Dogs name when species is dog"
    )

    @model_validator(mode="after")
    def _known(self) -> LabelIn:
        try:
            validate_label(self.species, self.breed)
        except InvalidLabel as exc:
            raise ValueError(str(exc)) from None
        return self


class KeyOut(BaseModel):
    name: str
    role: Role
    prefix: str

    @classmethod
    def of(cls, key: ApiKey) -> KeyOut:
        return cls(name=key.name, role=key.role, prefix=key.prefix)


class QueueOut(BaseModel):
    name: str
    depth: int | None


class WorkerOut(BaseModel):
    hostname: str
    queues: list[str]
    device: str | None
    runtime: str | None
    model_version: str | None
    current_task: str | None
    last_seen: datetime
    online: bool
    batches: int
    photos: int
    last_batch_seconds: float | None


class MinuteOut(BaseModel):
    minute: str
    photos: int


class FailureOut(BaseModel):
    job_id: str
    name: str
    error: str
    created_at: datetime


class ModelOut(BaseModel):
    version: str
    name: str


class OverviewOut(BaseModel):
    queues: list[QueueOut]
    workers: list[WorkerOut]
    throughput: list[MinuteOut]
    photos_last_hour: int
    failures_last_hour: int
    jobs_by_status: dict[str, int]
    recent_failures: list[FailureOut]
    active_model: ModelOut | None
    breeds: list[BreedCount]
    flower_url: str | None

    @classmethod
    def of(cls, o: Overview, flower_url: str | None) -> OverviewOut:
        return cls(
            queues=[QueueOut(name=n, depth=d) for n, d in o.queues.items()],
            workers=[
                WorkerOut(
                    hostname=w.hostname,
                    queues=w.queues,
                    device=w.device,
                    runtime=w.runtime,
                    model_version=w.model_version,
                    current_task=w.current_task,
                    last_seen=w.last_seen,
                    online=online,
                    batches=w.batches,
                    photos=w.photos,
                    last_batch_seconds=w.last_batch_seconds,
                )
                for w, online in o.workers
            ],
            throughput=[MinuteOut(minute=m, photos=n) for m, n in o.throughput],
            photos_last_hour=sum(n for _, n in o.throughput),
            failures_last_hour=o.failures_last_hour,
            jobs_by_status=o.jobs_by_status,
            recent_failures=[FailureOut(**vars(f)) for f in o.recent_failures],
            active_model=ModelOut(version=o.active_model[0], name=o.active_model[1])
            if o.active_model
            else None,
            breeds=[BreedCount(breed=b, count=n) for b, n in o.breeds],
            flower_url=flower_url,
        )


class ReindexIn(BaseModel):
    all: StrictBool = False


class LibraryIn(BaseModel):
    path: str = Field(
        min_length=1, max_length=4096, pattern=NO_NUL, examples=["/mnt/nas/photos/kennel"],
        description="The folder's absolute path on the server, inside an allowed root "
        "(PAWDEX_LIBRARY_ROOTS).",
    )  # fmt: skip
    name: str = Field("", max_length=200, pattern=NO_NUL, description="Default: the folder's name.")
    grouping: str = Field("photo", max_length=300, pattern=NO_NUL, description=GROUPING_DOC)


class LibraryOut(BaseModel):
    id: int
    name: str
    root: str = Field(description="The folder on the server, symbolic links resolved.")
    created_by: str | None
    created_at: datetime
    files: int = Field(description="Files the last scan recorded (photos or not).")
    photos: int = Field(
        description="Of those, files that are photos (a photo kept twice counts twice)."
    )
    last_job: JobOut | None = Field(description="The latest scan.")

    @classmethod
    def of(cls, library: Library, files: int, photos: int) -> LibraryOut:
        last = JobOut.of(library.last_job) if library.last_job is not None else None
        return cls(
            id=library.id, name=library.name, root=library.root,
            created_by=library.created_by, created_at=library.created_at,
            files=files, photos=photos, last_job=last,
        )  # fmt: skip


Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class CheckIn(BaseModel):
    sha256: list[Sha256] = Field(
        max_length=1000, description="SHA-256 digests (lower-case hex) of files to send."
    )


class CheckOut(BaseModel):
    known: list[str] = Field(description="Those already in the archive: no need to send them.")


class ResumableJobIn(BaseModel):
    name: str | None = Field(
        None,
        max_length=NAME_MAX,
        pattern=NO_NUL,
        description="What to call the job (default: the upload's file name).",
        examples=["Intake week 12"],
    )
    origin: Literal["upload", "cli"] = Field(
        "upload", description="Where the upload comes from: `cli` for `pawdex index`."
    )
    grouping: str = Field("photo", max_length=300, pattern=NO_NUL, description=GROUPING_DOC)
