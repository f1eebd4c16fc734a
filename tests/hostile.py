"""The hostile input corpus: every kind of bad, odd or awkward-but-good file that a shelter's
archive can hold, generated from a seed (nothing binary is committed).

A :class:`Sample` is one file and what pawdex must make of it: indexed (with its upright size),
refused (with a per-file error naming it), or counted as a duplicate. ``mixed_zip`` and
``mixed_tar`` put every sample that a container can hold beside good photos in one archive;
``archive_cases`` are the uploads that fail (or stop) as a whole. Every seed gives different
photo bytes, so corpora built from different seeds never deduplicate against each other.

``python -m tests.hostile OUTDIR [SEED]`` writes the whole corpus to disk, to look at or to send
to a running server by hand. The limits it is built against are ``LIMITS`` (as settings).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import random
import re
import stat
import struct
import sys
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pillow_heif
from PIL import Image

from tests.corpus import png_header_only, tar_bytes, tar_special

pillow_heif.register_heif_opener()  # lets Pillow write the HEIC sample

MiB = 1024 * 1024

#: The limits the corpus is sized against; the tests set them as settings.
LIMITS = {
    "PAWDEX_MAX_ARCHIVE_MEMBERS": 200,
    "PAWDEX_MAX_MEMBER_BYTES": 4 * MiB,
    "PAWDEX_MAX_ARCHIVE_TOTAL_BYTES": 24 * MiB,
    "PAWDEX_MAX_COMPRESSION_RATIO": 200,
    "PAWDEX_MAX_IMAGE_PIXELS": 80_000_000,
}

INDEXED, REFUSED, DUPLICATE, SKIPPED = "indexed", "refused", "duplicate", "skipped"
CLUTTER = "clutter"  # system files (.DS_Store, __MACOSX/…): counted as skipped, not errors

#: Marker in the names that try to escape, so a test can look for them outside the data dir.
ESCAPE = "pawdex-escape"


def limit_env() -> dict[str, str]:
    return {name: str(value) for name, value in LIMITS.items()}


@dataclass(frozen=True)
class Sample:
    """One file of the corpus and what must become of it."""

    kind: str  # what it is, in words (one line of the census)
    name: str  # its name in the archive, or the client's file name
    data: bytes = b""
    expect: str = INDEXED
    error: str = ""  # REFUSED: a part of the per-file error, lower case
    shown: str | None = None  # the name pawdex shows, when it is not ``name``
    size: tuple[int, int] | None = None  # INDEXED: (width, height) once upright
    tar_type: bytes | None = None  # tar: a member that is not a regular file
    linkname: str = ""
    raw_name: bytes | None = None  # zip: the name's bytes, written as is

    @property
    def display(self) -> str:
        return self.name if self.shown is None else self.shown

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def id(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.kind.lower()).strip("-")


@dataclass(frozen=True)
class ArchiveCase:
    """An upload to ``POST /v1/archives`` that fails or stops as a whole."""

    kind: str
    filename: str
    data: bytes
    outcome: str  # "415", or the job's final status
    error: str  # part of the 415 detail, or of the job's one archive-wide error
    indexed: tuple[int, int] = (0, 0)  # photos indexed: at least, at most
    error_name: str | None = "(archive)"  # the error's name in the job (None: any member's)

    @property
    def id(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.kind.lower()).strip("-")


# --------------------------------------------------------------------------- pictures


def _noise(mode: str, size: tuple[int, int], seed: int) -> Image.Image:
    bands = {"RGB": 3, "RGBA": 4, "CMYK": 4, "L": 1, "LA": 2, "I;16": 2}[mode]
    data = random.Random(seed).randbytes(size[0] * size[1] * bands)
    return Image.frombytes(mode, size, data)


def _encode(img: Image.Image, fmt: str, **save: object) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **save)
    return out.getvalue()


def photo(seed: int, size: tuple[int, int] = (96, 72), fmt: str = "JPEG", **save: object) -> bytes:
    """A distinct noisy RGB photo: every seed gives different bytes."""
    return _encode(_noise("RGB", size, seed), fmt, **save)


def oriented_jpeg(orientation: int, seed: int, size: tuple[int, int] = (120, 60)) -> bytes:
    """White, a red square at the stored top-left corner, EXIF ``orientation``."""
    img = Image.new("RGB", size, (255, 255, 255))
    img.paste((255, 0, 0), (0, 0, 24, 24))
    rng = random.Random(seed)
    x, y = size[0] // 2, size[1] // 2
    img.paste((rng.randrange(256), rng.randrange(256), 255), (x, y, x + 4, y + 4))  # the seed's
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(img, "JPEG", quality=95, exif=exif.tobytes())


#: Where the stored top-left corner lands once EXIF orientation 1-8 is applied.
RED_CORNER = {1: "TL", 2: "TR", 3: "BR", 4: "BL", 5: "TL", 6: "TR", 7: "BR", 8: "BL"}


def animated_gif(seed: int) -> bytes:
    frames = [_noise("RGB", (64, 48), seed + i).convert("P") for i in range(3)]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80)


def palette_png_with_transparency(seed: int) -> bytes:
    img = _noise("RGB", (64, 48), seed).quantize(16)
    return _encode(img, "PNG", transparency=0)


def jpeg_claiming(width: int, height: int, seed: int) -> bytes:
    """A small JPEG whose frame header (SOF0) declares ``width`` x ``height``."""
    data = bytearray(photo(seed, (16, 16)))
    at = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, at + 5, height, width)
    return bytes(data)


def gif_claiming(width: int, height: int, seed: int) -> bytes:
    data = bytearray(_encode(_noise("RGB", (16, 16), seed).convert("P"), "GIF"))
    struct.pack_into("<HH", data, 6, width, height)  # the logical screen
    return bytes(data)


@cache
def _deflated_zeros(size: int) -> bytes:
    return zlib.compress(bytes(size), 9)


def png_with_chunk_bomb(kind: bytes, seed: int) -> bytes:
    """A valid PNG with a compressed zTXt/iCCP chunk that inflates to 16 MiB."""
    png = photo(seed, (32, 24), "PNG")
    body = (b"comment\x00\x00" if kind == b"zTXt" else b"icc\x00\x00") + _deflated_zeros(16 * MiB)
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    chunk = struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)
    return png[:33] + chunk + png[33:]  # right after IHDR


def text_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("inside.txt", "a zip hidden behind a photo\n")
    return out.getvalue()


# --------------------------------------------------------------------------- samples


@cache
def photo_samples(seed: int = 0) -> tuple[Sample, ...]:
    """Single files, good and bad: valid in any archive and as ``POST /v1/images`` uploads."""
    s = seed * 1000
    html = b"<!DOCTYPE html><html><body><script>alert(document.domain)</script></body></html>"
    svg = (
        b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="64" '
        b'height="48"><script>alert(1)</script><rect width="64" height="48"/></svg>'
    )
    inner = photo(s + 90)
    samples = [
        Sample("plain JPEG photo", "photos/rex.jpg", photo(s + 1), size=(96, 72)),
        Sample("plain JPEG photo, portrait", "photos/bella.jpg", photo(s + 2, (72, 96)),
               size=(72, 96)),
        Sample("progressive JPEG", "photos/max.jpg", photo(s + 3, progressive=True),
               size=(96, 72)),
        Sample("PNG named .jpg (wrong extension)", "wrong-extension/png-named.jpg",
               photo(s + 4, fmt="PNG"), size=(96, 72)),
        Sample("JPEG named .png (wrong extension)", "wrong-extension/jpeg-named.png",
               photo(s + 5), size=(96, 72)),
        Sample("JPEG without an extension", "wrong-extension/no-extension", photo(s + 6),
               size=(96, 72)),
        Sample("CMYK JPEG", "formats/cmyk.jpg", _encode(_noise("CMYK", (64, 48), s + 7), "JPEG"),
               size=(64, 48)),
        Sample("16-bit greyscale PNG", "formats/grey16.png",
               _encode(_noise("I;16", (64, 48), s + 8), "PNG"), size=(64, 48)),
        Sample("palette PNG with transparency", "formats/palette.png",
               palette_png_with_transparency(s + 9), size=(64, 48)),
        Sample("RGBA PNG", "formats/rgba.png", _encode(_noise("RGBA", (64, 48), s + 10), "PNG"),
               size=(64, 48)),
        Sample("grey + alpha PNG", "formats/grey-alpha.png",
               _encode(_noise("LA", (64, 48), s + 11), "PNG"), size=(64, 48)),
        Sample("animated GIF", "formats/animated.gif", animated_gif(s + 12), size=(64, 48)),
        Sample("WebP", "formats/photo.webp", photo(s + 15, fmt="WEBP"), size=(96, 72)),
        Sample("HEIC (pillow-heif)", "formats/photo.heic", photo(s + 16, fmt="HEIF"),
               size=(96, 72)),
        Sample("TIFF", "formats/photo.tif", photo(s + 17, fmt="TIFF"), size=(96, 72)),
        Sample("BMP", "formats/photo.bmp", photo(s + 18, fmt="BMP"), size=(96, 72)),
        Sample("JPEG with broken EXIF", "formats/broken-exif.jpg",
               photo(s + 19, exif=b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\xff\xff"),
               size=(96, 72)),
        Sample("polyglot JPEG+ZIP", "polyglot/jpeg-zip.jpg", photo(s + 20) + text_zip(),
               size=(96, 72)),
        Sample("polyglot GIF+HTML", "polyglot/gif-html.gif",
               _encode(_noise("RGB", (64, 48), s + 21).convert("P"), "GIF") + html,
               size=(64, 48)),
        # ---- refused
        Sample("zero-byte file", "empty/zero.jpg", b"", REFUSED, "empty"),
        Sample("text file named .jpg", "fake/notes.jpg",
               b"Rex, 3 years old, adopted in May. Very good boy.\n" * 8, REFUSED, "text"),
        Sample("UTF-16 text named .jpg", "fake/notes-utf16.jpg",
               "Rex, adopted in May\n".encode("utf-16"), REFUSED, "not an image"),
        Sample("HTML page named .jpg", "fake/page.jpg", html, REFUSED, "html"),
        Sample("SVG with a script", "fake/drawing.svg", svg, REFUSED, "svg"),
        Sample("HTML with an embedded JPEG (polyglot)", "polyglot/html-jpeg.html",
               html + inner, REFUSED, "html"),
        Sample("random bytes named .jpg", "fake/binary.jpg", random.Random(s).randbytes(4096),
               REFUSED, "not an image"),
        Sample("gzip-compressed photo", "fake/photo.jpg.gz", gzip.compress(inner, mtime=0),
               REFUSED, "not an image"),
        Sample("PDF named .jpg", "fake/scan.jpg", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\n",
               REFUSED, "not an image"),
        Sample("PPM (format outside the allow-list)", "unsupported/photo.ppm",
               photo(s + 22, fmt="PPM"), REFUSED, "unsupported image format: ppm"),
        Sample("ICO (format outside the allow-list)", "unsupported/icon.ico",
               _encode(_noise("RGB", (32, 32), s + 23), "ICO"), REFUSED,
               "unsupported image format: ico"),
        Sample("truncated JPEG", "truncated/cut.jpg", photo(s + 24, (320, 240))[:2500], REFUSED,
               "truncated or corrupt"),
        Sample("truncated PNG", "truncated/cut.png", photo(s + 25, fmt="PNG")[:400], REFUSED,
               "truncated or corrupt"),
        Sample("truncated GIF", "truncated/cut.gif", animated_gif(s + 26)[:900], REFUSED,
               "truncated or corrupt"),
        Sample("truncated WebP", "truncated/cut.webp", photo(s + 27, fmt="WEBP")[:200], REFUSED,
               "truncated or corrupt"),
        Sample("truncated HEIC", "truncated/cut.heic", photo(s + 28, fmt="HEIF")[:300], REFUSED,
               "truncated or corrupt"),
        Sample("JPEG magic number only", "truncated/magic.jpg", b"\xff\xd8\xff\xe0" + bytes(64),
               REFUSED, "truncated or corrupt"),
        Sample("decompression bomb: PNG declaring 20000x20000", "bombs/huge.png",
               png_header_only(20_000, 20_000), REFUSED, "too large"),
        Sample("decompression bomb: JPEG declaring 60000x60000", "bombs/huge.jpg",
               jpeg_claiming(60_000, 60_000, s + 29), REFUSED, "too large"),
        Sample("decompression bomb: GIF declaring 65535x65535", "bombs/huge.gif",
               gif_claiming(65_535, 65_535, s + 30), REFUSED, "too large"),
        Sample("PNG whose zTXt chunk inflates to 16 MiB", "bombs/text-chunk.png",
               png_with_chunk_bomb(b"zTXt", s + 31), REFUSED, "too large"),
        Sample("PNG whose iCCP profile inflates to 16 MiB", "bombs/icc-chunk.png",
               png_with_chunk_bomb(b"iCCP", s + 32), REFUSED, "too large"),
        Sample("photo over PAWDEX_MAX_MEMBER_BYTES", "bombs/oversized.jpg",
               photo(s + 33) + bytes(5 * MiB), REFUSED, "larger than the 4 mib limit"),
        Sample("zip sent as a photo / nested zip", "nested/inner.zip", text_zip(), REFUSED,
               "archive"),
        Sample("tar.gz sent as a photo / nested tar.gz", "nested/inner.tar.gz",
               tar_bytes([("x.jpg", inner)], "gz"), REFUSED, "archive"),
        Sample("plain tar sent as a photo / nested tar", "nested/inner.tar",
               tar_bytes([("x.jpg", inner)]), REFUSED, "archive"),
        Sample("7z sent as a photo / nested 7z", "nested/inner.7z",
               b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(64), REFUSED, "archive"),
        Sample("RAR sent as a photo / nested RAR", "nested/inner.rar",
               b"Rar!\x1a\x07\x01\x00" + bytes(64), REFUSED, "archive"),
    ]  # fmt: skip
    return (*samples, *orientation_samples(seed))


@cache
def orientation_samples(seed: int = 0) -> tuple[Sample, ...]:
    """JPEGs stored 120x60 with EXIF orientations 1-8: 5-8 turn them a quarter (60x120)."""
    return tuple(
        Sample(f"JPEG with EXIF orientation {n}", f"orientation/exif-{n}.jpg",
               oriented_jpeg(n, seed * 1000 + 40 + n), size=(120, 60) if n <= 4 else (60, 120))
        for n in range(1, 9)
    )  # fmt: skip


@cache
def name_samples(seed: int = 0) -> tuple[Sample, ...]:
    """Good photos under hostile names: each is indexed, under a name that stays inside."""
    s = seed * 1000 + 500
    deep = "/".join(["d" * 50] * 20)
    names = [
        ("path traversal ../", f"../../../../../../tmp/{ESCAPE}-{seed}-dots.jpg",
         f"tmp/{ESCAPE}-{seed}-dots.jpg"),
        ("path traversal in the middle", f"photos/../../../{ESCAPE}-{seed}-middle.jpg",
         f"photos/{ESCAPE}-{seed}-middle.jpg"),
        ("absolute path", f"/tmp/{ESCAPE}-{seed}-absolute.jpg",
         f"tmp/{ESCAPE}-{seed}-absolute.jpg"),
        ("drive letter and backslashes", f"C:\\Windows\\Temp\\{ESCAPE}-{seed}-drive.jpg",
         f"Windows/Temp/{ESCAPE}-{seed}-drive.jpg"),
        ("drive-relative name", f"D:{ESCAPE}-{seed}-drive-relative.jpg",
         f"{ESCAPE}-{seed}-drive-relative.jpg"),
        ("backslash traversal", f"..\\..\\..\\{ESCAPE}-{seed}-backslash.jpg",
         f"{ESCAPE}-{seed}-backslash.jpg"),
        ("UNC path", f"\\\\server\\share\\{ESCAPE}-{seed}-unc.jpg",
         f"server/share/{ESCAPE}-{seed}-unc.jpg"),
        ("very long file name", "long/" + "x" * 300 + ".jpg", "long/" + "x" * 116 + ".jpg"),
        ("very deep folders", f"{deep}/deep.jpg", "/".join(["d" * 50] * 7) + "/deep.jpg"),
        ("control characters in a name", "names/ctl\x01\x1b[31mred\x7f.jpg",
         "names/ctl[31mred.jpg"),
        ("right-to-left override in a name", "names/evil\u202egpj.exe", "names/evilgpj.exe"),
        ("non-ASCII UTF-8 name", "noms/chien-été-犬.jpg", None),
    ]  # fmt: skip
    return tuple(
        Sample(kind, name, photo(s + i), shown=shown, size=(96, 72))
        for i, (kind, name, shown) in enumerate(names)
    )


@cache
def archive_samples(seed: int = 0) -> tuple[Sample, ...]:
    """What only an archive can hold, zip or tar alike."""
    s = seed * 1000 + 600
    twin = photo(s + 1)
    return (
        Sample("folder entry", "photos/2019/", expect=SKIPPED),
        Sample("same photo twice (first copy)", "dups/rex.jpg", twin, size=(96, 72)),
        Sample("same photo twice (second copy)", "dups/rex-again.jpg", twin, DUPLICATE),
        Sample("duplicate member name (first)", "dups/same-name.jpg", photo(s + 2),
               size=(96, 72)),
        Sample("duplicate member name (second)", "dups/same-name.jpg", photo(s + 3),
               size=(96, 72)),
        Sample("macOS AppleDouble file (__MACOSX/._*)", "__MACOSX/photos/._rex.jpg",
               b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(400), CLUTTER),
        Sample("macOS .DS_Store", "photos/.DS_Store", b"\x00\x00\x00\x01Bud1" + bytes(2000),
               CLUTTER),
        Sample("Windows Thumbs.db", "photos/Thumbs.db",
               b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(2000), CLUTTER),
        Sample("decomposed (NFD) Unicode name, as macOS writes", "noms/cafe\u0301.jpg",
               photo(s + 4), size=(96, 72), shown="noms/caf\u00e9.jpg"),
    )  # fmt: skip


@cache
def zip_samples(seed: int = 0) -> tuple[Sample, ...]:
    """Members only a zip can hold (raw names, flags, methods, per-member compression)."""
    s = seed * 1000 + 700
    return (
        Sample("zip bomb: 3 MiB of zeros deflated 1000 times", "bombs/ratio.jpg",
               bytes(3 * MiB), REFUSED, "zip bomb"),
        Sample("symbolic link in a zip", "links/passwd.jpg", b"/etc/passwd", REFUSED,
               "symbolic link"),
        Sample("device file in a zip", "links/tty.jpg", b"", REFUSED, "special files"),
        Sample("non-UTF-8 name (cp437)", "cp437-XXXX.jpg", photo(s + 1), size=(96, 72),
               raw_name=b"cp437-\x82t\x82\x87.jpg", shown="cp437-étéç.jpg"),
        Sample("non-UTF-8 name (Shift-JIS)", "sjis-XXXX.jpg", photo(s + 2), size=(96, 72),
               raw_name=b"sjis-\x8c\xa2\x94L.jpg",
               shown=b"sjis-\x8c\xa2\x94L.jpg".decode("cp437")),
        Sample("NUL byte in a name", "nul-X-hidden.jpg", photo(s + 3), size=(96, 72),
               raw_name=b"nul-\x00-hidden.jpg", shown="nul-"),
        Sample("empty member name", "", photo(s + 9), size=(96, 72), shown="unnamed"),
        Sample("damaged member (CRC mismatch)", "damaged/crc.jpg", photo(s + 4), REFUSED,
               "checksum"),
        Sample("member with a corrupt local header", "damaged/header.jpg", photo(s + 5),
               REFUSED, "cannot be read from the archive"),
        Sample("local and central names differ", "damaged/names-aaaa.jpg", photo(s + 6),
               REFUSED, "cannot be read from the archive"),
        Sample("unsupported compression method (Deflate64)", "damaged/deflate64.jpg",
               photo(s + 7), REFUSED, "compression method"),
        Sample("encrypted member", "damaged/encrypted.jpg", photo(s + 8), REFUSED,
               "encrypted"),
    )  # fmt: skip


@cache
def tar_samples(seed: int = 0) -> tuple[Sample, ...]:
    """Members only a tar can hold (links, devices, FIFOs, raw byte names)."""
    s = seed * 1000 + 800
    return (
        Sample("symbolic link in a tar", "links/soft.jpg", expect=REFUSED,
               error="symbolic link", tar_type=tarfile.SYMTYPE, linkname="/etc/passwd"),
        Sample("hard link in a tar", "links/hard.jpg", expect=REFUSED, error="hard link",
               tar_type=tarfile.LNKTYPE, linkname="../../../etc/shadow"),
        Sample("symlink to a folder outside", "escape", expect=REFUSED, error="symbolic link",
               tar_type=tarfile.SYMTYPE, linkname="../../../../../tmp"),
        Sample("file written through that symlink", f"escape/{ESCAPE}-{seed}-through-link.jpg",
               photo(s + 1), size=(96, 72)),
        Sample("character device", "devices/tty", expect=REFUSED, error="special files",
               tar_type=tarfile.CHRTYPE),
        Sample("block device", "devices/sda", expect=REFUSED, error="special files",
               tar_type=tarfile.BLKTYPE),
        Sample("FIFO", "devices/fifo", expect=REFUSED, error="special files",
               tar_type=tarfile.FIFOTYPE),
        Sample("unknown member type", "devices/unknown", expect=REFUSED,
               error="not supported", tar_type=b"Z"),
        Sample("contiguous file (type 7)", "types/contiguous.jpg", photo(s + 2), size=(96, 72),
               tar_type=tarfile.CONTTYPE),
        Sample("non-UTF-8 name (latin-1)", "chien-\udce9t\udce9.jpg", photo(s + 3),
               size=(96, 72), shown="chien-été.jpg"),
        Sample("NUL byte in a pax path", "pax/nul\x00hidden.jpg", photo(s + 4), size=(96, 72),
               shown="pax/nul"),
    )  # fmt: skip


# --------------------------------------------------------------------------- archives


@cache
def mixed_zip(seed: int = 0) -> tuple[bytes, tuple[Sample, ...]]:
    """One zip with every hostile sample a zip can hold beside the good photos."""
    samples = photo_samples(seed) + name_samples(seed) + archive_samples(seed) + zip_samples(seed)
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name": on purpose
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for sample in samples:
                archive.writestr(_zip_info(sample), sample.data)
    data = out.getvalue()
    for sample in samples:
        if sample.raw_name is not None:
            data = _rename_zip_member(data, sample.name, sample.raw_name)
    data = _patch_zip_member(data, "damaged/crc.jpg", flip_data=True)
    data = _patch_zip_member(data, "damaged/header.jpg", local_signature=b"PK\x07\x09")
    data = _patch_zip_member(data, "damaged/names-aaaa.jpg", local_name=b"damaged/names-bbbb.jpg")
    data = _patch_zip_member(data, "damaged/deflate64.jpg", method=9)
    data = _patch_zip_member(data, "damaged/encrypted.jpg", flags=0x1)
    return data, samples


def _zip_info(sample: Sample) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(sample.name, date_time=(2019, 5, 1, 12, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    if sample.name.startswith("damaged/"):
        info.compress_type = zipfile.ZIP_STORED  # so that a flipped byte is a CRC error
    modes = {"links/passwd.jpg": stat.S_IFLNK | 0o777, "links/tty.jpg": stat.S_IFCHR | 0o666}
    if sample.name in modes:
        info.create_system = 3  # Unix: the mode is in the high bits of external_attr
        info.external_attr = modes[sample.name] << 16
    elif sample.name.endswith("/"):
        info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
    return info


def _rename_zip_member(data: bytes, placeholder: str, raw: bytes) -> bytes:
    """Swap a same-length ASCII placeholder for raw bytes in both headers (no UTF-8 flag)."""
    assert len(placeholder.encode()) == len(raw), (placeholder, raw)
    assert data.count(placeholder.encode()) == 2, placeholder
    return data.replace(placeholder.encode(), raw)


def _patch_zip_member(
    data: bytes,
    name: str,
    *,
    flags: int = 0,
    method: int | None = None,
    flip_data: bool = False,
    local_signature: bytes | None = None,
    local_name: bytes | None = None,
) -> bytes:
    """Damage one member of a zip in a precise way (both headers where both hold the field)."""
    buf = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo(name)
        local = info.header_offset
        central = archive.start_dir
        while True:  # walk the central directory to this member's record
            name_len, extra_len, comment_len = struct.unpack_from("<3H", buf, central + 28)
            if buf[central + 46 : central + 46 + name_len] == name.encode():
                break
            central += 46 + name_len + extra_len + comment_len
    local_name_len, local_extra_len = struct.unpack_from("<2H", buf, local + 26)
    for at, flag_offset, method_offset in ((local, 6, 8), (central, 8, 10)):
        if flags:
            struct.pack_into("<H", buf, at + flag_offset, info.flag_bits | flags)
        if method is not None:
            struct.pack_into("<H", buf, at + method_offset, method)
    if flip_data:
        end = local + 30 + local_name_len + local_extra_len + info.compress_size - 1
        buf[end] ^= 0xFF
    if local_signature is not None:
        buf[local : local + 4] = local_signature
    if local_name is not None:
        assert len(local_name) == local_name_len
        buf[local + 30 : local + 30 + local_name_len] = local_name
    return bytes(buf)


@cache
def mixed_tar(seed: int = 0, compression: str = "gz") -> tuple[bytes, tuple[Sample, ...]]:
    """One tar (pax format, gzip) with every hostile sample a tar can hold beside good photos."""
    samples = photo_samples(seed) + name_samples(seed) + archive_samples(seed) + tar_samples(seed)
    out = io.BytesIO()
    with tarfile.open(
        fileobj=out,
        mode=f"w:{compression}",
        format=tarfile.PAX_FORMAT,
        encoding="utf-8",
        errors="surrogateescape",  # the latin-1 name goes in as raw bytes
    ) as archive:
        for sample in samples:
            if sample.expect == SKIPPED:
                archive.addfile(tar_special(sample.name, tarfile.DIRTYPE))
            elif sample.tar_type in (None, tarfile.CONTTYPE):
                info = tarfile.TarInfo(sample.name)
                info.size = len(sample.data)
                if sample.tar_type is not None:
                    info.type = sample.tar_type
                archive.addfile(info, io.BytesIO(sample.data))
            else:
                archive.addfile(tar_special(sample.name, sample.tar_type, sample.linkname))
    return out.getvalue(), samples


# --------------------------------------------------------------------------- whole archives


def _zip(members: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return out.getvalue()


def _tgz(members: list[tuple[str, bytes]]) -> bytes:
    return tar_bytes(members, "gz")


def _corrupt_central_directory(data: bytes) -> bytes:
    return data.replace(b"PK\x01\x02", b"PK\x09\x09")


def _end_record_outside(data: bytes) -> bytes:
    buf = bytearray(data)
    at = buf.rfind(b"PK\x05\x06")
    struct.pack_into("<L", buf, at + 16, len(data) * 4)  # directory offset past the end
    return bytes(buf)


def _first_tar_header_damaged(data: bytes) -> bytes:
    buf = bytearray(data)
    buf[148:156] = b"0000000\0"  # checksum
    return bytes(buf)


def _invalid_utf8_flagged_name(seed: int) -> bytes:
    members = [("good-1.jpg", photo(seed + 1)), ("bad-name-XX.jpg", photo(seed + 2)),
               ("good-2.jpg", photo(seed + 3))]  # fmt: skip
    data = _rename_zip_member(_zip(members), "bad-name-XX.jpg", b"bad-name-\xff\xfe.jpg")
    return _set_flag_on_member(data, b"bad-name-\xff\xfe.jpg", 0x800)


def _set_flag_on_member(data: bytes, raw_name: bytes, flag: int) -> bytes:
    """Set a flag bit on the headers (local and central) of the member named ``raw_name``."""
    buf = bytearray(data)
    for signature, name_at, flag_at in ((b"PK\x03\x04", 30, 6), (b"PK\x01\x02", 46, 8)):
        at = buf.find(signature)
        while at >= 0:
            if buf[at + name_at : at + name_at + len(raw_name)] == raw_name:
                (flags,) = struct.unpack_from("<H", buf, at + flag_at)
                struct.pack_into("<H", buf, at + flag_at, flags | flag)
            at = buf.find(signature, at + 4)
    return bytes(buf)


@cache
def archive_cases(seed: int = 0) -> tuple[ArchiveCase, ...]:
    """Uploads that are refused, fail or stop as a whole, with what the job must say."""
    s = seed * 1000 + 900
    good = [(f"ok/{i}.jpg", photo(s + i)) for i in range(3)]
    tiny = [(f"tiny/{i:04d}.txt", b"x") for i in range(997)]
    zeros = [(f"bomb/{i:02d}.bin", bytes(MiB)) for i in range(40)]
    big = [(f"big/{i}.jpg", photo(s + 10 + i, (320, 240))) for i in range(6)]
    tgz_big = _tgz(big)
    members = len(good) + len(tiny)
    return (
        ArchiveCase("corrupt zip central directory", "corrupt.zip",
                    _corrupt_central_directory(_zip(good)), "failed", "cannot be read",
                    error_name="corrupt.zip"),
        ArchiveCase("zip cut before its central directory", "cut.zip", _zip(big)[:30_000],
                    "failed", "no central directory", error_name="cut.zip"),
        ArchiveCase("zip end record pointing past the end", "lying.zip",
                    _end_record_outside(_zip(good)), "failed", "directory is not where",
                    error_name="lying.zip"),
        ArchiveCase("truncated tar.gz", "cut.tar.gz", tgz_big[: int(len(tgz_big) * 0.7)],
                    "partial", "truncated", indexed=(1, 5), error_name=None),
        ArchiveCase("tar with a damaged first header", "damaged.tar",
                    _first_tar_header_damaged(tar_bytes(good)), "failed", "cannot be read",
                    error_name="damaged.tar"),
        ArchiveCase(f"zip of {members} entries over the member limit", "many.zip",
                    _zip(good + tiny), "failed", f"{members} entries, more than the limit of 200"),
        ArchiveCase(f"tar.gz of {members} entries over the member limit", "many.tar.gz",
                    _tgz(good + tiny), "partial", "more than 200 entries", indexed=(3, 3)),
        ArchiveCase("zip bomb by total size (40 x 1 MiB of zeros)", "total.zip",
                    _zip(good[:2] + zeros), "partial", "24 mib of files in total",
                    indexed=(2, 2)),
        ArchiveCase("tar.gz bomb by total size (40 x 1 MiB of zeros)", "total.tar.gz",
                    _tgz(good[:2] + zeros), "partial", "24 mib of files in total",
                    indexed=(2, 2)),
        ArchiveCase("zip with a UTF-8 flagged name that is not UTF-8", "bad-utf8.zip",
                    _invalid_utf8_flagged_name(s + 20), "succeeded", "", indexed=(3, 3)),
        ArchiveCase("tar.gz named .zip (kind from the bytes)", "really-a-tar.zip",
                    _tgz(good[:2]), "succeeded", "", indexed=(2, 2)),
        ArchiveCase("JPEG sent as an archive", "photo.zip", photo(s + 30), "415",
                    "not a zip or tar archive"),
        ArchiveCase("polyglot JPEG+ZIP sent as an archive", "polyglot.zip",
                    photo(s + 31) + _zip(good[:1]), "415", "not a zip or tar archive"),
        ArchiveCase("text sent as an archive", "notes.tar", b"just some notes\n" * 40, "415",
                    "not a zip or tar archive"),
        ArchiveCase("HTML sent as an archive", "page.tgz",
                    b"<html><body>not an archive</body></html>", "415",
                    "not a zip or tar archive"),
        ArchiveCase("empty upload sent as an archive", "empty.zip", b"", "415",
                    "not a zip or tar archive"),
        ArchiveCase("gzip of a text file", "notes.tar.gz", gzip.compress(b"notes\n" * 500),
                    "415", "not a zip or tar archive"),
        ArchiveCase("7z archive", "photos.7z", b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(200),
                    "415", "not a zip or tar archive"),
        ArchiveCase("RAR archive", "photos.rar", b"Rar!\x1a\x07\x01\x00" + bytes(200), "415",
                    "not a zip or tar archive"),
    )  # fmt: skip


# --------------------------------------------------------------------------- checking a job


def expected_status(samples: Sequence[Sample]) -> str:
    refused = any(s.expect == REFUSED for s in samples)
    kept = any(s.expect in (INDEXED, DUPLICATE) for s in samples)
    return "partial" if refused and kept else "failed" if refused else "succeeded"


def job_animals(client: Any, job_id: str) -> list[dict]:
    response = client.get("/v1/photos", params={"job_id": job_id, "limit": 500})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    return body["items"]


def all_errors(client: Any, job: dict) -> list[dict]:
    """Every per-file error of the job, paged through ``/v1/jobs/{id}/errors``; the job's
    document holds the first of them, in the same order."""
    errors, cursor = [], None
    while True:
        params = {"limit": 500} | ({"cursor": cursor} if cursor else {})
        response = client.get(f"/v1/jobs/{job['id']}/errors", params=params)
        assert response.status_code == 200, response.text
        errors += response.json()["items"]
        if not (cursor := response.json()["next_cursor"]):
            break
    assert job["errors"] == errors[: len(job["errors"])], (job["errors"], errors)
    assert len(errors) == job["failed"], (len(errors), job["failed"])
    return errors


def check_job(client: Any, job: dict, samples: Sequence[Sample]) -> dict[str, dict]:
    """Assert that a finished job made of ``samples`` is what the corpus says, as a user sees
    it: one clear error per bad file under its name, every good photo indexed with its upright
    size, byte for byte, with a thumbnail, and every file counted once. Returns the job's
    animals by sha256. ``client`` is a TestClient or an httpx.Client (both speak the same)."""
    members = [s for s in samples if s.expect != SKIPPED]
    refused = {s.display: s for s in members if s.expect == REFUSED}
    indexed = {s.sha256: s for s in members if s.expect == INDEXED}
    duplicates = sum(s.expect == DUPLICATE for s in members)
    assert len(refused) == sum(s.expect == REFUSED for s in members), "two refusals, one name"

    listed = all_errors(client, job)
    errors = {e["name"]: e["error"] for e in listed}
    assert len(errors) == len(listed), f"two errors under one name: {listed}"
    assert set(errors) == set(refused), {
        "unexpected": {n: e for n, e in errors.items() if n not in refused},
        "missing": sorted(set(refused) - set(errors)),
    }
    unclear = {n: errors[n] for n, s in refused.items() if s.error not in errors[n].lower()}
    assert not unclear, unclear
    clutter = sum(s.expect == CLUTTER for s in members)
    counts = (job["total"], job["done"], job["duplicates"], job["failed"], job["skipped"])
    assert counts == (len(members), len(indexed), duplicates, len(refused), clutter), counts
    assert job["total"] == job["done"] + job["duplicates"] + job["failed"] + job["skipped"]
    assert job["status"] == expected_status(members), job["status"]

    animals = {a["sha256"]: a for a in job_animals(client, job["id"])}
    assert set(animals) == set(indexed), {
        "unexpected": [a["path"] for sha, a in animals.items() if sha not in indexed],
        "lost": [s.display for sha, s in indexed.items() if sha not in animals],
    }
    for sha, sample in indexed.items():
        animal = animals[sha]
        assert animal["path"] == sample.display, (sample.kind, animal["path"])
        assert (animal["width"], animal["height"]) == sample.size, sample.kind
        stored = client.get(animal["image_url"])
        assert stored.status_code == 200, (sample.kind, stored.text)
        assert hashlib.sha256(stored.content).hexdigest() == sha, sample.kind
        thumb = client.get(animal["thumbnail_url"])
        assert thumb.status_code == 200, (sample.kind, thumb.text)
        with Image.open(io.BytesIO(thumb.content)) as img:
            assert img.format == "JPEG"
            assert (img.width > img.height) == (animal["width"] > animal["height"]), sample.kind

    export = client.get("/v1/photos", params={"job_id": job["id"], "format": "csv"})
    assert export.status_code == 200, export.text
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert sorted(r["sha256"] for r in rows) == sorted(indexed)
    return animals


# --------------------------------------------------------------------------- census, CLI


def census(seed: int = 0) -> list[str]:
    """Every kind of input in the corpus, once."""
    samples = mixed_zip(seed)[1] + mixed_tar(seed)[1]
    kinds = dict.fromkeys(s.kind for s in samples)
    kinds |= dict.fromkeys(c.kind for c in archive_cases(seed))
    return list(kinds)


def write_corpus(out: Path, seed: int = 0) -> list[Path]:
    """The whole corpus as files under ``out``: mixed archives, loose files, whole-archive cases."""
    written: list[Path] = []

    def put(relative: str, data: bytes) -> None:
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)

    put("mixed.zip", mixed_zip(seed)[0])
    put("mixed.tar.gz", mixed_tar(seed)[0])
    for i, sample in enumerate(photo_samples(seed) + name_samples(seed)):
        put(f"files/{i:03d}-{sample.id}", sample.data)
    for case in archive_cases(seed):
        put(f"archives/{case.id}-{case.filename}", case.data)
    return written


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python -m tests.hostile OUTDIR [SEED]")
    seed = int(sys.argv[2]) if len(sys.argv) == 3 else 0
    files = write_corpus(Path(sys.argv[1]), seed)
    print(f"{len(files)} files, {len(census(seed))} kinds of input, in {sys.argv[1]}")
