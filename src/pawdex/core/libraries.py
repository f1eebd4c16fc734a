"""Libraries: folders on the server indexed in place.

An admin registers a folder (a mounted NAS share) inside one of the roots the operator
allowed (``PAWDEX_LIBRARY_ROOTS``). A scan is an ordinary job (kind ``scan``, origin
``library``) run by the ingest worker: it reads only files that are new or whose size or
modification time changed since the last scan, stores their thumbnails (never the
originals), and at its end drops what went away. Originals are served from the folder,
confined to the library's root: no ``..``, no symbolic link out of it.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from pawdex.core.animals import Grouping
from pawdex.core.archive.folder import folder_files
from pawdex.core.archive.walk import (
    NESTED_ARCHIVE,
    ArchiveEntry,
    ArchiveLimits,
    InPlace,
    Walk,
)
from pawdex.core.errors import PawdexError
from pawdex.core.jobs import NAME_MAX, JobConflict
from pawdex.core.models import (
    FINISHED_STATUSES,
    Image,
    Job,
    JobKind,
    JobOrigin,
    Library,
    LibraryFile,
    utcnow,
)
from pawdex.core.settings import Settings
from pawdex.core.storage import Storage

log = logging.getLogger("pawdex.libraries")
STAT_CHUNK = 500  # files compared with what the last scan saw, per query
SCHEDULED = "scheduled scan"  # who started a scan the sweeper queued


class LibraryRefused(PawdexError):
    """A folder that cannot be a library (outside the allowed roots, missing, taken)."""


class OriginalUnavailable(PawdexError):
    """A library photo whose file is gone or changed since the last scan."""


def allowed_root(folder: str, settings: Settings) -> Path:
    """``folder`` resolved (symbolic links followed) if it is a folder inside one of the
    allowed roots; else LibraryRefused, saying why."""
    roots = [Path(root).resolve() for root in settings.library_roots]
    if not roots:
        raise LibraryRefused(
            "no folder may be a library: the operator allows them with PAWDEX_LIBRARY_ROOTS"
        )
    if not folder or not os.path.isabs(folder):
        raise LibraryRefused(f"give the folder's absolute path on the server, not {folder!r}")
    path = Path(folder).resolve()
    if not any(path == root or path.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(root) for root in roots)
        raise LibraryRefused(f"{folder} is not inside an allowed library root ({allowed})")
    if not path.is_dir():
        raise LibraryRefused(f"{folder} is not a folder on the server")
    return path


def register_library(
    session: Session, name: str, folder: str, settings: Settings, created_by: str | None,
    grouping: str = "photo",
) -> Library:  # fmt: skip
    grouping = Grouping.parse(grouping).text
    root = allowed_root(folder, settings)
    name = name.strip()[:NAME_MAX] or root.name
    for other in session.scalars(select(Library)):
        trashed = " (in the trash: restore or purge it)" if other.deletion_id else ""
        if other.name == name:
            raise LibraryRefused(f"a library is already called {name!r}{trashed}")
        other_root = Path(other.root)
        if root == other_root or root.is_relative_to(other_root) or other_root.is_relative_to(root):
            raise LibraryRefused(f"{root} overlaps library {other.name!r} ({other.root}){trashed}")
    library = Library(name=name, root=str(root), created_by=created_by, grouping=grouping)
    session.add(library)
    session.flush()
    return library


def create_scan_job(session: Session, library: Library, created_by: str | None) -> Job:
    """A scan of ``library`` as a job; JobConflict while one is still going."""
    running = library.last_job
    if running is not None and running.status not in FINISHED_STATUSES:
        raise JobConflict(f"library {library.name!r} is being scanned (job {running.id})")
    job = Job(
        kind=JobKind.scan, source=[{"library": library.id}], name=library.name,
        origin=JobOrigin.library, created_by=created_by, grouping=library.grouping,
    )  # fmt: skip
    session.add(job)
    session.flush()
    library.last_job = job
    return job


def due_scans(session: Session, interval: float) -> list[Job]:
    """Scan jobs for the libraries whose last scan ended more than ``interval`` seconds ago
    (or that were never scanned). Several sweepers never pick the same library (SKIP
    LOCKED), and a library being scanned is left alone."""
    ended = utcnow() - timedelta(seconds=interval)
    stmt = (
        select(Library)
        .outerjoin(Job, Job.id == Library.last_job_id)
        .where(Library.deletion_id.is_(None))
        .where(Job.id.is_(None) | (Job.status.in_(FINISHED_STATUSES) & (Job.finished_at < ended)))
        .order_by(Library.id)
        .with_for_update(of=Library, skip_locked=True)
    )
    return [
        create_scan_job(session, library, created_by=SCHEDULED) for library in session.scalars(stmt)
    ]


def library_files_count(session: Session, library_id: int) -> tuple[int, int]:
    """Files the last scans recorded, and how many of them are photos."""
    files, photos = session.execute(
        select(func.count(), func.count(LibraryFile.image_id)).where(
            LibraryFile.library_id == library_id
        )
    ).one()
    return files, photos


def scan_entries(
    job: Job, sessions: sessionmaker[Session], limits: ArchiveLimits
) -> Iterator[ArchiveEntry]:
    """The library's new and changed files as entries, in a stable order; unchanged ones are
    marked seen by this scan (``seen_job_id``) and not read. A resumed scan finds what an
    earlier delivery committed unchanged, so it carries on where that one stopped."""
    library_id = job.source[0]["library"]
    with sessions() as session:
        library = session.get(Library, library_id)
        if library is None:
            return
        root = Path(library.root)
    if not root.is_dir():
        yield ArchiveEntry(index=0, name=root.name, data=None,
                           error="the library's folder is not there (unmounted?)")  # fmt: skip
        return
    walk = Walk(limits.in_place(), nested_message=NESTED_ARCHIVE)
    files = folder_files(root)
    while chunk := list(itertools.islice(files, STAT_CHUNK)):
        found: dict[str, tuple[str, Path, int, int]] = {}
        for name, path in chunk:
            try:
                stat = path.stat(follow_symlinks=False)
            except OSError:  # gone since the walk listed it: the end of the scan drops it
                continue
            relative = path.relative_to(root).as_posix()
            found[relative] = (name, path, stat.st_size, stat.st_mtime_ns)
        with sessions.begin() as session:
            recorded = {
                path: (size, mtime)
                for path, size, mtime in session.execute(
                    select(LibraryFile.path, LibraryFile.size_bytes, LibraryFile.mtime_ns)
                    .where(LibraryFile.library_id == library_id)
                    .where(LibraryFile.path.in_(found))
                )
            }
            unchanged = [
                rel for rel, (_name, _path, size, mtime) in found.items()
                if recorded.get(rel) == (size, mtime)
            ]  # fmt: skip
            if unchanged:
                session.execute(
                    update(LibraryFile)
                    .where(LibraryFile.library_id == library_id)
                    .where(LibraryFile.path.in_(unchanged))
                    .values(seen_job_id=job.id)
                )
        for rel in unchanged:
            del found[rel]
        for rel, (name, path, size, mtime) in found.items():
            where = InPlace(library_id, rel, size, mtime)
            yield dataclasses.replace(walk.read_file(name, path), in_place=where)


def record_files(session: Session, job_id: str, files: list[tuple[InPlace, int | None]]) -> None:
    """What this scan read (``image_id`` None: not a photo), as the next scan compares it:
    one query for the batch's known rows, then their updates and the new rows."""
    if not files:
        return
    library_id = files[0][0].library_id
    rows = {
        row.path: row
        for row in session.scalars(
            select(LibraryFile).where(
                LibraryFile.library_id == library_id,
                LibraryFile.path.in_([where.path for where, _ in files]),
            )
        )
    }
    for where, image_id in files:
        row = rows.get(where.path)
        if row is None:
            row = rows[where.path] = LibraryFile(library_id=library_id, path=where.path)
            session.add(row)
        row.size_bytes, row.mtime_ns = where.size_bytes, where.mtime_ns
        row.image_id, row.seen_job_id = image_id, job_id


@dataclass(frozen=True)
class ScanEnd:
    removed: int  # files the last scan saw that are gone
    dropped: int  # photos that left the catalogue with them (no other file, no stored copy)
    unchanged: int


def finish_scan(session: Session, job: Job, storage: Storage) -> ScanEnd:
    """Forget the files this scan did not see, drop the photos nothing holds any more (a
    library photo whose file went away or changed content, with no stored original), and say
    so in the job's message."""
    library_id = job.source[0]["library"]
    mine = LibraryFile.library_id == library_id
    seen = session.scalar(select(func.count()).where(mine, LibraryFile.seen_job_id == job.id))
    root = Path(session.get(Library, library_id).root)
    if not seen and session.scalar(select(exists().where(mine))) and looks_unmounted(root):
        job.message = (
            "the library's folder is empty or missing (an unmounted share?): nothing removed; "
            "scan again once it is back"
        )
        return ScanEnd(removed=0, dropped=0, unchanged=0)
    gone = mine & (LibraryFile.seen_job_id.is_(None) | (LibraryFile.seen_job_id != job.id))
    removed = session.execute(delete(LibraryFile).where(gone)).rowcount or 0
    orphans = session.execute(
        select(Image.id, Image.thumbnail_path).where(
            Image.stored_path.is_(None),
            ~exists().where(LibraryFile.image_id == Image.id),
            Image.deletion_id.is_(None),  # one in the trash waits for its purge
        )
    ).all()
    for start in range(0, len(orphans), 500):
        ids = [row.id for row in orphans[start : start + 500]]
        session.execute(delete(Image).where(Image.id.in_(ids)))
    end = ScanEnd(removed=removed, dropped=len(orphans), unchanged=max(0, (seen or 0) - job.total))
    job.message = f"{end.unchanged} files unchanged since the last scan, {end.removed} removed" + (
        f" ({end.dropped} photos left the catalogue)" if end.dropped else ""
    )
    # Thumbnails are named by content: the photos are gone, so are theirs.
    for row in orphans:
        if row.thumbnail_path:
            storage.delete(row.thumbnail_path)
    return end


def looks_unmounted(root: Path) -> bool:
    """A share that is not mounted: its folder is missing, or is an empty mount point
    directory (a mounted share that was emptied is a mount point: that is a deletion)."""
    try:
        return not any(root.iterdir()) and not os.path.ismount(root)
    except OSError:
        return True


def original_path(session: Session, image: Image, storage: Storage) -> Path | None:
    """Where the photo's original can be read: the storage, or its file in a library
    (confined to the library's root, unchanged since the scan that read it). None: the
    stored copy is an object in object storage, read by its key (``image.stored_path``)."""
    if image.stored_path:
        return storage.local_path(image.stored_path)
    rows = session.execute(
        select(LibraryFile, Library.root)
        .join(Library, Library.id == LibraryFile.library_id)
        .where(LibraryFile.image_id == image.id)
        .order_by(LibraryFile.id)
    ).all()
    for row, root in rows:
        path = library_path(Path(root), row.path)
        if path is None:
            continue
        stat = path.stat()
        if stat.st_size == row.size_bytes and stat.st_mtime_ns == row.mtime_ns:
            return path
    raise OriginalUnavailable(
        f"the original of image {image.id} is no longer in its library as scanned: "
        "re-scan the library"
    )


def library_path(root: Path, relative: str) -> Path | None:
    """``root/relative`` if it is a regular file inside ``root`` once every symbolic link
    is resolved; None otherwise (missing, or pointing out of the library)."""
    root = root.resolve()
    try:
        path = (root / relative).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path
