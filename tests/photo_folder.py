"""The real labelled photos as an ImageFolder tree of symlinks (never copies):
``python -m tests.photo_folder OUT`` → ``OUT/<breed>/<file>``, non-dogs under ``_not_a_dog``.
Used to train and cross-validate heads on ``../shared/photos`` (docs/training.md)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from tests.conftest import PHOTOS_DIR


def build_photo_folder(out: Path, photos_dir: Path = PHOTOS_DIR, dogs_only: bool = False) -> Path:
    with (photos_dir / "labels.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        label = "_not_a_dog" if row["breed"] == "not_dog" else row["breed"]
        if dogs_only and label == "_not_a_dog":
            continue
        target = out / label / row["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to((photos_dir / row["file"]).resolve())
    return out


if __name__ == "__main__":
    print(build_photo_folder(Path(sys.argv[1]), dogs_only="--dogs-only" in sys.argv))
