"""Generators of test inputs, good and hostile, built in memory (no binary fixtures)."""

from __future__ import annotations

import io
import random
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterable

from PIL import Image


def image_bytes(
    fmt: str = "JPEG",
    size: tuple[int, int] = (64, 48),
    mode: str = "RGB",
    color: object = (200, 120, 40),
    **save: object,
) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, format=fmt, **save)
    return out.getvalue()


def jpeg_bytes(size: tuple[int, int] = (64, 48), **save: object) -> bytes:
    return image_bytes("JPEG", size, **save)


def noise_bytes(n: int, seed: int = 0) -> bytes:
    """Incompressible bytes (so compressed archives keep their size)."""
    return random.Random(seed).randbytes(n)


def zip_bytes(
    members: Iterable[tuple[str | zipfile.ZipInfo, bytes]],
    compression: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return out.getvalue()


def tar_bytes(
    members: Iterable[tuple[str, bytes] | tarfile.TarInfo],
    compression: str = "",
    **options: object,
) -> bytes:
    """A tar (``compression`` "", "gz", "bz2" or "xz"); a bare TarInfo is added as is."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=f"w:{compression}", **options) as archive:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                archive.addfile(member)
                continue
            name, data = member
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def tar_special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def with_raw_zip_names(data: bytes, renames: dict[str, bytes]) -> bytes:
    """Swap ASCII placeholder names for raw bytes (same length), with no UTF-8 flag set."""
    for placeholder, raw in renames.items():
        assert len(placeholder.encode()) == len(raw)
        data = data.replace(placeholder.encode(), raw)
    return data


def set_zip_flag(data: bytes, flag: int) -> bytes:
    """Set a general-purpose flag bit on every local and central header."""
    buf = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = buf.find(signature)
        while at >= 0:
            (flags,) = struct.unpack_from("<H", buf, at + offset)
            struct.pack_into("<H", buf, at + offset, flags | flag)
            at = buf.find(signature, at + 4)
    return bytes(buf)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a size but carries no real pixels: a decompression bomb's face."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
