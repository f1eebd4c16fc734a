"""Inputs the tests generate: photos, archives."""

from __future__ import annotations

import io
import random
import tarfile
import zipfile
from pathlib import Path

from PIL import Image


def jpeg_bytes(width: int = 320, height: int = 240, seed: int = 0, quality: int = 85) -> bytes:
    """A distinct (by seed) noisy JPEG: every seed gives different bytes."""
    rng = random.Random(seed)
    img = Image.effect_noise((width, height), 40 + seed % 50).convert("RGB")
    img.paste(
        (rng.randrange(256), rng.randrange(256), rng.randrange(256)),
        (0, 0, width // 3, height // 3),
    )
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png_bytes(width: int = 64, height: int = 48, color=(10, 200, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


def make_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def make_tar(path: Path, entries: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path
