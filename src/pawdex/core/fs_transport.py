"""kombu's filesystem transport (the embedded broker), with atomic message files.

kombu writes each message straight into the folder the workers poll, under its final
``.msg`` name: a worker polling at that moment can take the file while it is still empty
and die on ``JSONDecodeError`` (seen in the browser tests). Here the message is written
under a name no worker takes (``….msg.part``) and renamed into place, which is atomic."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

from pawdex.fileio import atomic_write

ALIAS = "pawdexfs"


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        try:
            atomic_write(Path(final), str_to_bytes(dumps(payload)))
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


TRANSPORT_ALIASES.setdefault(ALIAS, f"{__name__}:Transport")
