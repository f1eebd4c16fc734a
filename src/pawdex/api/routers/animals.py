"""Animals: shelter animals and their photos (the photos themselves are /v1/photos)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from pawdex.api.deps import ArchivistKey, RowId, SessionDep, found, require
from pawdex.api.schemas import (
    AnimalIn,
    AnimalOut,
    AnimalPage,
    AnimalPhoto,
    MergeIn,
    NewAnimalIn,
    PhotoIdsIn,
    errors,
)
from pawdex.core.animals import (
    animal_views,
    list_animals,
    merge_animals,
    move_photos,
    new_animal,
    update_animal,
)
from pawdex.core.cursors import cursor_row_id, decode_cursor, encode_cursor
from pawdex.core.model_versions import active_version
from pawdex.core.models import Animal, Role

router = APIRouter(
    prefix="/v1/animals",
    tags=["animals"],
    dependencies=[Depends(require(Role.viewer))],
    responses=errors(400, 401, 429, 503),
)


def _outs(session: Session, animals: list[Animal], with_photos: bool = False) -> list[AnimalOut]:
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
                )
                for p in view.photos
            ]
        cover = view.photos[0].id if view.photos else None
        outs.append(AnimalOut.of(view.animal, len(view.photos), view.pooled, cover, listed))
    return outs


def _animal(session: Session, animal_id: int) -> Animal:
    return found(session.get(Animal, animal_id), f"animal {animal_id}")


def _one(session: Session, animal_id: int) -> AnimalOut:
    return _outs(session, [_animal(session, animal_id)], with_photos=True)[0]


@router.get("", response_model=AnimalPage)
def animals(
    session: SessionDep,
    external_id: Annotated[
        str | None, Query(max_length=64, description="The shelter's id, any case.")
    ] = None,
    name: Annotated[str | None, Query(max_length=200, description="Part of the name.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> AnimalPage:
    """Animals, newest first, each with its photo count and its breed pooled from all its
    photos."""
    before = cursor_row_id(decode_cursor(cursor)) if cursor else None
    rows = list_animals(session, limit + 1, before, external_id, name)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].id) if more else None
    return AnimalPage(items=_outs(session, rows), next_cursor=next_cursor)


@router.get("/{animal_id}", response_model=AnimalOut, responses=errors(404))
def animal(animal_id: RowId, session: SessionDep) -> AnimalOut:
    """One animal with its photos: which of them agree with its pooled breed."""
    return _one(session, animal_id)


@router.patch("/{animal_id}", response_model=AnimalOut, responses=errors(403, 404, 409))
def edit_animal(
    animal_id: RowId, body: AnimalIn, session: SessionDep, _key: ArchivistKey
) -> AnimalOut:
    """Set the shelter's id or the name (an empty string clears it)."""
    update_animal(session, _animal(session, animal_id), body.external_id, body.name)
    session.commit()
    return _one(session, animal_id)


@router.post("", status_code=201, response_model=AnimalOut, responses=errors(403, 404, 409))
def split_animal(body: NewAnimalIn, session: SessionDep, _key: ArchivistKey) -> AnimalOut:
    """A new animal made of these photos, taken from the animals they belonged to (those
    left without photos go)."""
    created = new_animal(session, body.photo_ids, body.external_id, body.name)
    session.commit()
    return _one(session, created.id)


@router.post("/{animal_id}/photos", response_model=AnimalOut, responses=errors(403, 404))
def move_to_animal(
    animal_id: RowId, body: PhotoIdsIn, session: SessionDep, _key: ArchivistKey
) -> AnimalOut:
    """Move photos to this animal (animals left without photos go)."""
    move_photos(session, _animal(session, animal_id).id, body.photo_ids)
    session.commit()
    return _one(session, animal_id)


@router.post("/{animal_id}/merge", response_model=AnimalOut, responses=errors(403, 404))
def merge(animal_id: RowId, body: MergeIn, session: SessionDep, _key: ArchivistKey) -> AnimalOut:
    """Every photo of these animals joins this one; they are deleted."""
    merge_animals(session, _animal(session, animal_id), body.animal_ids)
    session.commit()
    return _one(session, animal_id)
