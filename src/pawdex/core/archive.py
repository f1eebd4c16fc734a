"""Safe, streaming reading of uploaded archives (zip, tar, tar.gz/bz2/xz) and loose photos.

Nothing is extracted to disk: every member comes back as bytes in an :class:`ArchiveEntry`,
read with hard caps, or as an entry carrying a human error message. Sizes, counts and ratios
are measured on the bytes actually read, never taken from what a header declares. Memory stays
bounded whatever the archive's size: one member at a time, and a zip's central directory is
measured before the standard library loads it.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
import stat
import struct
import tarfile
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

from pawdex.core.errors import (
    ArchiveLimitExceeded,
    CorruptArchive,
    PawdexError,
    UnsafeArchiveMember,
    UnsupportedArchive,
)

if TYPE_CHECKING:
    from pawdex.core.settings import Settings

ArchiveKind = Literal["zip", "tar"]

#: Name of the entries that are about the archive as a whole (limit reached, truncation).
ARCHIVE_ITSELF = "(archive)"

NESTED_ARCHIVE = "nested archives are not indexed; upload it separately"
ARCHIVE_AS_PHOTO = "this is an archive, not a photo; upload it as an archive"

_CHUNK = 1024 * 1024
# Below this many decompressed bytes a high ratio is harmless (a blank 5 kB file deflates
# to a few bytes); above it, the ratio is what gives a zip bomb away.
_RATIO_FLOOR_BYTES = 1024 * 1024
# zipfile loads the whole central directory (about 500 bytes of Python objects per entry):
# refuse one larger than the member limit can justify before it is loaded.
_ZIP_DIRECTORY_BYTES_PER_MEMBER = 256
_ZIP_DIRECTORY_SLACK = 1024 * 1024
# Pax and GNU long-name headers are read whole into memory by tarfile.
_TAR_MAX_META_BYTES = 1024 * 1024
# Backstop on the decompressed tar stream (headers, padding and skipped data included).
_TAR_STREAM_SLACK = 1024 * 1024
_TAR_BYTES_PER_MEMBER_HEADER = 1536

_SNIFF_BYTES = 1024
_COMPRESSED_SNIFF_BYTES = 4 * 1024 * 1024

_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_OTHER_ARCHIVE_MAGICS = (b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07")
_COMPRESSION_MAGICS = {b"\x1f\x8b": "gz", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz"}

_NAME_COMPONENT_MAX = 120
_NAME_TOTAL_MAX = 400
_EXTENSION_MAX = 16
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})
_NO_PART = frozenset({"", ".", ".."})
_DRIVE = re.compile(r"[A-Za-z]:")

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
_TAR_STREAM_ERRORS = (
    tarfile.TarError,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    RecursionError,
    struct.error,
)


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


@dataclass
class ArchiveEntry:
    """One file of an upload: its bytes, or why it was refused (exactly one of the two)."""

    index: int
    name: str
    data: bytes | None
    error: str | None

    def __post_init__(self) -> None:
        if (self.data is None) == (self.error is None):
            raise ValueError("an ArchiveEntry has either data or an error")


# --------------------------------------------------------------------------- names


def sanitize_member_name(raw: str | bytes, *, legacy_encoding: str = "cp437") -> str:
    """A relative POSIX path that cannot escape, fit to show and store.

    Bytes that are not UTF-8 are decoded with ``legacy_encoding`` (cp437 for zip, where it
    is the standard's default; tar passes latin-1). Folders are kept; ``.``/``..``, drive
    letters, leading slashes and control characters are dropped.
    """
    text = _decode_name(raw, legacy_encoding)
    text = unicodedata.normalize("NFC", text.replace("\\", "/"))
    text = "".join(ch for ch in text if unicodedata.category(ch) not in _DROPPED_CATEGORIES)
    parts = [part for part in (p.strip() for p in text.split("/")) if part not in _NO_PART]
    if parts and _DRIVE.match(parts[0]):
        parts[0] = parts[0][2:].strip()  # "C:" or "C:name"
    parts = [_cap_component(p) for p in parts if p not in _NO_PART]
    if not parts:
        return "unnamed"
    return _cap_path(parts)


def _decode_name(raw: str | bytes, legacy_encoding: str) -> str:
    if isinstance(raw, str):
        try:
            raw.encode("utf-8")
            return raw
        except UnicodeEncodeError:  # undecodable bytes carried as surrogates
            raw = raw.encode("utf-8", "surrogateescape" if _escapable(raw) else "replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode(legacy_encoding, "replace")


def _escapable(text: str) -> bool:
    return all(not 0xD800 <= ord(ch) <= 0xDFFF or 0xDC80 <= ord(ch) <= 0xDCFF for ch in text)


def _cap_component(part: str) -> str:
    if len(part) <= _NAME_COMPONENT_MAX:
        return part
    stem, dot, ext = part.rpartition(".")
    if dot and stem and len(ext) + 1 <= _EXTENSION_MAX:
        return stem[: _NAME_COMPONENT_MAX - len(ext) - 1].rstrip() + "." + ext
    return part[:_NAME_COMPONENT_MAX]


def _cap_path(parts: list[str]) -> str:
    name = parts[-1]
    folders = "/".join(parts[:-1])
    budget = _NAME_TOTAL_MAX - len(name) - 1
    if len(folders) > budget:
        # Keep the top folders (animal, year...) and the file name; cut in the middle.
        folders = folders[: budget + 1].rpartition("/")[0]
    return f"{folders}/{name}" if folders else name


# --------------------------------------------------------------------------- detection


def detect_archive_kind(path: Path) -> ArchiveKind | None:
    """``"zip"`` or ``"tar"`` (plain, gz, bz2, xz) from the file's bytes, never its name."""
    with Path(path).open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
        if _compression_of(head) is not None:
            head += fh.read(_COMPRESSED_SNIFF_BYTES)
    return _kind_from_head(head, strict=False)


def _kind_from_head(head: bytes, *, strict: bool) -> ArchiveKind | None:
    """``strict`` is for members (magic numbers only); uploads may be old v7 tars too."""
    if head.startswith(_ZIP_MAGICS):
        return "zip"
    compression = _compression_of(head)
    if compression is None:
        return "tar" if _is_tar_header(head, strict=strict) else None
    try:
        inner = _decompressed_prefix(compression, head, 2 * tarfile.BLOCKSIZE)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
        return None if strict else "tar"  # a damaged compressed tar: reading will say so
    if not inner and not strict:
        return "tar"  # nothing decoded yet (bz2 blocks are large): let tarfile decide
    return "tar" if _is_tar_header(inner, strict=strict) else None


def _compression_of(head: bytes) -> str | None:
    for magic, name in _COMPRESSION_MAGICS.items():
        if head.startswith(magic):
            return name
    return None


def _decompressed_prefix(compression: str, data: bytes, size: int) -> bytes:
    if compression == "gz":
        return zlib.decompressobj(wbits=31).decompress(data, size)
    if compression == "bz2":
        return bz2.BZ2Decompressor().decompress(data, max_length=size)
    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data, max_length=size)


def _is_tar_header(block: bytes, *, strict: bool) -> bool:
    if len(block) < tarfile.BLOCKSIZE:
        return False
    has_magic = block[257:262] == b"ustar"
    if strict:  # a member's bytes: both the magic and a valid checksum
        return has_magic and _tar_checksum_ok(block[: tarfile.BLOCKSIZE])
    if has_magic or block[: 2 * tarfile.BLOCKSIZE] == bytes(2 * tarfile.BLOCKSIZE):
        return True  # ustar (damaged or not: reading will tell), or an empty tar
    return _tar_checksum_ok(block[: tarfile.BLOCKSIZE])  # old v7 tars have no magic


def _tar_checksum_ok(block: bytes) -> bool:
    field = block[148:156].replace(b"\0", b" ").strip()
    try:
        stored = int(field, 8)
    except ValueError:
        return False
    unsigned = sum(block[:148]) + 8 * 0x20 + sum(block[156:])
    signed = sum(struct.unpack("148b8x356b", block)) + 8 * 0x20
    return stored in (unsigned, signed)


# --------------------------------------------------------------------------- walking


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
    walk = _Walk(limits, nested_message=NESTED_ARCHIVE)
    if kind == "zip":
        return _open_zip(path, walk)
    return _open_tar(path, walk)


def iter_single_files(
    paths: list[tuple[str, Path]], limits: ArchiveLimits
) -> Iterator[ArchiveEntry]:
    """Loose uploaded photos (``(client name, spooled path)``) as entries, like an archive's."""
    walk = _Walk(limits, nested_message=ARCHIVE_AS_PHOTO)
    for raw_name, path in paths:
        name = sanitize_member_name(raw_name)
        if not walk.admit_member():
            yield walk.members_limit_entry()
            return
        try:
            with Path(path).open("rb") as fh:
                data = walk.read(fh)
        except ArchiveLimitExceeded as exc:
            yield walk.error(ARCHIVE_ITSELF, str(exc))
            return
        except PawdexError as exc:
            yield walk.error(name, str(exc))
            continue
        except OSError as exc:
            yield walk.error(name, f"the uploaded file cannot be read ({exc.strerror or exc})")
            continue
        yield walk.ok(name, data)


class _Walk:
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

    def _entry(self, name: str, data: bytes | None, error: str | None) -> ArchiveEntry:
        entry = ArchiveEntry(index=self.index, name=name, data=data, error=error)
        self.index += 1
        return entry

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
            if size == 0 and _is_archive(chunk):
                raise UnsafeArchiveMember(self.nested_message)
            size += len(chunk)
            self.total += len(chunk)
            if size > limits.max_member_bytes:
                raise UnsafeArchiveMember(_too_large(limits.max_member_bytes))
            if self.total > limits.max_total_bytes:
                raise self.total_limit_error()
            if ratio_ceiling is not None and size > ratio_ceiling:
                raise UnsafeArchiveMember(
                    f"compressed more than {limits.max_ratio:g} times: looks like a zip bomb"
                )
            chunks.append(chunk)
        return b"".join(chunks)


def _is_archive(head: bytes) -> bool:
    return head.startswith(_OTHER_ARCHIVE_MAGICS) or _kind_from_head(head, strict=True) is not None


def _too_large(limit: int) -> str:
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


# --------------------------------------------------------------------------- zip


_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_ZIP_UTF8_FLAG = 0x800


def _open_zip(path: Path, walk: _Walk) -> Iterator[ArchiveEntry]:
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


def _walk_zip(archive: zipfile.ZipFile, fh: IO[bytes], walk: _Walk) -> Iterator[ArchiveEntry]:
    with fh, archive:
        for info in archive.infolist():
            if not walk.admit_member():
                yield walk.members_limit_entry()
                return
            if _zip_is_dir(info):
                continue
            name = sanitize_member_name(_zip_raw_name(info))
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
        raise UnsafeArchiveMember(_too_large(limits.max_member_bytes))


def _zip_member_message(exc: Exception) -> str:
    if "CRC" in str(exc):
        return "the file is damaged (checksum mismatch)"
    if isinstance(exc, NotImplementedError):
        return "the file uses a compression method that is not supported"
    if isinstance(exc, RuntimeError) and "encrypted" in str(exc):
        return "encrypted files are not supported; upload it without a password"
    return f"the file cannot be read from the archive ({exc})"


# --------------------------------------------------------------------------- tar


class _TarEnd:
    """How tarfile's header reading stopped: end-of-archive marker, or broken data."""

    def __init__(self) -> None:
        self.broken: str | None = None


def _watching_tarinfo(end: _TarEnd) -> type[tarfile.TarInfo]:
    class WatchedTarInfo(tarfile.TarInfo):
        @classmethod
        def frombuf(cls, buf: bytes, encoding: str, errors: str) -> tarfile.TarInfo:
            # tarfile ends iteration silently on a truncated or garbled header; note which.
            try:
                info = super().frombuf(buf, encoding, errors)
            except tarfile.HeaderError:
                if buf != bytes(tarfile.BLOCKSIZE):
                    end.broken = "truncated" if len(buf) < tarfile.BLOCKSIZE else "corrupt"
                raise
            if info.type in _TAR_META_TYPES and info.size > _TAR_MAX_META_BYTES:
                # tarfile would read the whole header into memory.
                raise tarfile.ReadError("an extended header is implausibly large")
            return info

    return WatchedTarInfo


_TAR_META_TYPES = frozenset(
    {
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
    }
)


class _StreamLimit(Exception):
    pass


class _CountingReader:
    """The decompressed tar stream, refusing to produce more than ``limit`` bytes."""

    def __init__(self, raw: IO[bytes], limit: int) -> None:
        self._raw = raw
        self._limit = limit
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.count += len(data)
        if self.count > self._limit:
            raise _StreamLimit
        return data


def _decompressing(raw: IO[bytes], compression: str | None, stack: ExitStack) -> IO[bytes]:
    if compression == "gz":
        return stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
    if compression == "bz2":
        return stack.enter_context(bz2.BZ2File(raw, mode="rb"))
    if compression == "xz":
        return stack.enter_context(lzma.LZMAFile(raw, mode="rb"))
    return raw


def _open_tar(path: Path, walk: _Walk) -> Iterator[ArchiveEntry]:
    limits = walk.limits
    stack = ExitStack()
    try:
        raw = stack.enter_context(path.open("rb"))
        compression = _compression_of(raw.read(8))
        raw.seek(0)
        # Our own decompression layer, so a cut-off stream raises EOFError instead of ending
        # quietly like tarfile's stream mode does.
        decompressed = _decompressing(raw, compression, stack)
        stream_limit = (
            limits.max_total_bytes
            + (limits.max_members + 1) * _TAR_BYTES_PER_MEMBER_HEADER
            + _TAR_STREAM_SLACK
        )
        end = _TarEnd()
        archive = stack.enter_context(
            tarfile.open(  # noqa: SIM115 - closed by the stack, which the walk owns
                fileobj=_CountingReader(decompressed, stream_limit),
                mode="r|",
                tarinfo=_watching_tarinfo(end),
                encoding="utf-8",
                errors="surrogateescape",
            )
        )
    except (*_TAR_STREAM_ERRORS, _StreamLimit) as exc:
        stack.close()
        reason = str(exc) or "a header is too large"
        raise CorruptArchive(f"the tar archive cannot be read ({reason})") from exc
    return _walk_tar(archive, stack, end, walk)


def _walk_tar(
    archive: tarfile.TarFile, stack: ExitStack, end: _TarEnd, walk: _Walk
) -> Iterator[ArchiveEntry]:
    limits = walk.limits
    with stack:
        while True:
            try:
                member = archive.next()
            except _StreamLimit:
                yield walk.error(ARCHIVE_ITSELF, str(walk.total_limit_error()))
                return
            except _TAR_STREAM_ERRORS as exc:
                yield walk.error(ARCHIVE_ITSELF, _truncated(exc))
                return
            if member is None:
                if end.broken:
                    yield walk.error(ARCHIVE_ITSELF, _truncated(end.broken))
                return
            if not walk.admit_member():
                yield walk.members_limit_entry()
                return
            if member.isdir():
                continue
            name = sanitize_member_name(member.name, legacy_encoding="latin-1")
            refusal = _tar_refusal(member, limits)
            if refusal is not None:
                if member.isreg():  # its data is still decompressed to skip it
                    walk.total += member.size
                    if walk.total > limits.max_total_bytes:
                        yield walk.error(ARCHIVE_ITSELF, str(walk.total_limit_error()))
                        return
                yield walk.error(name, refusal)
                continue
            try:
                data = walk.read(archive.extractfile(member))
            except (ArchiveLimitExceeded, _StreamLimit):
                yield walk.error(ARCHIVE_ITSELF, str(walk.total_limit_error()))
                return
            except PawdexError as exc:
                yield walk.error(name, str(exc))
                continue
            except _TAR_STREAM_ERRORS as exc:
                yield walk.error(name, _truncated(exc))
                return
            yield walk.ok(name, data)


def _tar_refusal(member: tarfile.TarInfo, limits: ArchiveLimits) -> str | None:
    if member.issym():
        return "symbolic links are not indexed"
    if member.islnk():
        return "hard links are not indexed"
    if member.ischr() or member.isblk() or member.isfifo():
        return "special files (devices, pipes) are not indexed"
    if not member.isreg():
        return "this kind of archive member is not supported"
    if member.size > limits.max_member_bytes:
        return _too_large(limits.max_member_bytes)
    return None


_TRUNCATION_REASONS = {
    "truncated": "it ends in the middle of a header",
    "corrupt": "a header is damaged",
    "unexpected end of data": "it ends in the middle of this file",
}


def _truncated(cause: object) -> str:
    if isinstance(cause, EOFError):
        reason = "the compressed data ends too early"
    else:
        reason = str(cause) or type(cause).__name__
    reason = _TRUNCATION_REASONS.get(reason, reason)
    return str(
        CorruptArchive(f"the archive is truncated or damaged ({reason}); nothing after it was read")
    )
