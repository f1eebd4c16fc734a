"""Sending an archive as a resumable upload (tus 1.0, with tuspy), then asking for its job.

Every archive goes this way, whatever its size: in chunks, so neither the server's limit on
plain uploads nor a dropped connection matters; each chunk is retried a few times, and a run
stopped half-way (Ctrl-C, a crash, a lost network) leaves the upload's URL in a small file
per server beside the journal of ``pawdex index`` (keyed by the archive's fingerprint), so
the next run asks the server where it stopped and sends only the rest.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO

import httpx

from pawdex.cli.client import request
from pawdex.cli.sending import SendError, answer, journal_path

CHUNK_BYTES = 8 * 1024 * 1024  # per PATCH: a dropped connection costs at most this much
RETRIES = 3  # per chunk, RETRY_DELAY_S apart, before the run stops (a rerun resumes)
RETRY_DELAY_S = 2
_EDGE = 1024 * 1024  # bytes read at each end of a file for its fingerprint


def uploads_path(server: str) -> Path:
    """Where the URLs of this machine's unfinished uploads to ``server`` are kept."""
    journal = journal_path(server)
    return journal.parent.parent / "uploads" / f"{journal.stem}.json"


def fingerprint(stream: IO[bytes]) -> str:
    """The same archive, unchanged: its size, modification time and first and last
    megabyte (reading a 100 GB archive whole to resume it would take longer than sending
    what is left)."""
    stat = os.fstat(stream.fileno())
    digest = hashlib.sha256()
    stream.seek(0)
    digest.update(stream.read(_EDGE))
    stream.seek(max(0, stat.st_size - _EDGE))
    digest.update(stream.read(_EDGE))
    return f"size:{stat.st_size}--mtime:{stat.st_mtime_ns}--sha256:{digest.hexdigest()}"


def send_archive(
    client: httpx.Client,
    archive: Path,
    on_progress: Callable[[int, int], None] = lambda sent, total: None,
) -> str:
    """Upload ``archive`` (resuming an earlier run's upload of it) and return its job's id.
    ``on_progress(bytes the server has, size)`` after each chunk."""
    from tusclient.client import TusClient
    from tusclient.exceptions import TusCommunicationError
    from tusclient.fingerprint.interface import Fingerprint
    from tusclient.storage.filestorage import FileStorage

    class ArchiveFingerprint(Fingerprint):
        def get_fingerprint(self, fs: IO[bytes]) -> str:
            return fingerprint(fs)

    what = f"sending {archive.name}"
    key_header = {"X-API-Key": client.headers["x-api-key"]} if "x-api-key" in client.headers else {}
    tus = TusClient(f"{str(client.base_url).rstrip('/')}/v1/uploads", headers=key_header)
    with archive.open("rb") as fh:
        key = fingerprint(fh)
    stored = uploads_path(str(client.base_url))
    stored.parent.mkdir(parents=True, exist_ok=True)
    urls = FileStorage(str(stored))

    def uploader():
        return tus.uploader(
            file_path=str(archive), chunk_size=CHUNK_BYTES, retries=RETRIES,
            retry_delay=RETRY_DELAY_S, store_url=True, url_storage=urls,
            fingerprinter=ArchiveFingerprint(),
            metadata={"filename": archive.name, "filetype": "application/octet-stream"},
        )  # fmt: skip

    upload = None
    try:
        try:
            try:
                upload = uploader()  # asks the server where an earlier run's upload stands
            except TusCommunicationError as exc:
                if exc.status_code not in (404, 410):
                    raise
                urls.remove_item(key)  # expired, or already made into a job: start again
                upload = uploader()
            if not upload.url:
                upload.set_url(upload.create_url())
            on_progress(upload.offset, upload.stop_at)
            while upload.offset < upload.stop_at:
                upload.upload_chunk()
                on_progress(upload.offset, upload.stop_at)
        except TusCommunicationError as exc:
            if exc.status_code is None and (upload is None or not upload.url):
                raise httpx.ConnectError(_reason(exc)) from None  # never reached: is it running?
            raise _one_line(exc, what, str(client.base_url)) from None
        upload_id = upload.url.rstrip("/").rsplit("/", 1)[-1]
        job = {"name": archive.name, "origin": "cli"}
        response = request(client, "POST", f"/v1/uploads/{upload_id}/job", json=job)
        job_id = answer(response, what).json()["job_id"]
        urls.remove_item(key)  # done: a later run sends the archive anew
        return job_id
    finally:
        urls.close()


def _reason(exc: Exception) -> str:
    """The system's words in what requests says of a failed connection ("[Errno 111]
    Connection refused" in two lines of pool and adapter names)."""
    found = re.search(r"\[Errno -?\d+\] [^\"')\]]+", str(exc))
    return found.group(0) if found else str(exc)


def _one_line(exc: Exception, what: str, server: str) -> SendError:
    status = getattr(exc, "status_code", None)
    if status is None:
        return SendError(
            f"{what}: the connection to the pawdex server at {server} failed "
            f"({_reason(exc)}); run the same command again to carry on where it stopped"
        )
    content = getattr(exc, "response_content", None) or b""
    try:
        answer(httpx.Response(status, content=content), what)
    except SendError as error:
        return error
    return SendError(f"{what}: {exc}")
