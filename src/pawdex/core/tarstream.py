"""A tar archive written member by member as it is sent: many small files in one response,
read by any tar reader (Python's ``tarfile``, ``tar -x``), without holding them all."""

from __future__ import annotations

import tarfile
from collections.abc import Iterable, Iterator

BLOCK = 512


def tar_stream(members: Iterable[tuple[str, bytes]]) -> Iterator[bytes]:
    """USTAR header, the bytes, padding to a block, per member; two zero blocks at the end."""
    for name, data in members:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        yield info.tobuf(format=tarfile.USTAR_FORMAT) + data + bytes(-len(data) % BLOCK)
    yield bytes(2 * BLOCK)
