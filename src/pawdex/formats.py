"""The photo formats pawdex accepts: Pillow's name for each, the media type it is served as
and the extension it is stored under. Plain data, shared by every layer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PhotoFormat:
    name: str  # what Pillow reports (HEIC files report "HEIF"; MPO is a multi-picture JPEG)
    media_type: str
    extension: str  # the one pawdex stores the file under
    extensions: tuple[str, ...]  # every one a file of this format is usually named with


FORMATS: dict[str, PhotoFormat] = {
    f.name: f
    for f in (
        PhotoFormat("JPEG", "image/jpeg", "jpg", ("jpg", "jpeg", "jpe", "jfif")),
        # Browsers do not know image/mpo; its first picture is a plain JPEG.
        PhotoFormat("MPO", "image/jpeg", "jpg", ("mpo",)),
        PhotoFormat("PNG", "image/png", "png", ("png",)),
        PhotoFormat("WEBP", "image/webp", "webp", ("webp",)),
        PhotoFormat("GIF", "image/gif", "gif", ("gif",)),
        PhotoFormat("BMP", "image/bmp", "bmp", ("bmp",)),
        PhotoFormat("TIFF", "image/tiff", "tif", ("tif", "tiff")),
        PhotoFormat("HEIF", "image/heif", "heic", ("heic", "heif")),
    )
}

ALLOWED_FORMATS: tuple[str, ...] = tuple(FORMATS)
MEDIA_TYPES: tuple[str, ...] = tuple(dict.fromkeys(f.media_type for f in FORMATS.values()))
PHOTO_EXTENSIONS: frozenset[str] = frozenset(
    f".{ext}" for f in FORMATS.values() for ext in f.extensions
)
"""File name suffixes (with the dot, lower case) of the accepted formats."""


def media_type(image_format: str) -> str:
    """The media type a stored photo of this Pillow format is served as."""
    found = FORMATS.get(image_format.upper())
    return found.media_type if found else "application/octet-stream"


def storage_extension(image_format: str) -> str:
    found = FORMATS.get(image_format.upper())
    return found.extension if found else "bin"
