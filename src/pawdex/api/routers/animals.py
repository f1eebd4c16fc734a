"""Animals: shelter animals and their photos (the photos themselves are /v1/photos)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from pawdex.api.bulk_rows import read_animal_rows
from pawdex.api.deps import (
    ArchivistKey,
    IsoDate,
    RowId,
    SessionDep,
    SettingsDep,
    UtcMoment,
    found,
    known_breed,
    require,
)
from pawdex.api.schemas import (
    AnimalImportOut,
    AnimalIn,
    AnimalOut,
    AnimalPage,
    AnimalPhoto,
    AnimalRecordsIn,
    LabelIn,
    MergeIn,
    NewAnimalIn,
    PhotoIdsIn,
    RowErrorOut,
    bulk_request_body,
    errors,
)
from pawdex.core.animal_import import UNKNOWN_SHOWN, import_animals
from pawdex.core.animals import (
    AnimalFilters,
    animal_views,
    count_animals,
    list_animals,
    merge_animals,
    move_photos,
    new_animal,
    photo_label,
    update_animal,
)
from pawdex.core.cursors import cursor_row_id, decode_cursor, encode_cursor
from pawdex.core.labels import label_animal, withdraw_animal_labels
from pawdex.core.model_versions import active_version
from pawdex.core.models import Animal, Role
from pawdex.core.settings import Settings

router = APIRouter(
    prefix="/v1/animals",
    tags=["animals"],
    dependencies=[Depends(require(Role.viewer))],
    responses=errors(400, 401, 429, 503),
)


def _outs(
    session: Session, settings: Settings, animals: list[Animal], with_photos: bool = False
) -> list[AnimalOut]:
    version = active_version(session)
    outs = []
    for view in animal_views(session, animals, version.id if version else None):
        listed = None
        if with_photos:
            agreeing = set(view.pooled.agreeing) if view.pooled else set()
            listed = [
                AnimalPhoto(
                    id=p.id,
                    path=p.path,
                    thumbnail_url=f"/v1/images/{p.id}/thumbnail",
                    breed=p.breed,
                    confidence=p.confidence,
                    agrees=p.id in agreeing,
                    label=AnimalPhoto.label_words(photo_label(p)),
                )
                for p in view.photos
            ]
        cover = view.photos[0].id if view.photos else None
        outs.append(
            AnimalOut.of(
                view.animal,
                len(view.photos),
                view.pooled,
                cover,
                listed,
                view.label,
                uncertain_margin=settings.uncertain_margin,
            )
        )
    return outs


def _animal(session: Session, animal_id: int) -> Animal:
    animal = session.get(Animal, animal_id)
    return found(animal if animal and animal.deletion_id is None else None, f"animal {animal_id}")


def _one(session: Session, settings: Settings, animal_id: int) -> AnimalOut:
    return _outs(session, settings, [_animal(session, animal_id)], with_photos=True)[0]


@router.get("", response_model=AnimalPage)
def animals(
    session: SessionDep,
    settings: SettingsDep,
    external_id: Annotated[
        str | None, Query(max_length=64, description="The shelter's id, any case.")
    ] = None,
    name: Annotated[str | None, Query(max_length=200, description="Part of the name.")] = None,
    folder: Annotated[
        str | None, Query(description="Animals with a photo in this folder, e.g. 2021/A1001/")
    ] = None,
    breed: Annotated[
        str | None,
        Query(
            max_length=100,
            description="Animals with a photo of this breed (a person's label, else the active "
            "model's), named as `/v1/photos?breed=`; 422 with close matches if unknown.",
        ),
    ] = None,
    indexed_after: Annotated[
        UtcMoment | None, Query(description="With a photo indexed at or after (ISO date/time).")
    ] = None,
    indexed_before: Annotated[
        UtcMoment | None, Query(description="With a photo indexed before (ISO date/time).")
    ] = None,
    intake_after: Annotated[IsoDate | None, Query(description="Intake on or after.")] = None,
    intake_before: Annotated[IsoDate | None, Query(description="Intake on or before.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> AnimalPage:
    """Animals, newest first, each with its photo count and its breed pooled from all its
    photos. The photo filters (folder, breed, dates) match when one photo meets them all."""
    version = active_version(session)
    filters = AnimalFilters(
        external_id=external_id, name=name, folder=folder,
        breed=known_breed(breed, "breed") if breed else None,
        version_id=version.id if version else None,
        indexed_after=indexed_after, indexed_before=indexed_before,
        intake_after=intake_after, intake_before=intake_before,
    )  # fmt: skip
    before = cursor_row_id(decode_cursor(cursor)) if cursor else None
    rows = list_animals(session, filters, limit + 1, before)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].id) if more else None
    total, capped = count_animals(session, filters)
    return AnimalPage(
        items=_outs(session, settings, rows),
        next_cursor=next_cursor,
        total=total,
        total_capped=capped,
    )


@router.get("/{animal_id}", response_model=AnimalOut, responses=errors(404))
def animal(animal_id: RowId, session: SessionDep, settings: SettingsDep) -> AnimalOut:
    """One animal with its photos: which of them agree with its pooled breed."""
    return _one(session, settings, animal_id)


MAX_RECORDS_BYTES = 8 * 1024 * 1024  # 20,000 rows of a shelter's export are a few MiB


@router.patch(
    "",
    response_model=AnimalImportOut,
    responses=errors(403, 413, 422),
    openapi_extra=bulk_request_body(
        AnimalRecordsIn,
        "A CSV export of the shelter's software: a column external_id, animal_id or "
        "shelter_id, and name and/or intake_date (YYYY-MM-DD); other columns are ignored",
    ),
)
async def import_records(
    request: Request, session: SessionDep, _key: ArchivistKey
) -> AnimalImportOut:
    """Names and intake dates of many animals at once, found by their shelter id, any case
    (archivists): JSON `items`, or the shelter software's CSV export (a `file` field or a
    `text/csv` body). An empty or missing value leaves the field as it is. Every valid row
    applies; each refused one is reported with its row and reason; ids no photo has brought
    yet are listed as unknown (their photos may come later: import again then). A CSV
    without the columns it needs is a 400."""
    rows, unread = await read_animal_rows(request, MAX_RECORDS_BYTES)
    result = await run_in_threadpool(import_animals, session, rows)
    await run_in_threadpool(session.commit)
    refused = sorted(unread + result.errors)
    return AnimalImportOut(
        received=result.received + len(unread), updated=result.updated,
        unknown=len(result.unknown), unknown_ids=result.unknown[:UNKNOWN_SHOWN],
        failed=len(refused), errors=[RowErrorOut(row=row, reason=why) for row, why in refused],
    )  # fmt: skip


@router.patch("/{animal_id}", response_model=AnimalOut, responses=errors(403, 404, 409))
def edit_animal(
    animal_id: RowId, body: AnimalIn, session: SessionDep, settings: SettingsDep, _key: ArchivistKey
) -> AnimalOut:
    """Set the shelter's id, the name (an empty string clears them) or the intake date (null
    clears it)."""
    intake = body.intake_date if "intake_date" in body.model_fields_set else ...
    update_animal(session, _animal(session, animal_id), body.external_id, body.name, intake)
    session.commit()
    return _one(session, settings, animal_id)


@router.post("", status_code=201, response_model=AnimalOut, responses=errors(403, 404, 409))
def split_animal(
    body: NewAnimalIn, session: SessionDep, settings: SettingsDep, _key: ArchivistKey
) -> AnimalOut:
    """A new animal made of these photos, taken from the animals they belonged to (those
    left without photos go)."""
    created = new_animal(session, body.photo_ids, body.external_id, body.name, body.intake_date)
    session.commit()
    return _one(session, settings, created.id)


@router.post("/{animal_id}/photos", response_model=AnimalOut, responses=errors(403, 404))
def move_to_animal(
    animal_id: RowId,
    body: PhotoIdsIn,
    session: SessionDep,
    settings: SettingsDep,
    _key: ArchivistKey,
) -> AnimalOut:
    """Move photos to this animal (animals left without photos go)."""
    move_photos(session, _animal(session, animal_id).id, body.photo_ids)
    session.commit()
    return _one(session, settings, animal_id)


@router.post("/{animal_id}/merge", response_model=AnimalOut, responses=errors(403, 404))
def merge(
    animal_id: RowId, body: MergeIn, session: SessionDep, settings: SettingsDep, _key: ArchivistKey
) -> AnimalOut:
    """Every photo of these animals joins this one; they are deleted."""
    merge_animals(session, _animal(session, animal_id), body.animal_ids)
    session.commit()
    return _one(session, settings, animal_id)


@router.post("/{animal_id}/label", response_model=AnimalOut, responses=errors(403, 404, 422))
def label(
    animal_id: RowId, body: LabelIn, session: SessionDep, settings: SettingsDep, key: ArchivistKey
) -> AnimalOut:
    """Label every photo of the animal (archivists): one label per photo, as
    `POST /v1/photos/{id}/label` would; the animal then shows it while its photos agree."""
    label_animal(session, _animal(session, animal_id).id, body.value(), key)
    session.commit()
    return _one(session, settings, animal_id)


@router.delete("/{animal_id}/label", response_model=AnimalOut, responses=errors(403, 404))
def withdraw_label(
    animal_id: RowId, session: SessionDep, settings: SettingsDep, key: ArchivistKey
) -> AnimalOut:
    """Withdraw the current label of every photo of the animal (archivists): it shows its
    pooled model breed again; the labels stay in the history. 404 if none had one."""
    withdrawn = withdraw_animal_labels(session, _animal(session, animal_id).id, key)
    found(withdrawn or None, f"a label of a photo of animal {animal_id}")
    session.commit()
    return _one(session, settings, animal_id)
