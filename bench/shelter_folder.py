"""A shelter's folder of N distinct photos made from the real ones, laid out by year and
animal (``OUT/year-2015/A100000/00000.jpg``): each file is a real photo with a unique trailer,
a distinct sha256 that still decodes.

    python -m bench.shelter_folder OUT [N]   (PAWDEX_PHOTOS_DIR, default ../shared/photos)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def write_shelter_folder(out: Path, count: int, photos_dir: Path) -> None:
    source = sorted(
        p for p in photos_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")
    )
    for i in range(count):
        photo = source[i % len(source)]
        folder = out / f"year-{2015 + i % 10}" / f"A{100000 + i // 4}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:05d}{photo.suffix}").write_bytes(photo.read_bytes() + f"pawdex-{i}".encode())


if __name__ == "__main__":
    photos = Path(os.environ.get("PAWDEX_PHOTOS_DIR", "../shared/photos"))
    write_shelter_folder(
        Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 10_000, photos
    )
