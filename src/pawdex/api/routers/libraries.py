"""Libraries: server-side folders indexed in place (admins only: they name server paths)."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from pawdex.api.deps import AdminKey, RowId, SessionDep, SettingsDep, found
from pawdex.api.routers.jobs import job_outs
from pawdex.api.schemas import JobOut, LibraryIn, LibraryOut, errors
from pawdex.core.jobs import first_errors
from pawdex.core.libraries import create_scan_job, library_files_count, register_library
from pawdex.core.models import Library
from pawdex.core.queue import enqueue_ingest

router = APIRouter(
    prefix="/v1/libraries", tags=["libraries"], responses=errors(400, 401, 403, 429, 503)
)


def _outs(session: Session, libraries: Sequence[Library]) -> list[LibraryOut]:
    """Libraries as documents, the first errors of all their latest scans in one query."""
    errors_of = first_errors(session, [lib.last_job.id for lib in libraries if lib.last_job])
    return [
        LibraryOut.of(
            library,
            *library_files_count(session, library.id),
            errors_of[library.last_job.id] if library.last_job else [],
        )
        for library in libraries
    ]


def _library(session: Session, library_id: int) -> Library:
    stmt = (
        select(Library)
        .options(selectinload(Library.last_job))
        .where(Library.id == library_id, Library.deletion_id.is_(None))
    )
    return found(session.scalar(stmt), f"library {library_id}")


@router.get("", response_model=list[LibraryOut], responses=errors(422))
def list_libraries(session: SessionDep, _key: AdminKey) -> list[LibraryOut]:
    """Every library, with its file counts and latest scan."""
    stmt = select(Library).options(selectinload(Library.last_job))
    stmt = stmt.where(Library.deletion_id.is_(None))
    return _outs(session, session.scalars(stmt.order_by(Library.name)).all())


@router.post("", status_code=201, response_model=LibraryOut)
def add_library(
    body: LibraryIn, session: SessionDep, settings: SettingsDep, key: AdminKey
) -> LibraryOut:
    """Register a folder on the server as a library (inside `PAWDEX_LIBRARY_ROOTS`); nothing
    is read until it is scanned. 400 for a folder that cannot be one (outside the allowed
    roots, missing, overlapping another library)."""
    library = register_library(
        session, body.name, body.path, settings, created_by=key.name, grouping=body.grouping
    )
    session.commit()
    return _outs(session, [library])[0]


@router.get("/{library_id}", response_model=LibraryOut, responses=errors(404))
def get_library(library_id: RowId, session: SessionDep, _key: AdminKey) -> LibraryOut:
    return _outs(session, [_library(session, library_id)])[0]


@router.post(
    "/{library_id}/scan", status_code=202, response_model=JobOut, responses=errors(404, 409)
)
def scan_library(
    library_id: RowId, session: SessionDep, settings: SettingsDep, key: AdminKey
) -> JobOut:
    """Index the library's new and changed files in place and drop those that went away, as
    a job (origin `library`). 409 while a scan of it is still going."""
    job = create_scan_job(session, _library(session, library_id), created_by=key.name)
    session.commit()
    enqueue_ingest(job.id, settings)
    session.refresh(job)
    return job_outs(session, [job])[0]
