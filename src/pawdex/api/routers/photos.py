from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse

from pawdex.api.deps import ArchivistKey, RowId, SessionDep, SettingsDep, found, require
from pawdex.api.schemas import BreedCount, LabelIn, Photo, PhotoPage, ReviewPage, errors
from pawdex.core.breeds import UnknownBreed, resolve_breed
from pawdex.core.catalog import (
    PhotoFilters,
    PhotoRecord,
    PhotoSort,
    breed_counts,
    get_photo,
    iter_photos,
    list_photos,
)
from pawdex.core.labels import add_label, csv_chunks, labels_csv
from pawdex.core.models import LabelSource, Role
from pawdex.taxonomy import BREED_NAMES, SPECIES

router = APIRouter(
    prefix="/v1",
    tags=["photos"],
    dependencies=[Depends(require(Role.viewer))],
    responses=errors(400, 401, 429, 503),
)

CSV_COLUMNS = [
    "id", "sha256", "filename", "path", "species", "breed", "label_source", "model_breed",
    "confidence", "top_k", "model_version", "job_id", "width", "height", "indexed_at",
]  # fmt: skip


def model_version_param(
    model_version: Annotated[
        str | None, Query(description="A model version; absent or empty: the active model")
    ] = None,
) -> str | None:
    return model_version or None  # an empty form field means "the active model"


ModelVersionDep = Annotated[str | None, Depends(model_version_param)]


def photo_filters(
    model_version: ModelVersionDep,
    breed: Annotated[
        str | None,
        Query(
            max_length=100,
            description="A breed, any case: the Stanford Dogs name (golden_retriever) or a "
            "common one (Lab, German Shepherd, Pit Bull); 422 with close matches if unknown "
            "or ambiguous (Poodle: toy, miniature or standard).",
        ),
    ] = None,
    species: Annotated[str | None, Query(pattern=f"^({'|'.join(SPECIES)})$")] = None,
    min_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
    max_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
    job_id: str | None = None,
    path_prefix: Annotated[
        str | None, Query(description="Folder inside the upload, e.g. 2019/")
    ] = None,
    filename: Annotated[str | None, Query(description="Part of the file name")] = None,
    label_source: Annotated[
        LabelSource | None, Query(description="human: labelled by a person; model: not yet")
    ] = None,
) -> PhotoFilters:
    return PhotoFilters(
        breed=_breed(breed) if breed else None, species=species,
        min_confidence=min_confidence,
        max_confidence=max_confidence, job_id=job_id, model_version=model_version,
        path_prefix=path_prefix, filename=filename, label_source=label_source,
    )  # fmt: skip


def _breed(typed: str) -> str:
    """The class ``typed`` names; else a 422 shaped as any invalid parameter's, its message
    listing what the name could mean."""
    try:
        return resolve_breed(typed)
    except UnknownBreed as exc:
        problem = {"type": "unknown_breed", "loc": ("query", "breed"), "msg": str(exc),
                   "input": typed}  # fmt: skip
        raise RequestValidationError([problem]) from None


FiltersDep = Annotated[PhotoFilters, Depends(photo_filters)]


def _csv_row(record: PhotoRecord) -> list[object]:
    a = Photo.of(record)
    top = ";".join(f"{t.breed}:{t.confidence:.4f}" for t in a.top_k)
    return [
        a.id, a.sha256, a.filename, a.path, a.species, a.breed or "", a.label_source.value,
        a.model_breed or "", f"{a.confidence:.4f}", top, a.model_version, a.job_id or "",
        a.width, a.height, a.indexed_at.isoformat(),
    ]  # fmt: skip


def _csv_download(chunks: Iterator[str], filename: str) -> StreamingResponse:
    return StreamingResponse(
        chunks,
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/photos",
    response_model=PhotoPage,
    responses={
        200: {"content": {"text/csv": {}}, "description": "JSON page, or CSV of all matches"}
    },
)
def photos(
    request: Request,
    session: SessionDep,
    filters: FiltersDep,
    sort: PhotoSort = PhotoSort.confidence_desc,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
    format: Annotated[str | None, Query(pattern="^(json|csv)$")] = None,
):
    """Indexed photos with the active model's predictions (or `model_version`), filtered and sorted.

    With `format=csv` or `Accept: text/csv`, every match is exported as CSV."""
    wants_csv = format == "csv" or (
        format is None and "text/csv" in request.headers.get("accept", "")
    )
    if wants_csv:
        records = iter_photos(session, filters, sort)
        # Read the first page now: a bad query is a 400, not a 200 whose stream breaks off.
        first = list(itertools.islice(records, 1))
        rows = map(_csv_row, itertools.chain(first, records))
        return _csv_download(csv_chunks(CSV_COLUMNS, rows), "photos.csv")
    records, next_cursor = list_photos(session, filters, sort, limit, cursor)
    return PhotoPage(items=[Photo.of(r) for r in records], next_cursor=next_cursor)


@router.get("/photos/{photo_id}", response_model=Photo, responses=errors(404))
def photo(photo_id: RowId, session: SessionDep, model_version: ModelVersionDep) -> Photo:
    return Photo.of(found(get_photo(session, photo_id, model_version), f"photo {photo_id}"))


@router.get("/breeds", response_model=list[BreedCount])
def breeds(session: SessionDep, model_version: ModelVersionDep) -> list[BreedCount]:
    """Breeds present in the index, most frequent first."""
    return [BreedCount(breed=b, count=n) for b, n in breed_counts(session, model_version)]


@router.get("/breeds/all", response_model=list[str], responses=errors(422))
def all_breeds() -> list[str]:
    """The 120 Stanford Dogs breed names a label may use, alphabetically."""
    return sorted(BREED_NAMES, key=str.lower)


@router.get("/review", response_model=ReviewPage)
def review(
    session: SessionDep,
    settings: SettingsDep,
    threshold: Annotated[float | None, Query(ge=0, le=1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> ReviewPage:
    """The review queue: photos whose model confidence is at most ``threshold`` (default
    ``PAWDEX_REVIEW_THRESHOLD``) that no person has labelled yet, least confident first."""
    cut = settings.review_threshold if threshold is None else threshold
    filters = PhotoFilters(max_confidence=cut, label_source=LabelSource.model)
    records, next_cursor = list_photos(session, filters, PhotoSort.confidence_asc, limit, cursor)
    return ReviewPage(items=[Photo.of(r) for r in records], next_cursor=next_cursor, threshold=cut)


@router.post("/photos/{photo_id}/label", response_model=Photo, responses=errors(403, 404, 413))
def label(photo_id: RowId, body: LabelIn, session: SessionDep, key: ArchivistKey) -> Photo:
    """Confirm or correct the breed, or say "not a dog" (species cat or other) — archivists.
    Stored beside the model's prediction; the newest label is the one shown."""
    found(get_photo(session, photo_id), f"photo {photo_id}")
    add_label(session, photo_id, body.species, body.breed, key)
    session.commit()
    return Photo.of(found(get_photo(session, photo_id), f"photo {photo_id}"))


@router.get(
    "/labels",
    responses={
        200: {"content": {"text/csv": {}}, "description": "CSV of the current labels"},
        **errors(422),
    },
)
def labels(session: SessionDep) -> StreamingResponse:
    """Every photo a person labelled, with the label and what the model said (CSV): a
    training set (``pawdex labels export DIR`` writes it as an ImageFolder tree)."""
    return _csv_download(labels_csv(session), "labels.csv")
