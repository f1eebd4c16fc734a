"""What an upload is, from its bytes, never its name: zip, tar (plain or compressed), or
neither."""

from __future__ import annotations

import bz2
import lzma
import struct
import tarfile
import zlib
from pathlib import Path
from typing import Literal

ArchiveKind = Literal["zip", "tar"]

_SNIFF_BYTES = 1024

_COMPRESSED_SNIFF_BYTES = 4 * 1024 * 1024

_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")

_OTHER_ARCHIVE_MAGICS = (b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07")

_COMPRESSION_MAGICS = {b"\x1f\x8b": "gz", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz"}


def detect_archive_kind(path: Path) -> ArchiveKind | None:
    """``"zip"`` or ``"tar"`` (plain, gz, bz2, xz) from the file's bytes, never its name."""
    with Path(path).open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
        if compression_of(head) is not None:
            head += fh.read(_COMPRESSED_SNIFF_BYTES)
    return _kind_from_head(head, strict=False)


def _kind_from_head(head: bytes, *, strict: bool) -> ArchiveKind | None:
    """``strict`` is for members (magic numbers only); uploads may be old v7 tars too."""
    if head.startswith(_ZIP_MAGICS):
        return "zip"
    compression = compression_of(head)
    if compression is None:
        return "tar" if _is_tar_header(head, strict=strict) else None
    try:
        inner = _decompressed_prefix(compression, head, 2 * tarfile.BLOCKSIZE)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
        return None if strict else "tar"  # a damaged compressed tar: reading will say so
    if not inner and not strict:
        return "tar"  # nothing decoded yet (bz2 blocks are large): let tarfile decide
    return "tar" if _is_tar_header(inner, strict=strict) else None


def compression_of(head: bytes) -> str | None:
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


def is_archive(head: bytes) -> bool:
    return head.startswith(_OTHER_ARCHIVE_MAGICS) or _kind_from_head(head, strict=True) is not None
