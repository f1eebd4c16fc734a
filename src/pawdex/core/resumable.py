"""Resumable uploads (tus 1.0): where their bytes wait, the job a finished one becomes, and
the sweeping of abandoned ones.

The protocol is served by tuspyserver (``api.routers.resumable``); what is kept on disk is
its layout, in ``settings.resumable_dir``: ``<id>`` (the bytes received so far) and
``<id>.info`` (JSON: ``size``, ``offset``, ``metadata``, ``expires``). Turning a finished
upload into a job hard-links its bytes into a spool batch (the job's source, deleted by the
worker when the job ends, as for any upload), records the job, then leaves ``<id>.job``
holding the job's id: a client whose answer was lost asks again and gets the same job.
"""

from __future__ import annotations

import fcntl
import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

from pawdex.core.archive import detect_archive_kind
from pawdex.core.db import session_scope
from pawdex.core.errors import PawdexError
from pawdex.core.models import Job, JobKind, JobOrigin
from pawdex.core.settings import Settings
from pawdex.core.uploads import SpoolBatch, submit_batch
from pawdex.fileio import atomic_write

UPLOAD_ID = r"^[0-9a-f]{32}$"  # what tuspyserver names uploads (uuid4().hex)
LOCKS = ".locks"  # tuspyserver's lock folder, shared

log = logging.getLogger(__name__)


class UploadIncomplete(PawdexError):
    """The upload has not received all its bytes yet (the API answers 409)."""


@dataclass(frozen=True)
class UploadState:
    id: str
    filename: str
    size: int | None  # None: the client has not said yet (Upload-Defer-Length)
    offset: int
    expires: datetime | None

    @property
    def complete(self) -> bool:
        return self.size is not None and self.offset == self.size


def data_path(settings: Settings, upload_id: str) -> Path:
    """Where the upload's bytes are written (its id is checked first)."""
    if not re.match(UPLOAD_ID, upload_id):
        raise ValueError(f"not an upload id: {upload_id!r}")
    return settings.resumable_dir / upload_id


def read_upload(settings: Settings, upload_id: str) -> UploadState | None:
    """The upload's state as its sidecar records it; None when there is no such upload."""
    try:
        info = json.loads((data_path(settings, upload_id).with_suffix(".info")).read_text())
        metadata = info.get("metadata") or {}
        return UploadState(
            id=upload_id,
            filename=metadata.get("filename") or metadata.get("name") or "",
            size=info.get("size"),
            offset=int(info.get("offset") or 0),
            expires=_expiry(info.get("expires")),
        )
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def _expiry(value: object) -> datetime | None:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            return parsedate_to_datetime(value)  # RFC 7231, as tus writes it
        except (TypeError, ValueError):
            return None
    return None


@contextmanager
def _exclusive(settings: Settings, upload_id: str) -> Iterator[None]:
    """One job request per upload at a time, across the API's processes."""
    lock = settings.resumable_dir / LOCKS / f"{upload_id}.job.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _marker(settings: Settings, upload_id: str) -> Path:
    return data_path(settings, upload_id).with_suffix(".job")


def submit_upload(
    upload_id: str,
    settings: Settings,
    *,
    name: str | None = None,
    origin: JobOrigin = JobOrigin.upload,
    created_by: str | None = None,
    created_by_key_id: int | None = None,
    grouping: str = "photo",
) -> Job | None:
    """The job of a finished upload: created and queued the first time, the same job every
    time after. None when there is no such upload; ``UploadIncomplete`` while bytes are
    missing. An archive or photos, as the bytes say (never the file's name)."""
    data_path(settings, upload_id)  # a well-formed id, or ValueError
    with _exclusive(settings, upload_id):
        marker = _marker(settings, upload_id)
        if marker.is_file():
            with session_scope(settings) as session:
                return session.get(Job, marker.read_text().strip())
        upload = read_upload(settings, upload_id)
        data = data_path(settings, upload_id)
        if upload is None or not data.is_file():
            return None
        if not upload.complete:
            total = "an unknown number of" if upload.size is None else f"{upload.size}"
            raise UploadIncomplete(
                f"upload {upload_id} has received {upload.offset} of {total} bytes: "
                "send the rest (PATCH), then ask for its job again"
            )
        kind = JobKind.archive if detect_archive_kind(data) is not None else JobKind.images
        batch = SpoolBatch(settings)
        batch.adopt(upload.filename, data)
        # On a refusal or an outage the upload stays whole: the client may ask again.
        job = submit_batch(
            kind, batch, settings, name=name, origin=origin, created_by=created_by,
            created_by_key_id=created_by_key_id, grouping=grouping,
        )  # fmt: skip
        atomic_write(marker, job.id)
        for leftover in (data, data.with_suffix(".info")):
            leftover.unlink(missing_ok=True)
    log.info("event=resumable_job upload_id=%s job_id=%s kind=%s", upload_id, job.id, kind)
    return job


def sweep_resumable(settings: Settings, now: float | None = None) -> list[str]:
    """Delete the unfinished uploads whose expiry has passed (``resumable_expiry_days`` after
    they were created: tus answers 410 for them by then), and the job markers older than
    that (a lost answer is asked again within minutes, not days). Returns the ids swept."""
    folder = settings.resumable_dir
    if not folder.is_dir():
        return []
    now = time.time() if now is None else now
    old = now - settings.resumable_expiry_days * 86400
    swept: set[str] = set()
    for path in folder.iterdir():
        upload_id = path.name.split(".", 1)[0]
        if not re.match(UPLOAD_ID, upload_id):
            continue
        try:
            if path.name.endswith(".info"):
                upload = read_upload(settings, upload_id)
                expires = upload.expires.timestamp() if upload and upload.expires else None
                gone = expires < now if expires is not None else path.stat().st_mtime < old
            else:  # bytes whose sidecar is gone, a job marker, a temporary file
                gone = path.stat().st_mtime < old and not (folder / f"{upload_id}.info").exists()
        except FileNotFoundError:
            continue  # taken meanwhile
        if gone:
            for leftover in (path, folder / upload_id, folder / LOCKS / f"{upload_id}.job.lock"):
                leftover.unlink(missing_ok=True)
            swept.add(upload_id)
    if swept:
        log.info("event=resumable_swept uploads=%s", len(swept))
    return sorted(swept)
