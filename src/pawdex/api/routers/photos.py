from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from pawdex.api.bulk_rows import read_label_rows
from pawdex.api.deps import (
    ArchivistKey,
    RowId,
    SessionDep,
    SettingsDep,
    UtcMoment,
    found,
    known_breed,
    require,
)
from pawdex.api.schemas import (
    BreedCount,
    LabelImportOut,
    LabelIn,
    LabelsIn,
    Photo,
    PhotoPage,
    ReviewPage,
    RowErrorOut,
    bulk_request_body,
    errors,
)
from pawdex.core.catalog import (
    PhotoFilters,
    PhotoRecord,
    PhotoSort,
    breed_counts,
    count_photos,
    get_photo,
    iter_photos,
    list_photos,
)
from pawdex.core.label_import import import_labels
from pawdex.core.labels import add_label, csv_chunks, labels_csv, withdraw_label
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
    "breed_text", "breeds", "mix",
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
    might_be: Annotated[
        str | None,
        Query(
            max_length=100,
            description="A breed, named as for `breed`: photos whose model top 5 hold it at "
            "`might_be_min` or more (not only its first answer), that probability highest "
            "first (`sort` is then ignored).",
        ),
    ] = None,
    might_be_min: Annotated[
        float, Query(ge=0, le=1, description="The least probability `might_be` asks for.")
    ] = 0.1,
    indexed_after: Annotated[
        UtcMoment | None,
        Query(description="Indexed at or after this ISO date or date-time (no zone: UTC)."),
    ] = None,
    indexed_before: Annotated[
        UtcMoment | None,
        Query(description="Indexed before this ISO date or date-time (no zone: UTC)."),
    ] = None,
) -> PhotoFilters:
    return PhotoFilters(
        breed=known_breed(breed, "breed") if breed else None, species=species,
        min_confidence=min_confidence,
        max_confidence=max_confidence, job_id=job_id, model_version=model_version,
        path_prefix=path_prefix, filename=filename, label_source=label_source,
        might_be=known_breed(might_be, "might_be") if might_be else None,
        might_be_min=might_be_min,
        indexed_after=indexed_after, indexed_before=indexed_before,
    )  # fmt: skip


FiltersDep = Annotated[PhotoFilters, Depends(photo_filters)]


def _csv_row(record: PhotoRecord) -> list[object]:
    a = Photo.of(record)
    top = ";".join(f"{t.breed}:{t.confidence:.4f}" for t in a.top_k)
    return [
        a.id, a.sha256, a.filename, a.path, a.species, a.breed or "", a.label_source.value,
        a.model_breed or "", f"{a.confidence:.4f}", top, a.model_version, a.job_id or "",
        a.width, a.height, a.indexed_at.isoformat(), a.breed_text or "", ";".join(a.breeds),
        "true" if a.mix else "false",
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
    settings: SettingsDep,
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
    total, capped = count_photos(session, filters, sort)
    return PhotoPage(
        items=[Photo.of(r, settings.uncertain_margin) for r in records],
        next_cursor=next_cursor, total=total, total_capped=capped,
    )  # fmt: skip


@router.get("/photos/{photo_id}", response_model=Photo, responses=errors(404))
def photo(
    photo_id: RowId, session: SessionDep, settings: SettingsDep, model_version: ModelVersionDep
) -> Photo:
    record = found(get_photo(session, photo_id, model_version), f"photo {photo_id}")
    return Photo.of(record, settings.uncertain_margin)


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
    include_not_dogs: Annotated[
        bool,
        Query(
            description="Also list photos the model is sure are not dogs (species "
            "confidence at least `PAWDEX_NOT_A_DOG_CONFIDENCE`)."
        ),
    ] = False,
) -> ReviewPage:
    """The review queue: photos whose model confidence is at most ``threshold`` (default
    ``PAWDEX_REVIEW_THRESHOLD``) that no person has labelled yet, least confident first;
    photos the model is sure are not dogs only with ``include_not_dogs``."""
    cut = settings.review_threshold if threshold is None else threshold
    hide = None if include_not_dogs else settings.not_a_dog_confidence
    filters = PhotoFilters(
        max_confidence=cut, label_source=LabelSource.model, hide_not_dogs_from=hide
    )
    sort = PhotoSort.confidence_asc
    records, next_cursor = list_photos(session, filters, sort, limit, cursor)
    total, capped = count_photos(session, filters, sort)
    return ReviewPage(
        items=[Photo.of(r, settings.uncertain_margin) for r in records],
        next_cursor=next_cursor, threshold=cut,
        total=total, total_capped=capped,
    )  # fmt: skip


@router.post("/photos/{photo_id}/label", response_model=Photo, responses=errors(403, 404, 413, 422))
def label(
    photo_id: RowId, body: LabelIn, session: SessionDep, settings: SettingsDep, key: ArchivistKey
) -> Photo:
    """Confirm or correct the breed — a pure breed, a mix of up to three, "mixed breed",
    "unknown" — or say "not a dog" (species cat or other): archivists. Stored beside the
    model's prediction; the newest label is the one shown. The catalogue files a mix under
    its first breed (`?breed=labrador_retriever` finds a "Labrador Retriever mix")."""
    found(get_photo(session, photo_id), f"photo {photo_id}")
    add_label(session, photo_id, body.value(), key)
    session.commit()
    return Photo.of(
        found(get_photo(session, photo_id), f"photo {photo_id}"), settings.uncertain_margin
    )


@router.delete("/photos/{photo_id}/label", response_model=Photo, responses=errors(403, 404))
def withdraw(
    photo_id: RowId, session: SessionDep, settings: SettingsDep, key: ArchivistKey
) -> Photo:
    """Withdraw the photo's current label (archivists): it shows the model's answer again.
    The label stays in the history, with who withdrew it and when; 404 if there is none."""
    found(get_photo(session, photo_id), f"photo {photo_id}")
    found(withdraw_label(session, photo_id, key) or None, f"a label of photo {photo_id}")
    session.commit()
    return Photo.of(
        found(get_photo(session, photo_id), f"photo {photo_id}"), settings.uncertain_margin
    )


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


MAX_IMPORT_BYTES = 4 * 1024 * 1024  # 1000 rows of the labels CSV are a few hundred KiB


@router.post(
    "/labels",
    response_model=LabelImportOut,
    responses=errors(403, 413, 422),
    openapi_extra=bulk_request_body(LabelsIn, "GET /v1/labels's CSV"),
)
async def import_labels_route(
    request: Request, session: SessionDep, key: ArchivistKey
) -> LabelImportOut:
    """Label many photos at once (archivists): JSON `items` (at most 1000), or the CSV of
    `GET /v1/labels` edited in a spreadsheet (a `file` field or a `text/csv` body; rows
    found by `image_id`, else by `sha256`; `species`, `breeds`, `mix` are read, `breed`
    must agree with `breeds`, other columns are ignored). Every valid row applies; each
    refused one is reported with its row and reason. A CSV without the columns it needs is
    a 400."""
    rows, unread = await read_label_rows(request, MAX_IMPORT_BYTES)
    result = await run_in_threadpool(import_labels, session, rows, key)
    await run_in_threadpool(session.commit)
    errors_ = sorted(unread + result.errors)
    return LabelImportOut(
        received=result.received + len(unread), applied=result.applied, failed=len(errors_),
        errors=[RowErrorOut(row=row, reason=reason) for row, reason in errors_],
    )  # fmt: skip
