"""Delete with undo: photos, animals, jobs and libraries go to a trash, from which they can
be restored until ``trash_retention_days`` have passed; then they are purged, files
included.

A photo in the trash keeps its row (its sha256 still answers "already have it" to a rerun
of ``pawdex index``, and an upload of the same bytes is a duplicate of the trashed photo,
not a way round the deletion); its predictions move to ``trashed_predictions``, so no
catalogue query, index or tally sees it. Deleting a job or a library trashes only the
photos nothing else holds: another upload of the same bytes, or a file of another library,
keeps a photo in the catalogue. Every deletion is a ``Deletion`` row, kept forever: what,
who, when, and whether it was restored or purged (by whom, when).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import (
    ColumnElement,
    Select,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from pawdex.core.animals import ONE_PER_PHOTO, assign_animals
from pawdex.core.cursors import cursor_row_id, decode_cursor, encode_cursor
from pawdex.core.errors import PawdexError
from pawdex.core.jobs import JobConflict
from pawdex.core.models import (
    FINISHED_STATUSES,
    Animal,
    ApiKey,
    Deletion,
    DeletionKind,
    Image,
    Job,
    JobImage,
    JobKind,
    Library,
    LibraryFile,
    Prediction,
    Role,
    TrashedPrediction,
    utcnow,
)
from pawdex.core.settings import Settings
from pawdex.core.storage import Storage

UPLOADS = (JobKind.images, JobKind.archive)  # the jobs that bring photos and so hold them
# Every column but the id: SQLite reuses the id of a deleted row, so an id cannot follow a
# prediction in and out of the trash.
_MOVED = [column.name for column in TrashedPrediction.__table__.columns if column.name != "id"]


class NotYours(PawdexError):
    """An archivist deleting, or restoring, what another key uploaded or deleted."""


class NothingToDelete(PawdexError):
    """Photos that do not exist, or are already in the trash."""


def _may_delete_everything(key: ApiKey) -> bool:
    return key.role.allows(Role.admin)


def _uploads_holding() -> Select:
    """The upload jobs that brought the photo (``Image``, correlated)."""
    return (
        select(JobImage.image_id)
        .join(Job, Job.id == JobImage.job_id)
        .where(JobImage.image_id == Image.id, Job.kind.in_(UPLOADS))
    )


def _held_elsewhere(job_id: str | None = None, library_id: int | None = None) -> ColumnElement:
    """The photo is held by a live upload job other than ``job_id``, or by a file of a live
    library other than ``library_id``: deleting that job or library leaves it in place."""
    upload = _uploads_holding().where(Job.deletion_id.is_(None))
    if job_id is not None:
        upload = upload.where(JobImage.job_id != job_id)
    library = (
        select(LibraryFile.image_id)
        .join(Library, Library.id == LibraryFile.library_id)
        .where(LibraryFile.image_id == Image.id, Library.deletion_id.is_(None))
    )
    if library_id is not None:
        library = library.where(LibraryFile.library_id != library_id)
    return or_(exists(upload), exists(library))


def _not_own_upload(key: ApiKey) -> ColumnElement:
    """The photo is held by a live upload of another key, or by no upload of ``key``'s (a
    library's photo, say): an archivist may not delete it."""
    others = _uploads_holding().where(
        Job.deletion_id.is_(None),
        or_(Job.created_by_key_id.is_(None), Job.created_by_key_id != key.id),
    )
    mine = _uploads_holding().where(Job.created_by_key_id == key.id)
    return or_(exists(others), ~exists(mine))


def _open(
    session: Session, kind: DeletionKind, name: str, key: ApiKey, settings: Settings,
    target: str | None = None,
) -> Deletion:  # fmt: skip
    now = utcnow()
    deletion = Deletion(
        kind=kind, target=target, name=name[:300], photos=0, deleted_by=key.name,
        deleted_by_key_id=key.id, deleted_at=now,
        purge_after=now + timedelta(days=settings.trash_retention_days),
    )  # fmt: skip
    session.add(deletion)
    session.flush()
    return deletion


def _trash(session: Session, deletion: Deletion, photos: Select) -> int:
    """Send the live photos ``photos`` selects (their ids) to the trash with ``deletion``,
    their predictions set aside, and the animals they leave without a live photo with them."""
    chosen = session.execute(
        update(Image)
        .where(Image.id.in_(photos.scalar_subquery()), Image.deletion_id.is_(None))
        .values(deletion_id=deletion.id)
        .execution_options(synchronize_session=False)
    ).rowcount
    mine = select(Image.id).where(Image.deletion_id == deletion.id).scalar_subquery()
    _move(session, Prediction, TrashedPrediction, mine)
    live = exists().where(Image.animal_id == Animal.id, Image.deletion_id.is_(None))
    session.execute(
        update(Animal)
        .where(
            Animal.id.in_(select(Image.animal_id).where(Image.deletion_id == deletion.id)),
            Animal.deletion_id.is_(None),
            ~live,
        )
        .values(deletion_id=deletion.id)
        .execution_options(synchronize_session=False)
    )
    deletion.photos = chosen or 0
    return deletion.photos


def _move(session: Session, source: type, target: type, ids) -> None:
    """Rows of ``source`` whose photo is among ``ids`` into ``target``, column for column."""
    columns = [getattr(source, name) for name in _MOVED]
    session.execute(
        insert(target).from_select(_MOVED, select(*columns).where(source.image_id.in_(ids)))
    )
    session.execute(
        delete(source).where(source.image_id.in_(ids)).execution_options(synchronize_session=False)
    )


def trashed_predictions_hidden(session: Session, image_ids: Iterable[int]) -> None:
    """Set aside the predictions just written for photos that are in the trash (a job's
    classify, or a re-index of every photo, that ran after the photo was deleted): restored
    with the photo, in place of what the trash held of the same model."""
    ids = select(Image.id).where(Image.id.in_(list(image_ids)), Image.deletion_id.isnot(None))
    if not session.scalar(select(exists(ids))):
        return
    newer = select(Prediction.image_id, Prediction.model_version_id).where(
        Prediction.image_id.in_(ids.scalar_subquery())
    )
    session.execute(
        delete(TrashedPrediction)
        .where(tuple_(TrashedPrediction.image_id, TrashedPrediction.model_version_id).in_(newer))
        .execution_options(synchronize_session=False)
    )
    _move(session, Prediction, TrashedPrediction, ids.scalar_subquery())


def trash_photos(
    session: Session, image_ids: list[int], key: ApiKey, settings: Settings
) -> Deletion:
    """Photos, as chosen by people (whatever else holds them)."""
    wanted = select(Image.id).where(Image.id.in_(image_ids), Image.deletion_id.is_(None))
    live = list(session.scalars(wanted))
    if not live:
        raise NothingToDelete("no such photos, or they are already in the trash")
    if not _may_delete_everything(key):
        theirs = session.scalars(wanted.where(_not_own_upload(key)).limit(5)).all()
        if theirs:
            raise NotYours(
                f"photos {', '.join(map(str, theirs))} are not only from your own uploads: "
                "ask an admin"
            )
    name = f"photo {live[0]}" if len(live) == 1 else f"{len(live)} photos"
    deletion = _open(session, DeletionKind.photos, name, key, settings)
    _trash(session, deletion, select(Image.id).where(Image.id.in_(live)))
    return deletion


def trash_animal(session: Session, animal: Animal, key: ApiKey, settings: Settings) -> Deletion:
    """An animal and all its photos."""
    photos = select(Image.id).where(Image.animal_id == animal.id, Image.deletion_id.is_(None))
    others = photos.where(_not_own_upload(key))
    if not _may_delete_everything(key) and session.scalar(select(exists(others))):
        raise NotYours(f"animal {animal.id} has photos that are not from your uploads")
    label = animal.external_id or f"#{animal.id}"
    name = f"animal {label}" + (f" ({animal.name})" if animal.name else "")
    deletion = _open(session, DeletionKind.animal, name, key, settings, target=str(animal.id))
    _trash(session, deletion, photos)
    animal.deletion_id = deletion.id
    return deletion


def trash_job(session: Session, job: Job, key: ApiKey, settings: Settings) -> Deletion:
    """A finished job, and the photos it brought that nothing else holds. Scans and
    re-indexes hold no photos of their own: only the job's record goes."""
    if not _may_delete_everything(key) and job.created_by_key_id != key.id:
        raise NotYours(f"job {job.id} is not one of your uploads")
    if job.status not in FINISHED_STATUSES:
        raise JobConflict(f"job {job.id} is {job.status.value}: cancel it first")
    name = f"job {job.name or job.id}"
    deletion = _open(session, DeletionKind.job, name, key, settings, target=job.id)
    job.deletion_id = deletion.id
    if job.kind in UPLOADS:
        photos = (
            select(JobImage.image_id)
            .join(Image, Image.id == JobImage.image_id)
            .where(JobImage.job_id == job.id, ~_held_elsewhere(job_id=job.id))
        )
        _trash(session, deletion, photos)
    return deletion


def trash_library(session: Session, library: Library, key: ApiKey, settings: Settings) -> Deletion:
    """A library (admins): it is no longer scanned, and its photos that no upload and no
    other library holds go with it. Its folder is never touched."""
    running = library.last_job
    if running is not None and running.status not in FINISHED_STATUSES:
        raise JobConflict(f"library {library.name!r} is being scanned (job {running.id})")
    name = f"library {library.name} ({library.root})"
    deletion = _open(session, DeletionKind.library, name, key, settings, target=str(library.id))
    library.deletion_id = deletion.id
    photos = (
        select(LibraryFile.image_id)
        .join(Image, Image.id == LibraryFile.image_id)
        .where(LibraryFile.library_id == library.id, ~_held_elsewhere(library_id=library.id))
    )
    _trash(session, deletion, photos)
    return deletion


def _check_owner(deletion: Deletion, key: ApiKey) -> None:
    if not _may_delete_everything(key) and deletion.deleted_by_key_id != key.id:
        raise NotYours(f"deletion {deletion.id} was made by another key: ask an admin")


def _check_in_trash(deletion: Deletion) -> None:
    if deletion.purged_at is not None:
        raise JobConflict(f"deletion {deletion.id} was purged at {deletion.purged_at:%Y-%m-%d}")
    if deletion.restored_at is not None:
        raise JobConflict(f"deletion {deletion.id} was already restored")


def restore(session: Session, deletion: Deletion, key: ApiKey) -> Deletion:
    """Everything the deletion sent to the trash comes back as it was: predictions,
    labels, animals (a photo whose animal is gone since gets one of its own), the job or
    library."""
    _check_owner(deletion, key)
    _check_in_trash(deletion)
    mine = select(Image.id).where(Image.deletion_id == deletion.id).scalar_subquery()
    _move(session, TrashedPrediction, Prediction, mine)
    # A photo's animal may have gone to the trash with another deletion since: it comes back.
    session.execute(
        update(Animal)
        .where(
            or_(
                Animal.deletion_id == deletion.id,
                Animal.id.in_(select(Image.animal_id).where(Image.deletion_id == deletion.id)),
            )
        )
        .values(deletion_id=None)
        .execution_options(synchronize_session=False)
    )
    homeless = session.execute(
        select(Image.id, Image.path).where(
            Image.deletion_id == deletion.id, Image.animal_id.is_(None)
        )
    ).all()
    assign_animals(session, ONE_PER_PHOTO, [tuple(row) for row in homeless])
    for model in (Image, Job, Library):
        session.execute(
            update(model)
            .where(model.deletion_id == deletion.id)
            .values(deletion_id=None)
            .execution_options(synchronize_session=False)
        )
    deletion.restored_at, deletion.restored_by = utcnow(), key.name
    return deletion


@dataclass
class Purged:
    deletion: Deletion
    files: list[str]  # storage keys no photo refers to any more: removed after the commit


def purge(session: Session, deletion: Deletion, by: str) -> Purged:
    """Delete for good what the deletion holds: its photos (their predictions, labels and
    the jobs' records of them), its job, library or animal. Returns the files to remove once
    this is committed: the photos' originals and thumbnails that no other photo uses."""
    _check_in_trash(deletion)
    rows = session.execute(
        select(Image.id, Image.stored_path, Image.thumbnail_path).where(
            Image.deletion_id == deletion.id
        )
    ).all()
    ids = [row.id for row in rows]
    for start in range(0, len(ids), 500):
        session.execute(delete(Image).where(Image.id.in_(ids[start : start + 500])))
    for model in (Animal, Job, Library):
        session.execute(delete(model).where(model.deletion_id == deletion.id))
    keys = {key for row in rows for key in (row.stored_path, row.thumbnail_path) if key}
    still_used = set()
    for start in range(0, len(keys), 500):
        chunk = sorted(keys)[start : start + 500]
        still_used.update(
            session.scalars(select(Image.stored_path).where(Image.stored_path.in_(chunk)))
        )
        still_used.update(
            session.scalars(select(Image.thumbnail_path).where(Image.thumbnail_path.in_(chunk)))
        )
    deletion.purged_at, deletion.purged_by = utcnow(), by
    return Purged(deletion, sorted(keys - still_used))


def remove_files(storage: Storage, keys: Iterable[str]) -> None:
    for key in keys:
        storage.delete(key)


def expired(session: Session, limit: int = 10) -> list[Deletion]:
    """Deletions whose time in the trash is over, oldest first; several sweepers never take
    the same one (SKIP LOCKED)."""
    stmt = (
        select(Deletion)
        .where(
            Deletion.purge_after <= utcnow(),
            Deletion.restored_at.is_(None),
            Deletion.purged_at.is_(None),
        )
        .order_by(Deletion.purge_after, Deletion.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(stmt))


def list_deletions(
    session: Session, key: ApiKey, state: str | None, limit: int, cursor: str | None
) -> tuple[list[Deletion], str | None]:
    """Newest first. Archivists see their own deletions; admins everyone's. ``state``:
    ``trash`` (restorable), ``restored``, ``purged``, or every deletion."""
    stmt = select(Deletion)
    if not _may_delete_everything(key):
        stmt = stmt.where(Deletion.deleted_by_key_id == key.id)
    if state == "trash":
        stmt = stmt.where(Deletion.restored_at.is_(None), Deletion.purged_at.is_(None))
    elif state == "restored":
        stmt = stmt.where(Deletion.restored_at.isnot(None))
    elif state == "purged":
        stmt = stmt.where(Deletion.purged_at.isnot(None))
    if cursor:
        stmt = stmt.where(Deletion.id < cursor_row_id(decode_cursor(cursor)))
    rows = list(session.scalars(stmt.order_by(Deletion.id.desc()).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


def trash_counts(session: Session, deletion_ids: list[int]) -> dict[int, int]:
    """Photos each deletion still holds in the trash."""
    if not deletion_ids:
        return {}
    stmt = (
        select(Image.deletion_id, func.count())
        .where(Image.deletion_id.in_(deletion_ids))
        .group_by(Image.deletion_id)
    )
    return {deletion_id: count for deletion_id, count in session.execute(stmt)}
