"""Request and response bodies of the v1 HTTP contract."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)

from pawdex.api.deps import IsoDate
from pawdex.core.animal_import import MAX_ROWS as MAX_ANIMAL_ROWS
from pawdex.core.animal_import import UNKNOWN_SHOWN
from pawdex.core.animals import ANIMAL_NAME_MAX, KEY_MAX, AgreedLabel
from pawdex.core.breeds import UnknownBreed, resolve_breed
from pawdex.core.catalog import PhotoRecord
from pawdex.core.cursors import MAX_ROW_ID
from pawdex.core.jobs import ERRORS_SHOWN, NAME_MAX, job_rate
from pawdex.core.labels import (
    MAX_PARENTS,
    InvalidLabel,
    LabelValue,
    model_breed_text,
    parse_label,
    stored_value,
    uncertain_between,
)
from pawdex.core.models import (
    ApiKey,
    Deletion,
    DeletionKind,
    Job,
    JobError,
    JobKind,
    JobOrigin,
    JobStatus,
    LabelSource,
    Library,
    Role,
)
from pawdex.core.monitoring import nears_visibility_timeout
from pawdex.core.settings import DEFAULT_UNCERTAIN_MARGIN
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


class InvalidItem(BaseModel):
    loc: list[str | int] = Field(examples=[["query", "breed"]])
    msg: str = Field(examples=["unknown breed 'labradoodle'; close: Labrador_retriever"])
    type: str = Field(examples=["unknown_breed"])


class InvalidRequestOut(BaseModel):
    """A request validation error (422): FastAPI's shape, one item per invalid part."""

    detail: list[InvalidItem]


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
    """OpenAPI ``responses`` for these error status codes (body ``ErrorOut``; a 422's is
    ``InvalidRequestOut``, as FastAPI answers it)."""
    documented: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        model = InvalidRequestOut if code == 422 else ErrorOut
        documented[code] = {"model": model, "description": _ERRORS[code]}
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
    storage: str = Field(
        examples=["ok"],
        description="ok, or the error's type: the storage folder cannot be written, or the "
        "bucket does not answer",
    )


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
    errors: list[FileError] = Field(
        description=f"The first {ERRORS_SHOWN} files that could not be indexed, in the order "
        "they failed; `failed` says how many there are, `GET /v1/jobs/{id}/errors` lists all."
    )
    photos_per_second: float | None = Field(
        None, description="Photos handled per second since the job started."
    )
    eta_seconds: float | None = Field(
        None, description="Seconds left at that pace (null until the upload's size is known)."
    )

    @classmethod
    def of(cls, job: Job, errors: Sequence[JobError]) -> JobOut:
        """``errors``: the job's first ones (``jobs.first_errors``); never ``job.errors``,
        which would load every error of the job."""
        columns = {name: getattr(job, name) for name in cls.model_fields.keys() - _JOB_FIGURES}
        rate, eta = job_rate(job)
        return cls(
            **columns,
            errors=[FileError.model_validate(e) for e in errors],
            photos_per_second=round(rate, 2) if rate is not None else None,
            eta_seconds=round(eta, 1) if eta is not None else None,
        )


_JOB_FIGURES = {"errors", "photos_per_second", "eta_seconds"}  # JobOut's fields Job lacks


class JobErrorPage(BaseModel):
    items: list[FileError]
    next_cursor: str | None


class DuplicateOut(BaseModel):
    name: str = Field(description="The file's path in this upload.", examples=["2021/rex (1).jpg"])
    image_id: int = Field(description="The photo it repeats (`GET /v1/photos/{id}`).")
    path: str = Field(description="That photo's path in the upload it first came with.")
    first_job_id: str | None = Field(description="The job that first brought the photo.")


class DuplicatePage(BaseModel):
    items: list[DuplicateOut]
    next_cursor: str | None


class Counted(BaseModel):
    """A list's total: counted up to 10,000 (a count never walks a million rows)."""

    total: int = Field(description="How many match, at most 10,000.", examples=[1234])
    total_capped: bool = Field(
        description="More than `total` match (show it as 10,000+).", examples=[False]
    )


class JobPage(Counted):
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
    breeds: list[str] = Field(
        examples=[["Labrador_retriever"]],
        description="A person's label: the parent breeds named (0 to 3, the first is "
        "`breed`); else the model's breed.",
    )
    mix: bool = Field(description="A person said it is a mix.")
    breed_text: str | None = Field(
        examples=["Labrador Retriever mix"],
        description="The breed as people write it: Labrador Retriever, Labrador Retriever "
        "mix, Labrador Retriever \u00d7 Standard Poodle mix, mixed breed, unknown breed, or "
        'the model\'s "uncertain between A and B"; null unless a dog.',
    )
    uncertain_between: list[str] | None = Field(
        None,
        description="The model's top two breeds when they are closer than "
        "`PAWDEX_UNCERTAIN_MARGIN`, whatever a person said; else null.",
    )
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
    def of(cls, record: PhotoRecord, uncertain_margin: float = DEFAULT_UNCERTAIN_MARGIN) -> Photo:
        img, pred = record.image, record.prediction
        uncertain = uncertain_between(pred.species, pred.top_k, uncertain_margin)
        if record.label:
            value = stored_value(record.label)
            breeds, mix, text = list(value.breeds), value.mix, value.text
        else:
            model_breeds = [pred.breed] if pred.species == "dog" and pred.breed else []
            breeds, mix = model_breeds, False
            text = model_breed_text(pred.species, pred.breed, uncertain)
        return cls(
            breeds=breeds,
            mix=mix,
            breed_text=text,
            uncertain_between=uncertain,
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


class PhotoPage(Counted):
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
    label: str | None = Field(
        None,
        examples=["Labrador Retriever mix"],
        description="A person's label of this photo in words (a breed as shelters write it, "
        "or the species when not a dog); null when it has none.",
    )

    @staticmethod
    def label_words(label: AgreedLabel | None) -> str | None:
        """``core.animals.photo_label``'s answer in words."""
        if label is None:
            return None
        value = LabelValue(label.species, label.breeds, label.mix)
        return value.text or value.species


class AnimalOut(BaseModel):
    id: int
    external_id: str | None = Field(description="The shelter's id for it (e.g. A123456).")
    name: str | None
    intake_date: date | None = Field(None, description="When it came into the shelter.")
    photo_count: int
    breed: str | None = Field(
        description="From all its photos: the mean of their probabilities (the model's top 5 "
        "per photo); null when no photo is classified yet or none looks like a dog."
    )
    confidence: float | None = Field(description="The pooled probability of that breed.")
    top_k: list[TopK] = Field(description="The pooled top 5.")
    label_source: LabelSource = Field(
        LabelSource.model,
        description="human when every photo has a person's label and they agree (labelling "
        "the animal labels each photo): `species`, `breed`, `breeds`, `mix` and "
        "`breed_text` are then that label; else the pooled model breed.",
    )
    species: str | None = Field(
        None,
        description="The label's species, else the one most of its photos show (null until "
        "one is classified); a breed only when it is a dog.",
    )
    species_confidence: float | None = Field(
        None, description="The model's: the mean of that species' probability over its photos."
    )
    breeds: list[str] = Field([], description="The label's breeds, else the pooled breed.")
    mix: bool = False
    breed_text: str | None = Field(
        None, examples=["Labrador Retriever mix"], description="As on a photo (`Photo`)."
    )
    uncertain_between: list[str] | None = Field(
        None,
        description="The pooled top two breeds when they are closer than "
        "`PAWDEX_UNCERTAIN_MARGIN`, whatever a person said (as on a photo); else null.",
    )
    cover_url: str | None = Field(description="A thumbnail of its first photo.")
    photos: list[AnimalPhoto] | None = Field(
        None, description="Its photos (one animal's page only)."
    )

    @classmethod
    def of(
        cls,
        animal,
        count: int,
        pooled,
        cover: int | None,
        photos=None,
        label: AgreedLabel | None = None,
        uncertain_margin: float = DEFAULT_UNCERTAIN_MARGIN,
    ) -> AnimalOut:
        out = cls(
            id=animal.id, external_id=animal.external_id, name=animal.name, photo_count=count,
            intake_date=animal.intake_date,
            breed=pooled.breed if pooled else None,
            confidence=pooled.confidence if pooled and pooled.breed else None,
            top_k=[TopK(**t) for t in pooled.top_k] if pooled else [],
            cover_url=f"/v1/images/{cover}/thumbnail" if cover else None, photos=photos,
        )  # fmt: skip
        if out.breed:
            out.uncertain_between = uncertain_between("dog", pooled.top_k, uncertain_margin)
        if label is not None:
            value = LabelValue(label.species, label.breeds, label.mix)
            out.label_source, out.species, out.breed = LabelSource.human, value.species, value.breed
            out.breeds, out.mix, out.breed_text = list(value.breeds), value.mix, value.text
        elif out.breed:
            out.species, out.breeds = "dog", [out.breed]
            out.breed_text = model_breed_text("dog", out.breed, out.uncertain_between)
        elif pooled is not None:
            out.species = pooled.species
        if pooled is not None:
            out.species_confidence = pooled.species_confidence
        return out


class AnimalPage(Counted):
    items: list[AnimalOut]
    next_cursor: str | None


class AnimalIn(BaseModel):
    external_id: str | None = Field(
        None, max_length=KEY_MAX, pattern=NO_NUL, description="Empty: none."
    )
    name: str | None = Field(
        None, max_length=ANIMAL_NAME_MAX, pattern=NO_NUL, description="Empty: none."
    )
    intake_date: IsoDate | None = Field(
        None, examples=["2024-03-18"], description="Into the shelter; null clears it."
    )


class NewAnimalIn(AnimalIn):
    photo_ids: list[RowIdIn] = Field(
        min_length=1, max_length=1000, description="Photos taken from their animals into it."
    )


class PhotoIdsIn(BaseModel):
    photo_ids: list[RowIdIn] = Field(min_length=1, max_length=1000)


class AnimalRecordIn(BaseModel):
    external_id: str = Field(
        min_length=1, max_length=KEY_MAX, pattern=NO_NUL, examples=["A123456"],
        description="The shelter's id of the animal (any case).",
    )  # fmt: skip
    name: str | None = Field(
        None, max_length=ANIMAL_NAME_MAX, pattern=NO_NUL, description="Null: as it is; empty: none."
    )
    intake_date: IsoDate | None = Field(
        None, examples=["2024-03-18"], description="Null: as it is."
    )


class AnimalRecordsIn(BaseModel):
    items: list[AnimalRecordIn] = Field(min_length=1, max_length=MAX_ANIMAL_ROWS)


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
    """What ``core.labels.validate`` enforces, declared: a dog has one of the 120 breeds or
    none, a cat or anything else has no breed and is no mix. Refused though schema-valid
    (422): a name in ``breeds`` that is no breed or could be several, the same breed twice,
    ``breed`` other than the first of ``breeds``."""
    schema["properties"]["species"]["enum"] = list(SPECIES)
    schema["properties"]["breeds"]["uniqueItems"] = True
    schema["oneOf"] = [
        {
            "properties": {
                "species": {"const": "dog"},
                "breed": {"enum": [*sorted(BREED_NAMES), None]},
            },
            "required": ["species"],
        },
        {
            "properties": {
                "species": {"enum": [s for s in SPECIES if s != "dog"]},
                "breed": {"type": "null"},
                "breeds": {"maxItems": 0},
                "mix": {"const": False},
            }
        },
    ]


def _typed_breed(name: str) -> str:
    try:
        return resolve_breed(name)
    except UnknownBreed as exc:
        raise ValueError(str(exc)) from None


TypedBreed = Annotated[
    str, StringConstraints(max_length=100, pattern=NO_NUL), AfterValidator(_typed_breed)
]
BREEDS_DOC = (
    "Up to three parent breeds, the primary first (the catalogue files the dog under it), "
    "typed as the `breed` filter takes them (Lab, German Shepherd, golden_retriever). A "
    "name that is no breed, or could be several, is a 422 listing close matches."
)
MIX_DOC = (
    'A mix: with one breed "Labrador Retriever mix", with none "mixed breed". Two or '
    'more breeds are always a mix. A dog with no breed and no mix: "unknown breed".'
)


class LabelIn(BaseModel):
    """A pure breed (`breed` or one of `breeds`), a mix of up to three named breeds, "mixed
    breed" (`mix`, no breeds), "unknown breed" (a dog, neither), or not a dog."""

    model_config = ConfigDict(json_schema_extra=_label_rule)

    species: str = Field(examples=["dog"], description="dog, cat or other ('not a dog')")
    breed: str | None = Field(
        None, examples=["beagle"], description="One Stanford Dogs name: a pure breed (as before "
        "`breeds`); with `breeds`, it must be their first."
    )  # fmt: skip
    breeds: list[TypedBreed] = Field(
        [], max_length=MAX_PARENTS, examples=[["Lab"]], description=BREEDS_DOC
    )
    mix: StrictBool = Field(False, description=MIX_DOC)

    @field_validator("breeds")
    @classmethod
    def _no_repeats(cls, breeds: list[str]) -> list[str]:
        if len(set(breeds)) < len(breeds):
            raise ValueError(f"a breed is named twice: {', '.join(breeds)}")
        return breeds

    @model_validator(mode="after")
    def _known(self) -> LabelIn:
        self.value()  # raises
        return self

    def value(self) -> LabelValue:
        try:
            return parse_label(self.species, self.breed, self.breeds, self.mix)
        except InvalidLabel as exc:
            raise ValueError(str(exc)) from None


class LabelItemIn(BaseModel):
    """One photo's label in a bulk request: checked on its own, reported by its index."""

    photo_id: RowIdIn
    species: str = Field(max_length=16, pattern=NO_NUL, examples=["dog"])
    breed: str | None = Field(None, max_length=100, pattern=NO_NUL)
    breeds: list[Annotated[str, StringConstraints(max_length=100, pattern=NO_NUL)]] = Field(
        [], max_length=MAX_PARENTS, examples=[["Labrador Retriever"]], description=BREEDS_DOC
    )
    mix: StrictBool = Field(False, description=MIX_DOC)


class LabelsIn(BaseModel):
    items: list[LabelItemIn] = Field(min_length=1, max_length=1000)


def _inlined(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> Any:
    """``schema`` with its ``$defs`` references written out (for an ``openapi_extra`` body,
    where ``#/$defs/…`` would point at the document's root)."""
    if defs is None:
        defs = schema.pop("$defs", {})
    if isinstance(schema, dict):
        if ref := schema.get("$ref"):
            return _inlined(dict(defs[ref.rsplit("/", 1)[-1]]), defs)
        return {k: _inlined(v, defs) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_inlined(v, defs) for v in schema]
    return schema


def bulk_request_body(model: type[BaseModel], csv_description: str) -> dict[str, Any]:
    """A bulk request's body: JSON (``model``) or a CSV, as a file field or the body itself."""
    csv_file = {"type": "string", "format": "binary", "description": csv_description}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _inlined(model.model_json_schema())},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": csv_file},
                        "required": ["file"],
                    }
                },
                "text/csv": {"schema": {"type": "string", "description": csv_description}},
            },
        }
    }


class RowErrorOut(BaseModel):
    row: int = Field(
        description="The item's index in `items` (from 0), or the CSV's line (the header is 1)."
    )
    reason: str = Field(examples=["breeds[0]: unknown breed 'Labradoodle'"])


class LabelImportOut(BaseModel):
    received: int = Field(description="Rows read (blank CSV lines are skipped).")
    applied: int = Field(description="Photos labelled (a photo named twice counts once).")
    failed: int = Field(description="Rows refused: see errors.")
    errors: list[RowErrorOut]


class AnimalImportOut(BaseModel):
    received: int = Field(description="Rows read (blank CSV lines are skipped).")
    updated: int = Field(description="Animals updated (an animal named twice counts once).")
    unknown: int = Field(
        description="Shelter ids no photo has brought yet (not errors: nothing to update)."
    )
    unknown_ids: list[str] = Field(description=f"The first {UNKNOWN_SHOWN} of them.")
    failed: int = Field(description="Rows refused: see errors.")
    errors: list[RowErrorOut]


class KeyOut(BaseModel):
    name: str
    role: Role
    prefix: str

    @classmethod
    def of(cls, key: ApiKey) -> KeyOut:
        return cls(name=key.name, role=key.role, prefix=key.prefix)


class KeyIn(BaseModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True)] = Field(
        min_length=1, max_length=128, pattern=NO_NUL, examples=["Front desk tablet"],
        description="Who or what the key is for.",
    )  # fmt: skip
    role: Role = Field(examples=["archivist"])


class KeyRecord(BaseModel):
    """An API key as admins see it: never the key itself (only its first characters)."""

    id: int
    name: str
    role: Role
    prefix: str = Field(examples=["pdx_Xk3v9Q"], description="The key's first characters.")
    created_at: datetime
    last_used_at: datetime | None = Field(description="To the minute; null: never used.")
    revoked_at: datetime | None = Field(description="Null while the key is active.")

    @classmethod
    def of(cls, key: ApiKey) -> KeyRecord:
        return cls(
            id=key.id, name=key.name, role=key.role, prefix=key.prefix,
            created_at=key.created_at, last_used_at=key.last_used_at, revoked_at=key.revoked_at,
        )  # fmt: skip


class NewKey(KeyRecord):
    key: str = Field(description="The key itself: shown this once, never stored.")


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
    host: str | None = Field(
        description="The machine it runs on (`PAWDEX_WORKER_HOST`, else its host name); null "
        "for a worker from before hosts were reported.",
        examples=["gpu-box-1"],
    )
    address: str | None = Field(
        description="The host's address, as it reaches the broker.", examples=["10.0.0.12"]
    )
    longest_batch_seconds: float | None = Field(
        description="Its longest classify delivery, start to end, since it started."
    )
    near_visibility_timeout: bool = Field(
        description="The longest batch took more than half the broker's visibility timeout: "
        "lower `PAWDEX_BATCH_SIZE` or raise `PAWDEX_BROKER_VISIBILITY_TIMEOUT`, or a batch "
        "that outlasts it is delivered to a second worker while the first still runs it."
    )


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
    visibility_timeout: int | None = Field(
        description="Seconds after which the broker (Redis) delivers an unacknowledged task "
        "again; null on the embedded broker."
    )

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
                    host=w.host,
                    address=w.address,
                    longest_batch_seconds=w.longest_batch_seconds,
                    near_visibility_timeout=nears_visibility_timeout(
                        w.longest_batch_seconds, o.visibility_timeout
                    ),
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
            visibility_timeout=o.visibility_timeout,
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
    def of(
        cls, library: Library, files: int, photos: int, last_errors: Sequence[JobError]
    ) -> LibraryOut:
        last = JobOut.of(library.last_job, last_errors) if library.last_job is not None else None
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


THUMBNAILS_MAX = 512  # above the largest classify batch a GPU worker is advised (256)


class ThumbnailsIn(BaseModel):
    image_ids: list[RowIdIn] = Field(
        min_length=1,
        max_length=THUMBNAILS_MAX,
        description="Photos whose thumbnails to send (an inference worker's batch).",
        examples=[[101, 102, 103]],
    )


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


class DeletionOut(BaseModel):
    """One deletion: what went to the trash, who sent it there, when, and what became of it."""

    id: int
    kind: DeletionKind = Field(description="photos, animal, job or library")
    target: str | None = Field(description="The animal's, job's or library's id.")
    name: str = Field(examples=["job kennel-2021.zip"])
    photos: int = Field(description="Photos it sent to the trash.")
    state: Literal["trash", "restored", "purged"]
    deleted_by: str
    deleted_at: datetime
    purge_after: datetime = Field(description="When it is purged unless restored first.")
    restored_by: str | None
    restored_at: datetime | None
    purged_by: str | None
    purged_at: datetime | None

    @classmethod
    def of(cls, deletion: Deletion) -> DeletionOut:
        state = "purged" if deletion.purged_at else "restored" if deletion.restored_at else "trash"
        return cls(
            id=deletion.id, kind=deletion.kind, target=deletion.target, name=deletion.name,
            photos=deletion.photos, state=state, deleted_by=deletion.deleted_by,
            deleted_at=deletion.deleted_at, purge_after=deletion.purge_after,
            restored_by=deletion.restored_by, restored_at=deletion.restored_at,
            purged_by=deletion.purged_by, purged_at=deletion.purged_at,
        )  # fmt: skip


class DeletionPage(BaseModel):
    items: list[DeletionOut]
    next_cursor: str | None
