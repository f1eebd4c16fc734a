"""Safe image opening: real type from the bytes, allow-list, pixel limit, decode budget
(aspect ratio, JPEG scans), RGB out.

Every failure a user's file can cause comes out as :class:`UnsupportedImage` with a short
message; no Pillow exception escapes :func:`open_image`.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

from pawdex.core.errors import UnsupportedImage
from pawdex.formats import ALLOWED_FORMATS, media_type

if TYPE_CHECKING:
    from pawdex.core.settings import Settings

pillow_heif.register_heif_opener()  # adds the "HEIF" format (HEIC and HEIF files)


# Pillow opens MPO through the JPEG opener (it has no opener of its own to name).
_OPENERS = tuple(fmt for fmt in ALLOWED_FORMATS if fmt != "MPO")
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_JPEG_FAMILY = frozenset({"JPEG", "MPO"})
_ALLOWED_MAGICS = (
    b"\xff\xd8\xff",  # JPEG, MPO
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",  # TIFF, little- and big-endian
    b"MM\x00*",
)
_WHITE = (255, 255, 255)
_CORRUPT = "truncated or corrupt image"
# What Pillow's PNG plugin says when a zTXt, iTXt or iCCP chunk inflates past MAX_TEXT_CHUNK.
_METADATA_BOMB = "Decompressed data too large"
# A JPEG marker: 0xFF then a code that is not 00 (a stuffed 0xFF in entropy-coded data),
# a restart marker (RST0-7, inside a scan) or another 0xFF (fill).
_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_SOI, _EOI, _SOS, _TEM = 0xD8, 0xD9, 0xDA, 0x01


@dataclass(frozen=True)
class DecodeBudget:
    """What one photo may cost, judged from its header before a pixel is decoded.

    A strip of 1 x 40,000 pixels is a few hundred bytes, but scaled to the model's short
    side it becomes gigabytes; each scan of a progressive JPEG is one more pass over every
    block (thousands of scans: minutes). The defaults are the settings' defaults."""

    max_aspect_ratio: float = 10.0
    max_jpeg_scans: int = 100

    @classmethod
    def of(cls, settings: Settings) -> DecodeBudget:
        return cls(settings.max_aspect_ratio, settings.max_jpeg_scans)

    def check(self, fmt: str, size: tuple[int, int], data: bytes) -> None:
        """Raise UnsupportedImage if a photo of this format, size and bytes is over budget."""
        width, height = size
        if max(width, height) > self.max_aspect_ratio * max(1, min(width, height)):
            raise UnsupportedImage(
                f"image is {width}x{height} pixels: one side is more than "
                f"{self.max_aspect_ratio:g} times the other; not a photo pawdex can classify"
            )
        limit = self.max_jpeg_scans
        if fmt in _JPEG_FAMILY and _jpeg_scans(data, stop_at=limit + 1) > limit:
            raise UnsupportedImage(
                f"JPEG with more than {limit} scans (a photo has about 10): "
                "each scan is a pass over the whole image, too slow to decode"
            )


def _jpeg_scans(data: bytes, stop_at: int) -> int:
    """The scans (SOS markers) of the first image, as libjpeg walks it, counted up to
    ``stop_at``: segments are skipped by their length (EXIF and its thumbnail, ICC) and the
    walk ends at EOI (an MPO's other frames, a motion photo's video: never decoded)."""
    scans, pos = 0, 2
    while scans < stop_at and (found := _MARKER.search(data, pos)):
        marker, pos = data[found.start() + 1], found.start() + 2
        if marker == _EOI:
            break
        scans += marker == _SOS
        if marker not in (_SOI, _TEM):  # the others carry a length (an SOS: its header's)
            pos += int.from_bytes(data[pos : pos + 2], "big")
    return scans


@dataclass(frozen=True)
class ImageInfo:
    format: str  # Pillow's name, one of ALLOWED_FORMATS
    width: int  # after EXIF orientation
    height: int
    mime: str


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def open_image(
    data: bytes, max_pixels: int, *, min_side: int = 0, budget: DecodeBudget = DecodeBudget()
) -> tuple[Image.Image, ImageInfo]:
    """Decode untrusted bytes into an upright RGB image, or raise UnsupportedImage.

    With ``min_side``, a JPEG is decoded reduced by libjpeg (1/2, 1/4, 1/8) as long as its
    shorter side stays >= ``min_side``: every byte is still decoded (truncation is still
    caught) at a fraction of the cost. ``ImageInfo`` always gives the full size."""
    if not data:
        raise UnsupportedImage("not an image: the file is empty")
    try:
        # Pillow's own bomb warning is noise here: the pixel limit below is the one enforced.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return _open_checked(data, max_pixels, min_side, budget)
    except UnsupportedImage:
        raise
    except Image.DecompressionBombError as exc:
        raise UnsupportedImage("image is too large (too many pixels)") from exc
    except MemoryError as exc:
        raise UnsupportedImage("image is too large to decode") from exc
    except ValueError as exc:
        if _METADATA_BOMB in str(exc):  # Pillow's cap on PNG text and ICC chunks
            raise UnsupportedImage(
                "image metadata is too large (a compressed PNG chunk that inflates beyond "
                "Pillow's limit: a decompression bomb)"
            ) from exc
        raise UnsupportedImage(_CORRUPT) from exc
    except Exception as exc:  # Pillow plugins raise many types on hostile input
        raise UnsupportedImage(_CORRUPT) from exc


def _open_checked(
    data: bytes, max_pixels: int, min_side: int, budget: DecodeBudget
) -> tuple[Image.Image, ImageInfo]:
    try:
        source = Image.open(io.BytesIO(data), formats=_OPENERS)
    except UnidentifiedImageError:
        raise UnsupportedImage(_describe_unidentified(data)) from None
    with source:
        fmt = source.format or "?"
        if fmt not in ALLOWED_FORMATS:
            raise UnsupportedImage(f"unsupported image format: {fmt}")
        width, height = source.size
        # Checked on the header's size, before a single pixel is decoded.
        if width * height > max_pixels:
            raise UnsupportedImage(
                f"image is too large: {width}x{height} pixels (limit {max_pixels:,})"
            )
        budget.check(fmt, source.size, data)
        if min_side > 0 and fmt in _JPEG_FAMILY:
            # The largest libjpeg reduction that keeps the shorter side >= min_side.
            source.draft("RGB", (min_side, min_side))
        source.load()  # frame 0 of animated images; raises on truncated data
        image = _to_rgb(_upright(source))
    if (image.width > image.height) != (width > height):  # EXIF turned it a quarter
        width, height = height, width
    return image, ImageInfo(format=fmt, width=width, height=height, mime=media_type(fmt))


def _describe_unidentified(data: bytes) -> str:
    if _looks_like_allowed(data):
        return _CORRUPT
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return "not an image: looks like HTML, SVG or XML text"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(ch.isprintable() or ch in "\t\r\n" for ch in text):
        return "not an image: looks like text"
    other = _identify_any(data)
    if other is not None:
        return f"unsupported image format: {other} (accepted: {', '.join(ALLOWED_FORMATS)})"
    return "not an image: unrecognised file type"


def _looks_like_allowed(data: bytes) -> bool:
    """The magic number of an accepted format, on bytes Pillow could not open."""
    if data.startswith(_ALLOWED_MAGICS):
        return True
    return (data[:4] == b"RIFF" and data[8:12] == b"WEBP") or data[4:8] == b"ftyp"


def _identify_any(data: bytes) -> str | None:
    """Name a format outside the allow-list, for the message (header parsing only)."""
    try:
        with Image.open(io.BytesIO(data)) as other:
            return other.format
    except Exception:
        return None


def _upright(image: Image.Image) -> Image.Image:
    """A copy turned as its EXIF orientation says; broken EXIF leaves it as stored."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:
        return image.copy()


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in _ALPHA_MODES or ("transparency" in image.info and mode in ("P", "L", "RGB")):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", image.size, _WHITE)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    if mode == "RGB":
        return image
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        return _to_eight_bit(image).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as exc:
        raise UnsupportedImage(f"unsupported colour mode {mode}") from exc


def _to_eight_bit(image: Image.Image) -> Image.Image:
    """Scale high-depth grey to 0..255 (a plain convert would clip everything above 255)."""
    if image.mode == "F":
        high = image.getextrema()[1]
        scale = 255.0 if high <= 1.0 else 255.0 / high
        return image.point(lambda v: v * scale).convert("L")
    wide = image if image.mode == "I" else image.convert("I")
    if image.mode in _SIXTEEN_BIT_MODES:
        scale = 255 / 65535
    else:
        high = wide.getextrema()[1]
        scale = 1.0 if high <= 255 else 255 / max(high, 65535)
    return wide.point(lambda v: v * scale).convert("L")


def thumbnail_size(size: tuple[int, int], short_side: int) -> tuple[int, int]:
    """Shorter side ``short_side`` (never enlarged), longer side at most twice that."""
    width, height = size
    scale = min(1.0, short_side / min(width, height), 2 * short_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def make_thumbnail(img: Image.Image, short_side: int) -> bytes:
    """JPEG bytes of the photo with its shorter side at ``short_side`` (aspect kept).

    Large enough to be the model's input too (the worker classifies from it when its
    shorter side covers the model's resize), so the original is decoded once, at ingest.
    JPEG rather than WebP: encoding is ~10x cheaper and the files are about as small."""
    thumb = img if img.mode == "RGB" else _to_rgb(img)
    target = thumbnail_size(thumb.size, short_side)
    if target != thumb.size:
        thumb = thumb.resize(target, Image.Resampling.BICUBIC, reducing_gap=3.0)
    out = io.BytesIO()
    thumb.save(out, format="JPEG", quality=90)
    return out.getvalue()


def decode_for_model(
    path: Path | bytes, min_side: int, budget: DecodeBudget = DecodeBudget()
) -> Image.Image:
    """Decode a stored (already validated) photo for inference, no larger than needed.

    JPEGs are decoded at 1/2, 1/4 or 1/8 scale by libjpeg itself (``draft``) while the
    shorter side stays >= ``min_side``: several times cheaper than a full decode. Other
    formats are decoded whole, then box-reduced by an integer factor under the same rule.
    The budget is checked again first (photos stored before it existed, or under another).
    """
    # A path (a missing file is a storage fault: OSError), or the bytes read elsewhere.
    data = path if isinstance(path, bytes) else Path(path).read_bytes()
    try:
        with Image.open(io.BytesIO(data), formats=_OPENERS) as source:
            budget.check(source.format or "?", source.size, data)
            if source.format in _JPEG_FAMILY and min_side > 0:
                source.draft("RGB", (min_side, min_side))
            source.load()
            image = _to_rgb(_upright(source))
    except UnsupportedImage:
        raise
    except Exception as exc:
        raise UnsupportedImage(f"{_CORRUPT} ({exc})") from exc
    factor = min(image.size) // min_side if min_side > 0 else 1
    if factor >= 2:
        image = image.reduce(factor)  # rounds up, so the shorter side stays >= min_side
    return image
