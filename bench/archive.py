"""Camera-size benchmark photos made from real ones, and archives of them (Pillow only).

Every photo is a real photo upscaled to 1600x1200 (1200x1600 for portrait sources) with its
own zoom, crop offset and mirror, and a small pixel mark that encodes (series, index): no two
photos of a bench are byte-equal, so content-addressed dedupe never skips one.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import zipfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

CAMERA_SIZE = (1600, 1200)
JPEG_QUALITY = 90
SOURCE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
MARK_BITS = 48
MARK_CELL = 6  # pixels per bit: survives JPEG quantisation


def source_photos(folder: Path) -> list[Path]:
    """The readable photos of ``folder`` (sorted; unreadable files are left out)."""
    photos = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in SOURCE_SUFFIXES or not path.is_file():
            continue
        try:
            with Image.open(path) as img:
                img.verify()
        except Exception:
            continue
        photos.append(path)
    if not photos:
        raise FileNotFoundError(f"no readable photos in {folder}")
    return photos


def _mark_bits(series: str, index: int) -> list[int]:
    digest = hashlib.sha256(f"{series}:{index}".encode()).digest()
    value = int.from_bytes(digest[: MARK_BITS // 8], "big")
    return [(value >> bit) & 1 for bit in range(MARK_BITS)]


def render_photo(index: int, sources: list[Path], series: str) -> bytes:
    """Photo ``index`` of ``series`` as camera-size JPEG bytes."""
    source = sources[index % len(sources)]
    variant = index // len(sources)
    with Image.open(source) as opened:
        img = ImageOps.exif_transpose(opened).convert("RGB")
    width, height = CAMERA_SIZE if img.width >= img.height else CAMERA_SIZE[::-1]
    zoom = 1.0 + 0.04 * (variant % 8)
    scale = max(width / img.width, height / img.height) * zoom
    big = img.resize(
        (max(width, round(img.width * scale)), max(height, round(img.height * scale))),
        Image.Resampling.BICUBIC,
    )
    slack_x, slack_y = big.width - width, big.height - height
    left = slack_x * ((variant * 3) % 7) // 6
    top = slack_y * ((variant * 5) % 7) // 6
    photo = big.crop((left, top, left + width, top + height))
    if variant % 2:
        photo = ImageOps.mirror(photo)
    draw = ImageDraw.Draw(photo)
    for bit, on in enumerate(_mark_bits(series, index)):
        x = width - (bit % 12 + 1) * MARK_CELL
        y = height - (bit // 12 + 1) * MARK_CELL
        fill = (255, 255, 255) if on else (0, 0, 0)
        draw.rectangle((x, y, x + MARK_CELL - 1, y + MARK_CELL - 1), fill=fill)
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def photo_name(index: int) -> str:
    return f"shelter/{index // 100:04d}/photo-{index:06d}.jpg"


def render_photos(count: int, sources: list[Path], series: str) -> Iterator[bytes]:
    """``count`` photos in order, rendered on every core (spawned processes: no torch fork)."""
    if count <= 16:
        for index in range(count):
            yield render_photo(index, sources, series)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1, mp_context=context) as pool:
        yield from pool.map(
            partial(render_photo, sources=sources, series=series), range(count), chunksize=8
        )


def build_archive(path: Path, count: int, sources: list[Path], series: str) -> Path:
    """A zip of ``count`` distinct camera-size JPEGs (stored: JPEGs are compressed already)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for index, data in enumerate(render_photos(count, sources, series)):
            zf.writestr(photo_name(index), data)
    return path
