"""Sending a folder's photos to a pawdex server: in bounded batches, only what it lacks.

Whatever the folder's size, memory holds one batch of paths and temp disk holds nothing
(files are streamed from where they are). Before sending, the photos' SHA-256 digests are
checked with the server in bulk (``POST /v1/images/check``), as Immich's CLI does, and a
journal of what was sent and accepted (per server, under the user's cache folder) covers
batches the server has not indexed yet: an interrupted run, started again, sends nothing
twice and carries on where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx

from pawdex.cli.client import is_finished, request
from pawdex.core.archive.folder import folder_files
from pawdex.core.archive.names import junk_reason
from pawdex.fileio import file_sha256

CHECK_AT_ONCE = 1000  # digests per /v1/images/check request (the server's cap)


class SendError(Exception):
    """Why sending stopped, in one line for the person at the terminal."""


@dataclass(frozen=True)
class Photo:
    name: str  # the path the archive will show: "kennel/run-b/rex.jpg"
    path: Path
    size: int


def folder_photos(folder: Path) -> Iterator[Photo]:
    """The files under ``folder`` (sorted, links not followed), system clutter left out."""
    for name, path in folder_files(folder):
        if junk_reason(name) is None:
            yield Photo(name, path, path.stat().st_size)


def journal_path(server: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha256(server.rstrip("/").encode()).hexdigest()[:16]
    return base / "pawdex" / "sent" / f"{digest}.jsonl"


class Journal:
    """What this machine sent to one server and the job that accepted it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sent: dict[str, str] = {}  # sha256 -> job id
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    record = json.loads(line)
                    self.sent.update(dict.fromkeys(record["sha256"], record["job"]))
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a crash: those photos are checked again

    def record(self, job_id: str, digests: list[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as fh:
            fh.write(json.dumps({"job": job_id, "sha256": digests}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.sent.update(dict.fromkeys(digests, job_id))

    def forget(self) -> None:
        """Everything sent is indexed: nothing left to remember."""
        self.path.unlink(missing_ok=True)
        self.sent.clear()


def answer(response: httpx.Response, what: str) -> httpx.Response:
    """``response`` when it succeeded, else a one-line SendError that says what to do."""
    if response.is_success:
        return response
    if response.status_code == 401:
        raise SendError(f"{what}: the server refused the API key (401); pass an archivist "
                        "key with --api-key or PAWDEX_API_KEY")  # fmt: skip
    if response.status_code == 403:
        raise SendError(f"{what}: this key may not upload (403); an archivist key is needed")
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    raise SendError(f"{what}: {response.status_code} {detail}")


class Sender:
    """Checks and sends photos to one server; ``on_progress(n)`` counts photos handled."""

    def __init__(
        self, client: httpx.Client, journal: Journal, batch_files: int, batch_bytes: int
    ) -> None:
        self.client = client
        self.journal = journal
        self.batch_files = batch_files
        self.batch_bytes = batch_bytes
        self.jobs: list[str] = []
        self.already = 0  # photos the server had, or was given by an earlier run
        self._known: set[str] = set()
        self._job_finished: dict[str, bool] = {}

    def send(self, photos: list[Photo], name: str, on_progress: Callable[[int], None]) -> None:
        """Send ``photos`` (one folder) as jobs named ``name``, ``name (2)``…"""
        batches = 0
        for start in range(0, len(photos), CHECK_AT_ONCE):
            chunk = photos[start : start + CHECK_AT_ONCE]
            digests = [file_sha256(photo.path) for photo in chunk]
            self._check(digests)
            new = [(p, d) for p, d in zip(chunk, digests, strict=True) if not self._has(d)]
            self.already += len(chunk) - len(new)
            on_progress(len(chunk) - len(new))
            for batch in self._batches(new):
                batches += 1
                self._post(batch, name if batches == 1 else f"{name} ({batches})")
                on_progress(len(batch))

    def _has(self, digest: str) -> bool:
        return digest in self._known or self._pending(digest)

    def _pending(self, digest: str) -> bool:
        """Sent by an earlier run to a job that has not finished: it will be indexed."""
        job_id = self.journal.sent.get(digest)
        if job_id is None:
            return False
        if job_id not in self._job_finished:
            response = request(self.client, "GET", f"/v1/jobs/{job_id}")
            self._job_finished[job_id] = response.status_code == 404 or (
                response.is_success and is_finished(response.json())
            )
        return not self._job_finished[job_id]

    def _check(self, digests: list[str]) -> None:
        response = request(self.client, "POST", "/v1/images/check", json={"sha256": digests})
        self._known = set(answer(response, "checking what the server has").json()["known"])

    def _batches(self, items: list[tuple[Photo, str]]) -> Iterator[list[tuple[Photo, str]]]:
        batch: list[tuple[Photo, str]] = []
        size = 0
        for photo, digest in items:
            if batch and (len(batch) >= self.batch_files or size + photo.size > self.batch_bytes):
                yield batch
                batch, size = [], 0
            batch.append((photo, digest))
            size += photo.size
        if batch:
            yield batch

    def _post(self, batch: list[tuple[Photo, str]], name: str) -> None:
        with ExitStack() as stack:
            parts = [("file", (p.name, stack.enter_context(p.path.open("rb")))) for p, _ in batch]
            form = {"name": name, "origin": "cli"}
            response = request(self.client, "POST", "/v1/images", files=parts, data=form)
        job_id = answer(response, f"sending {batch[0][0].name}…").json()["job_id"]
        self.journal.record(job_id, [digest for _, digest in batch])
        self.jobs.append(job_id)
