"""Tar archives (plain, gz, bz2, xz), streamed: nothing is extracted, metadata headers and
the decompressed stream are capped."""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from pawdex.core.archive.detection import compression_of
from pawdex.core.archive.names import junk_reason, sanitize_member_name
from pawdex.core.archive.walk import ARCHIVE_ITSELF, ArchiveEntry, ArchiveLimits, Walk, too_large
from pawdex.core.errors import (
    ArchiveLimitExceeded,
    CorruptArchive,
    PawdexError,
)

# Pax and GNU long-name headers are read whole into memory by tarfile.
_TAR_MAX_META_BYTES = 1024 * 1024

# Backstop on the decompressed tar stream (headers, padding and skipped data included).
_TAR_STREAM_SLACK = 1024 * 1024

_TAR_BYTES_PER_MEMBER_HEADER = 1536

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


def open_tar(path: Path, walk: Walk) -> Iterator[ArchiveEntry]:
    limits = walk.limits
    stack = ExitStack()
    try:
        raw = stack.enter_context(path.open("rb"))
        compression = compression_of(raw.read(8))
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
    archive: tarfile.TarFile, stack: ExitStack, end: _TarEnd, walk: Walk
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
            skipped = junk_reason(name) if member.isreg() else None
            if refusal is not None or skipped is not None:
                if member.isreg():  # its data is still decompressed to skip it
                    walk.total += member.size
                    if walk.total > limits.max_total_bytes:
                        yield walk.error(ARCHIVE_ITSELF, str(walk.total_limit_error()))
                        return
                yield walk.skip(name, skipped) if skipped else walk.error(name, refusal)
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
        return too_large(limits.max_member_bytes)
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
