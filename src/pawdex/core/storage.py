"""Content-addressed file storage: photos by sha256, thumbnails beside them.

Paths are derived from the hash only, so nothing a user sends can choose where a file lands.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

EXTENSIONS = {
    "JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif",
    "BMP": "bmp", "TIFF": "tif", "HEIF": "heic",
}  # fmt: skip


class Storage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def image_key(self, sha256: str, image_format: str) -> str:
        ext = EXTENSIONS.get(image_format.upper(), "bin")
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
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target
