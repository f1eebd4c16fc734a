"""Delete with undo: what is deleted goes to the trash, restorable until it is purged.

Admins delete anything; archivists what their own key uploaded (photos, the animals made of
them, their jobs). Every deletion is recorded: ``GET /v1/trash``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from pawdex.api.deps import AdminKey, ArchivistKey, RowId, SessionDep, SettingsDep, found
from pawdex.api.schemas import DeletionOut, DeletionPage, PhotoIdsIn, errors
from pawdex.core.models import Animal, Deletion, Job, Library
from pawdex.core.storage import open_storage
from pawdex.core.trash import (
    list_deletions,
    purge,
    remove_files,
    restore,
    trash_animal,
    trash_job,
    trash_library,
    trash_photos,
)

router = APIRouter(prefix="/v1", tags=["trash"], responses=errors(400, 401, 403, 429, 503))


def _live(session: Session, model: type, row_id: object, what: str):
    row = session.get(model, row_id)
    return found(row if row is not None and row.deletion_id is None else None, what)


def _done(session: Session, deletion: Deletion) -> DeletionOut:
    session.commit()
    return DeletionOut.of(deletion)


@router.delete("/photos/{photo_id}", response_model=DeletionOut, responses=errors(404))
def delete_photo(
    photo_id: RowId, session: SessionDep, settings: SettingsDep, key: ArchivistKey
) -> DeletionOut:
    """Send a photo to the trash (its labels and predictions go with it, restorable)."""
    return _done(session, trash_photos(session, [photo_id], key, settings))


@router.post("/trash", status_code=201, response_model=DeletionOut, responses=errors(404))
def delete_photos(
    body: PhotoIdsIn, session: SessionDep, settings: SettingsDep, key: ArchivistKey
) -> DeletionOut:
    """Send many photos to the trash as one deletion (restored together). Those already in
    the trash or unknown are ignored; 404 if none is left."""
    return _done(session, trash_photos(session, body.photo_ids, key, settings))


@router.delete("/animals/{animal_id}", response_model=DeletionOut, responses=errors(404))
def delete_animal(
    animal_id: RowId, session: SessionDep, settings: SettingsDep, key: ArchivistKey
) -> DeletionOut:
    """Send an animal and all its photos to the trash."""
    animal = _live(session, Animal, animal_id, f"animal {animal_id}")
    return _done(session, trash_animal(session, animal, key, settings))


@router.delete("/jobs/{job_id}", response_model=DeletionOut, responses=errors(404, 409))
def delete_job(
    job_id: str, session: SessionDep, settings: SettingsDep, key: ArchivistKey
) -> DeletionOut:
    """Send a finished job to the trash, with the photos it brought that no other upload or
    library holds. 409 while it runs: cancel it first."""
    job = _live(session, Job, job_id, f"job {job_id}")
    return _done(session, trash_job(session, job, key, settings))


@router.delete("/libraries/{library_id}", response_model=DeletionOut, responses=errors(404, 409))
def delete_library(
    library_id: RowId, session: SessionDep, settings: SettingsDep, key: AdminKey
) -> DeletionOut:
    """Stop indexing a library (admins): it goes to the trash with its photos that no upload
    holds. Its folder is never touched. 409 while it is being scanned."""
    stmt = select(Library).options(selectinload(Library.last_job)).where(Library.id == library_id)
    library = session.scalar(stmt.where(Library.deletion_id.is_(None)))
    library = found(library, f"library {library_id}")
    return _done(session, trash_library(session, library, key, settings))


@router.get("/trash", response_model=DeletionPage, responses=errors(422))
def trash(
    session: SessionDep,
    key: ArchivistKey,
    state: Annotated[
        Literal["trash", "restored", "purged"] | None,
        Query(description="trash: still restorable; absent: every deletion ever made."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> DeletionPage:
    """Deletions, newest first: what, by whom, when, and whether it was restored or purged.
    Archivists see their own; admins everyone's."""
    rows, next_cursor = list_deletions(session, key, state, limit, cursor)
    return DeletionPage(items=[DeletionOut.of(row) for row in rows], next_cursor=next_cursor)


def _deletion(session: Session, deletion_id: int) -> Deletion:
    return found(session.get(Deletion, deletion_id), f"deletion {deletion_id}")


@router.post("/trash/{deletion_id}/restore", response_model=DeletionOut, responses=errors(404, 409))
def restore_deletion(deletion_id: RowId, session: SessionDep, key: ArchivistKey) -> DeletionOut:
    """Bring back everything the deletion sent to the trash, as it was (admins, or the key
    that deleted it). 409 once restored or purged."""
    return _done(session, restore(session, _deletion(session, deletion_id), key))


@router.delete("/trash/{deletion_id}", response_model=DeletionOut, responses=errors(404, 409))
def purge_deletion(
    deletion_id: RowId, session: SessionDep, settings: SettingsDep, key: AdminKey
) -> DeletionOut:
    """Purge now (admins): the photos and their files are deleted for good (a file another
    photo still uses stays). The deletion's record stays, marked purged."""
    purged = purge(session, _deletion(session, deletion_id), by=key.name)
    session.commit()
    remove_files(open_storage(settings), purged.files)
    return DeletionOut.of(purged.deletion)
