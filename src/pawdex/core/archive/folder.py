"""A folder on this machine, read in place like an archive (``pawdex index --local``): no
copy, no zip. Files come in a stable order (sorted paths), so a resumed ingest skips exactly
what it committed; symbolic links are not followed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from pawdex.core.archive.walk import ArchiveEntry, ArchiveLimits, iter_single_files


def folder_files(root: Path) -> Iterator[tuple[str, Path]]:
    """``(POSIX path, path)`` of every regular file under ``root``, sorted. Names start with
    the folder's own name (``kennel/run-b/rex.jpg``), as they would in a zip of it."""
    root = Path(root).resolve()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        base = Path(folder)
        for name in sorted(files):
            path = base / name
            if path.is_symlink() or not path.is_file():
                continue
            yield f"{root.name}/{path.relative_to(root).as_posix()}", path


def iter_folder(root: Path, limits: ArchiveLimits) -> Iterator[ArchiveEntry]:
    """Every file under ``root`` as an entry. The per-file size cap holds; the caps that
    exist for uploads (member count, total bytes) do not: a folder is read in place."""
    return iter_single_files(folder_files(root), limits.in_place())
