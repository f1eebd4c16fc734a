"""One upload's entries read with hard caps: the entry type, the limits, and the walk that
counts members and bytes across an upload (loose photos use it directly)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING

from pawdex.core.archive.detection import is_archive
from pawdex.core.archive.names import junk_reason, sanitize_member_name
from pawdex.core.errors import (
    ArchiveLimitExceeded,
    PawdexError,
    UnsafeArchiveMember,
)

if TYPE_CHECKING:
    from pawdex.core.settings import Settings

#: Name of the entries that are about the archive as a whole (limit reached, truncation).
ARCHIVE_ITSELF = "(archive)"

NESTED_ARCHIVE = "nested archives are not indexed; upload it separately"

ARCHIVE_AS_PHOTO = "this is an archive, not a photo; upload it as an archive"

_CHUNK = 1024 * 1024

# Below this many decompressed bytes a high ratio is harmless (a blank 5 kB file deflates
# to a few bytes); above it, the ratio is what gives a zip bomb away.
_RATIO_FLOOR_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int
    max_member_bytes: int
    max_total_bytes: int
    max_ratio: float

    @classmethod
    def from_settings(cls, settings: Settings) -> ArchiveLimits:
        return cls(
            max_members=settings.max_archive_members,
            max_member_bytes=settings.max_member_bytes,
            max_total_bytes=settings.max_archive_total_bytes,
            max_ratio=settings.max_compression_ratio,
        )

    def in_place(self) -> ArchiveLimits:
        """For a folder read where it is: the per-file cap holds, the caps that exist for
        uploads (member count, total bytes) do not."""
        return replace(self, max_members=sys.maxsize, max_total_bytes=sys.maxsize)

    def for_archive(self, archive_bytes: int) -> ArchiveLimits:
        """The total cap for one archive: what the settings say, or twice the archive's own
        size when that is more. A 300 GB archive of photos (stored, not compressible) is read
        to its end; a bomb, small and expanding far beyond itself, still stops at the cap."""
        return replace(self, max_total_bytes=max(self.max_total_bytes, 2 * archive_bytes))


@dataclass(frozen=True)
class InPlace:
    """Where a file of a library lies, as the next scan will compare it."""

    library_id: int
    path: str  # POSIX, relative to the library's root
    size_bytes: int
    mtime_ns: int


@dataclass
class ArchiveEntry:
    """One file of an upload: its bytes, why it was refused, or why it was skipped without
    being read (system clutter: ``.DS_Store``, ``__MACOSX/``…); exactly one of the three.
    A library's file also says where it lies (``in_place``): its original stays there."""

    index: int
    name: str
    data: bytes | None
    error: str | None
    skipped: str | None = None
    in_place: InPlace | None = None

    def __post_init__(self) -> None:
        if sum(v is not None for v in (self.data, self.error, self.skipped)) != 1:
            raise ValueError("an ArchiveEntry has exactly one of data, error or skipped")


def iter_single_files(
    paths: Iterable[tuple[str, Path]], limits: ArchiveLimits
) -> Iterator[ArchiveEntry]:
    """Loose photos (``(client name, path)``) as entries, like an archive's."""
    walk = Walk(limits, nested_message=ARCHIVE_AS_PHOTO)
    for raw_name, path in paths:
        name = sanitize_member_name(raw_name)
        if not walk.admit_member():
            yield walk.members_limit_entry()
            return
        try:
            yield walk.read_file(name, path)
        except ArchiveLimitExceeded as exc:
            yield walk.error(ARCHIVE_ITSELF, str(exc))
            return


class Walk:
    """Counters and caps shared by every member of one upload."""

    def __init__(self, limits: ArchiveLimits, *, nested_message: str) -> None:
        self.limits = limits
        self.nested_message = nested_message
        self.members = 0
        self.total = 0
        self.index = 0

    def admit_member(self) -> bool:
        self.members += 1
        return self.members <= self.limits.max_members

    def members_limit_entry(self) -> ArchiveEntry:
        limit = self.limits.max_members
        return self.error(
            ARCHIVE_ITSELF,
            str(ArchiveLimitExceeded(f"more than {limit} entries; the rest was not read")),
        )

    def total_limit_error(self) -> ArchiveLimitExceeded:
        limit = _human_bytes(self.limits.max_total_bytes)
        return ArchiveLimitExceeded(f"more than {limit} of files in total; the rest was not read")

    def ok(self, name: str, data: bytes) -> ArchiveEntry:
        return self._entry(name, data, None)

    def error(self, name: str, message: str) -> ArchiveEntry:
        return self._entry(name, None, message)

    def skip(self, name: str, reason: str) -> ArchiveEntry:
        return self._entry(name, None, None, reason)

    def _entry(
        self, name: str, data: bytes | None, error: str | None, skipped: str | None = None
    ) -> ArchiveEntry:
        entry = ArchiveEntry(index=self.index, name=name, data=data, error=error, skipped=skipped)
        self.index += 1
        return entry

    def read_file(self, name: str, path: Path) -> ArchiveEntry:
        """A file on disk as an entry: skipped if it is clutter, else read within the caps.
        Raises ArchiveLimitExceeded when an upload-wide cap is reached."""
        if reason := junk_reason(name):
            return self.skip(name, reason)
        try:
            with Path(path).open("rb") as fh:
                return self.ok(name, self.read(fh))
        except ArchiveLimitExceeded:
            raise
        except PawdexError as exc:
            return self.error(name, str(exc))
        except OSError as exc:
            return self.error(name, f"the file cannot be read ({exc.strerror or exc})")

    def read(self, fh: IO[bytes], *, compressed_size: int | None = None) -> bytes:
        """One member's bytes, stopping one byte past any cap; raises when refused."""
        limits = self.limits
        cap = min(limits.max_member_bytes, limits.max_total_bytes - self.total) + 1
        ratio_ceiling = None
        if compressed_size is not None:
            ratio_ceiling = max(_RATIO_FLOOR_BYTES, limits.max_ratio * max(compressed_size, 1))
        chunks: list[bytes] = []
        size = 0
        while size < cap:
            chunk = fh.read(min(_CHUNK, cap - size))
            if not chunk:
                break
            if size == 0 and is_archive(chunk):
                raise UnsafeArchiveMember(self.nested_message)
            size += len(chunk)
            self.total += len(chunk)
            if size > limits.max_member_bytes:
                raise UnsafeArchiveMember(too_large(limits.max_member_bytes))
            if self.total > limits.max_total_bytes:
                raise self.total_limit_error()
            if ratio_ceiling is not None and size > ratio_ceiling:
                raise UnsafeArchiveMember(
                    f"compressed more than {limits.max_ratio:g} times: looks like a zip bomb"
                )
            chunks.append(chunk)
        return b"".join(chunks)


def too_large(limit: int) -> str:
    return f"file is larger than the {_human_bytes(limit)} limit"


def _human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    value = n / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.3g} {unit}"
        value /= 1024
    return f"{value:.3g} GiB" if value < 1000 else f"{value:,.0f} GiB"
