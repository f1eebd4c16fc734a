"""Safe, streaming reading of uploaded archives (zip, tar, tar.gz/bz2/xz) and loose photos.

Nothing is extracted to disk: every member comes back as bytes in an :class:`ArchiveEntry`,
read with hard caps, or as an entry carrying a human error message. Sizes, counts and ratios
are measured on the bytes actually read, never taken from what a header declares. Memory stays
bounded whatever the archive's size: one member at a time, and a zip's central directory is
measured before the standard library loads it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pawdex.core.archive.detection import ArchiveKind, detect_archive_kind
from pawdex.core.archive.folder import iter_folder
from pawdex.core.archive.names import sanitize_member_name
from pawdex.core.archive.tar import open_tar
from pawdex.core.archive.walk import (
    ARCHIVE_AS_PHOTO,
    ARCHIVE_ITSELF,
    NESTED_ARCHIVE,
    ArchiveEntry,
    ArchiveLimits,
    InPlace,
    Walk,
    iter_single_files,
)
from pawdex.core.archive.zip import open_zip
from pawdex.core.errors import UnsupportedArchive


def iter_archive(path: Path, limits: ArchiveLimits) -> Iterator[ArchiveEntry]:
    """Entries of a zip or tar upload, one member at a time.

    Raises UnsupportedArchive (neither zip nor tar) or CorruptArchive (unreadable structure)
    at call time; after that, every problem is an error entry. Directories are skipped. An
    archive-wide stop (limit reached, truncated tar) is one last entry named ARCHIVE_ITSELF.
    """
    path = Path(path)
    kind = detect_archive_kind(path)
    if kind is None:
        raise UnsupportedArchive("not a zip or tar archive")
    walk = Walk(limits, nested_message=NESTED_ARCHIVE)
    if kind == "zip":
        return open_zip(path, walk)
    return open_tar(path, walk)


__all__ = [
    "ARCHIVE_AS_PHOTO",
    "ARCHIVE_ITSELF",
    "NESTED_ARCHIVE",
    "ArchiveEntry",
    "ArchiveKind",
    "ArchiveLimits",
    "InPlace",
    "detect_archive_kind",
    "iter_archive",
    "iter_folder",
    "iter_single_files",
    "sanitize_member_name",
]
