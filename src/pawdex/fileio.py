"""Files written whole or not at all, and their sha256: one way for every layer.

Stdlib only, so the models (``pawdex.ml``) and the service share it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_path(path: Path, mode: int | None = None) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed over ``path`` when the block
    ends without an error, removed otherwise. Readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if mode is not None:  # mkstemp makes the file private
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(
    path: Path, write: Callable[[IO], object] | bytes | str, *, mode: int | None = None
) -> Path:
    """Write ``path`` atomically: bytes, text (UTF-8), or a function that writes to the open
    file (binary for bytes-like writers, text when ``write`` is a str)."""
    with atomic_path(path, mode) as tmp:
        if isinstance(write, bytes):
            tmp.write_bytes(write)
        elif isinstance(write, str):
            tmp.write_text(write, encoding="utf-8")
        else:
            with tmp.open("wb") as fh:
                write(fh)
    return path


def atomic_write_text(
    path: Path, write: Callable[[IO[str]], object], *, mode: int | None = None
) -> Path:
    """``atomic_write`` for a function that writes text (CSV, JSON)."""
    with atomic_path(path, mode) as tmp, tmp.open("w", encoding="utf-8", newline="") as fh:
        write(fh)
    return path


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    with Path(path).open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
