"""Zip archives, read member by member; the central directory is measured before the
standard library loads it."""

from __future__ import annotations

import lzma
import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pawdex.core.archive.names import junk_reason, sanitize_member_name
from pawdex.core.archive.walk import ARCHIVE_ITSELF, ArchiveEntry, ArchiveLimits, Walk, too_large
from pawdex.core.errors import (
    ArchiveLimitExceeded,
    CorruptArchive,
    PawdexError,
    UnsafeArchiveMember,
)

# zipfile loads the whole central directory (about 500 bytes of Python objects per entry):
# refuse one larger than the member limit can justify before it is loaded.
_ZIP_DIRECTORY_BYTES_PER_MEMBER = 256

_ZIP_DIRECTORY_SLACK = 1024 * 1024

_ZIP_MEMBER_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    RuntimeError,
    NotImplementedError,
    struct.error,
)


_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_ZIP_UTF8_FLAG = 0x800


def open_zip(path: Path, walk: Walk) -> Iterator[ArchiveEntry]:
    fh = path.open("rb")
    try:
        directory = _zip_directory_extent(fh)
        declared, directory_size = directory.entries, directory.size
        limits = walk.limits
        budget = limits.max_members * _ZIP_DIRECTORY_BYTES_PER_MEMBER + _ZIP_DIRECTORY_SLACK
        if declared > limits.max_members or directory_size > budget:
            fh.close()
            # The whole directory would have to be loaded to read even the first member.
            message = (
                f"the archive lists {declared} entries, more than the limit of "
                f"{limits.max_members}; nothing was read (split it into smaller archives)"
            )
            if declared <= limits.max_members:
                message = "the archive's directory is too large; nothing was read"
            return iter([walk.error(ARCHIVE_ITSELF, str(ArchiveLimitExceeded(message)))])
        archive = _zip_file(fh, directory)
    except CorruptArchive:
        fh.close()
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        fh.close()
        raise CorruptArchive(f"the zip archive cannot be read ({exc})") from exc
    return _walk_zip(archive, fh, walk)


@dataclass(frozen=True)
class _ZipDirectory:
    entries: int  # as the end record declares them
    size: int  # bytes of the central directory, as declared
    start: int  # where the central directory really is: right before the end records
    shift: int  # bytes prepended to the zip (a self-extractor's stub); never negative


def _zip_directory_extent(fh: IO[bytes]) -> _ZipDirectory:
    """The central directory as the end records declare it, checked against where it is."""
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    start = max(0, size - _EOCD.size - 0xFFFF)
    fh.seek(start)
    tail = fh.read()
    pos = tail.rfind(b"PK\x05\x06")
    while pos >= 0 and len(tail) - pos < _EOCD.size:
        pos = tail.rfind(b"PK\x05\x06", 0, pos)
    if pos < 0:
        raise CorruptArchive("the zip archive has no central directory (truncated upload?)")
    fields = _EOCD.unpack_from(tail, pos)
    entries, directory_size, directory_offset = fields[4], fields[5], fields[6]
    end_at = start + pos
    # Like zipfile: a zip64 locator right before the end record, and the zip64 record right
    # before it, override the end record (whatever its fields say).
    locator_at = end_at - _ZIP64_LOCATOR.size
    if locator_at - _ZIP64_EOCD.size >= 0:
        fh.seek(locator_at - _ZIP64_EOCD.size)
        record = fh.read(_ZIP64_EOCD.size)
        locator = fh.read(_ZIP64_LOCATOR.size)
        if locator[:4] == b"PK\x06\x07" and record[:4] == b"PK\x06\x06":
            zip64 = _ZIP64_EOCD.unpack(record)
            entries, directory_size, directory_offset = zip64[7], zip64[8], zip64[9]
            end_at = locator_at - _ZIP64_EOCD.size
    directory_start = end_at - directory_size
    shift = directory_start - directory_offset
    if directory_start < 0 or shift < 0:
        # zipfile would shift every member's offset by a negative amount and fail on each.
        raise CorruptArchive(
            "the zip archive is damaged (its directory is not where its end record says)"
        )
    return _ZipDirectory(entries, directory_size, directory_start, shift)


def _zip_file(fh: IO[bytes], directory: _ZipDirectory) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(fh)
    except UnicodeDecodeError:
        # A writer flagged as UTF-8 a name in a legacy code page. Read such names as the
        # standard's default (cp437), like any unflagged name, rather than lose the archive.
        return zipfile.ZipFile(_PatchedFile(fh, _unflag_non_utf8_names(fh, directory)))


def _unflag_non_utf8_names(fh: IO[bytes], directory: _ZipDirectory) -> dict[int, bytes]:
    """Patches clearing the UTF-8 flag of non-UTF-8 names, in both headers of each member."""
    fh.seek(directory.start)
    records = fh.read(directory.size)  # its size was checked against the member limit
    patches: dict[int, bytes] = {}
    at = 0
    while at + 46 <= len(records) and records[at : at + 4] == b"PK\x01\x02":
        (flags,) = struct.unpack_from("<H", records, at + 8)
        name_len, extra_len, comment_len = struct.unpack_from("<3H", records, at + 28)
        (local_at,) = struct.unpack_from("<L", records, at + 42)
        name = records[at + 46 : at + 46 + name_len]
        if flags & _ZIP_UTF8_FLAG and not _is_utf8(name):
            patches[directory.start + at + 8] = struct.pack("<H", flags & ~_ZIP_UTF8_FLAG)
            local_at += directory.shift
            fh.seek(local_at)
            local = fh.read(8)
            if local[:4] == b"PK\x03\x04":  # else zipfile reports that member as damaged
                (local_flags,) = struct.unpack_from("<H", local, 6)
                patches[local_at + 6] = struct.pack("<H", local_flags & ~_ZIP_UTF8_FLAG)
        at += 46 + name_len + extra_len + comment_len
    return patches


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class _PatchedFile:
    """A read-only, seekable file seen through a few small byte patches (for zipfile)."""

    def __init__(self, fh: IO[bytes], patches: dict[int, bytes]) -> None:
        self._fh = fh
        self._patches = patches

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def read(self, size: int = -1) -> bytes:
        start = self._fh.tell()
        data = self._fh.read(size)
        end = start + len(data)
        buf: bytearray | None = None
        for at, patch in self._patches.items():
            for pos in range(max(at, start), min(at + len(patch), end)):
                buf = buf if buf is not None else bytearray(data)
                buf[pos - start] = patch[pos - at]
        return data if buf is None else bytes(buf)


def _walk_zip(archive: zipfile.ZipFile, fh: IO[bytes], walk: Walk) -> Iterator[ArchiveEntry]:
    with fh, archive:
        for info in archive.infolist():
            if not walk.admit_member():
                yield walk.members_limit_entry()
                return
            if _zip_is_dir(info):
                continue
            name = sanitize_member_name(_zip_raw_name(info))
            if reason := junk_reason(name):
                yield walk.skip(name, reason)
                continue
            try:
                _refuse_zip_member(info, walk.limits)
                with archive.open(info) as member:
                    data = walk.read(member, compressed_size=info.compress_size)
            except ArchiveLimitExceeded as exc:
                yield walk.error(ARCHIVE_ITSELF, str(exc))
                return
            except PawdexError as exc:
                yield walk.error(name, str(exc))
                continue
            except _ZIP_MEMBER_ERRORS as exc:
                yield walk.error(name, _zip_member_message(exc))
                continue
            yield walk.ok(name, data)


def _zip_raw_name(info: zipfile.ZipInfo) -> str | bytes:
    if info.flag_bits & 0x800:  # the writer declared UTF-8
        return info.filename
    # zipfile decoded the bytes as cp437, a bijection: recover them, so that UTF-8 names
    # written without the flag (common on Windows and macOS) come out right.
    return info.filename.encode("cp437")


def _zip_unix_mode(info: zipfile.ZipInfo) -> int:
    return info.external_attr >> 16


def _zip_is_dir(info: zipfile.ZipInfo) -> bool:
    # Not ZipInfo.is_dir(): it raises IndexError on an empty name (or one that starts with NUL).
    if info.filename.endswith("/") or stat.S_ISDIR(_zip_unix_mode(info)):
        return True
    return info.filename.endswith("\\") and info.file_size == 0


def _refuse_zip_member(info: zipfile.ZipInfo, limits: ArchiveLimits) -> None:
    kind = stat.S_IFMT(_zip_unix_mode(info))
    if kind == stat.S_IFLNK:
        raise UnsafeArchiveMember("symbolic links are not indexed")
    if kind not in (0, stat.S_IFREG):
        raise UnsafeArchiveMember("special files (devices, pipes, sockets) are not indexed")
    if info.flag_bits & 0x1:
        raise UnsafeArchiveMember("encrypted files are not supported; upload it without a password")
    if info.file_size > limits.max_member_bytes:
        raise UnsafeArchiveMember(too_large(limits.max_member_bytes))


def _zip_member_message(exc: Exception) -> str:
    if "CRC" in str(exc):
        return "the file is damaged (checksum mismatch)"
    if isinstance(exc, NotImplementedError):
        return "the file uses a compression method that is not supported"
    if isinstance(exc, RuntimeError) and "encrypted" in str(exc):
        return "encrypted files are not supported; upload it without a password"
    return f"the file cannot be read from the archive ({exc})"
