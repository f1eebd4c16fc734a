"""Archives of the real labelled photos (built in tmp dirs, never committed)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from tests.conftest import LabelledPhoto
from tests.factories import jpeg_bytes


def pick(photos: list[LabelledPhoto], dogs: int, others: int) -> list[LabelledPhoto]:
    dog_photos = [p for p in photos if p.is_dog]
    step = max(1, len(dog_photos) // dogs)
    chosen = dog_photos[::step][:dogs]
    return chosen + [p for p in photos if not p.is_dog][:others]


def shelter_zip(path: Path, photos: list[LabelledPhoto]) -> tuple[Path, dict[str, str]]:
    """Photos in per-animal folders plus three bad or duplicate entries.

    Returns the archive and the expected label per stored path."""
    expected: dict[str, str] = {}
    with zipfile.ZipFile(path, "w") as zf:
        for i, photo in enumerate(photos):
            name = f"{2018 + i % 3}/animal-{i:03d}/{photo.path.name}"
            zf.write(photo.path, name)
            expected[name] = photo.breed
        zf.write(photos[0].path, "duplicates/same-photo-again.jpg")
        zf.writestr("notes/not-a-photo.jpg", b"shelter notes, typed by a volunteer\n")
        zf.writestr("2020/truncated.jpg", jpeg_bytes(seed=99)[:300])
    return path, expected
