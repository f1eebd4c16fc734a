"""Content-addressed file storage: photos by sha256, thumbnails beside them.

Paths are derived from the hash only, so nothing a user sends can choose where a file lands.
"""

from __future__ import annotations

from pathlib import Path

from pawdex.fileio import atomic_write
from pawdex.formats import storage_extension


class Storage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def image_key(self, sha256: str, image_format: str) -> str:
        ext = storage_extension(image_format)
        return f"images/{sha256[:2]}/{sha256[2:4]}/{sha256}.{ext}"

    @staticmethod
    def thumbnail_key(sha256: str) -> str:
        return f"thumbs/{sha256[:2]}/{sha256[2:4]}/{sha256}.jpg"

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"storage key escapes the storage dir: {key!r}")
        return path

    def put(self, key: str, data: bytes) -> Path:
        """Write atomically; an existing file with the same key is kept (same content)."""
        target = self.path(key)
        if target.exists():
            return target
        return atomic_write(target, data, mode=0o644)
