"""Uploads: stream to the spool, record the job, commit, then enqueue ``ingest``."""

from __future__ import annotations

import codecs
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from sqlalchemy import select

from pawdex.core.animals import Grouping
from pawdex.core.archive import detect_archive_kind, sanitize_member_name
from pawdex.core.db import session_scope
from pawdex.core.errors import PawdexError, UnsupportedArchive
from pawdex.core.jobs import job_name
from pawdex.core.models import Job, JobKind, JobOrigin, JobStatus, utcnow
from pawdex.core.queue import enqueue_ingest
from pawdex.core.settings import Settings

CHUNK = 1024 * 1024
UPLOAD_FIELD = "file"  # the form field whose parts are the uploaded files


class UploadTooLarge(PawdexError):
    """The upload is larger than ``max_upload_bytes``."""


class MalformedUpload(PawdexError):
    """A multipart body that cannot be parsed (the API answers 400)."""


class BrokerUnavailable(PawdexError):
    """The job was recorded but could not be queued."""


WRITER_PREFIX = ".writer-"


@dataclass
class IncomingFile:
    name: str
    stream: BinaryIO


@dataclass
class SpooledFile:
    """One uploaded file, written in the spool once. ``name`` is the client's, unsanitised."""

    name: str
    path: Path
    size: int = 0


class SpoolBatch:
    """One upload's files in ``<spool>/<hex>/<number>``, written as they arrive (the upload
    limit checked on every write). It is deleted by :meth:`discard` unless a committed job
    has claimed it (:func:`submit_batch`); then the worker deletes it when the job ends."""

    def __init__(self, settings: Settings) -> None:
        self.dir = settings.spool_dir / uuid.uuid4().hex
        self.limit = settings.max_upload_bytes
        self.received = 0
        self.files: list[SpooledFile] = []
        self.claimed = False
        self._out: BinaryIO | None = None

    def begin(self, name: str) -> SpooledFile:
        """Start the next file; its bytes follow through :meth:`write`."""
        self.end()
        if not self.dir.exists():
            self.dir.mkdir(parents=True)
            # Who writes here: a batch whose writer died (an API killed mid-upload) is swept
            # at once, not after an hour.
            (self.dir / _writer_mark()).touch()
        spooled = SpooledFile(name, self.dir / f"{len(self.files):06d}")
        self._out = spooled.path.open("xb")
        self.files.append(spooled)
        return spooled

    def write(self, data: bytes | memoryview) -> None:
        self.received += len(data)
        if self.received > self.limit:
            raise UploadTooLarge(f"upload larger than the limit of {self.limit} bytes")
        assert self._out is not None, "write() before begin()"
        self._out.write(data)
        self.files[-1].size += len(data)

    def adopt(self, name: str, path: Path) -> SpooledFile:
        """Take a file already whole on this disk (a finished resumable upload) as the next
        file: hard-linked, not copied (copied where a link cannot be made). ``path`` stays."""
        spooled = self.begin(name)
        self.end()
        spooled.path.unlink()
        try:
            os.link(path, spooled.path)
        except OSError:  # another file system, or one without hard links
            shutil.copyfile(path, spooled.path)
        spooled.size = spooled.path.stat().st_size
        return spooled

    def end(self) -> None:
        """The current file is complete (closed: no descriptor is held between files)."""
        if self._out is not None:
            self._out.close()
            self._out = None

    def claim(self) -> None:
        """A committed job reads these files now; the worker deletes them when it ends."""
        self.claimed = True
        (self.dir / _writer_mark()).unlink(missing_ok=True)

    def discard(self) -> None:
        """Delete what was spooled, unless a job owns it now."""
        self.end()
        if not self.claimed:
            shutil.rmtree(self.dir, ignore_errors=True)

    def source(self) -> list[dict]:
        """What the job records: each file's sanitised client name and its spool path."""
        return [
            {
                # Client file names are untrusted text, like archive member names.
                "name": sanitize_member_name(spooled.name or f"file-{number}"),
                "spool": f"{self.dir.name}/{spooled.path.name}",
            }
            for number, spooled in enumerate(self.files)
        ]


def _writer_mark(pid: int | None = None) -> str:
    return f"{WRITER_PREFIX}{socket.gethostname()}-{pid or os.getpid()}"


def _writer_died(batch: Path) -> bool:
    """The batch's writer was a process of this host that is gone."""
    here = f"{WRITER_PREFIX}{socket.gethostname()}-"
    for mark in batch.glob(f"{WRITER_PREFIX}*"):
        pid = mark.name.removeprefix(here)
        if mark.name.startswith(here) and pid.isdigit():
            return Path("/proc/self").exists() and not Path(f"/proc/{pid}").exists()
    return False


def spool_files(files: Iterable[IncomingFile], settings: Settings) -> SpoolBatch:
    """Files already open in this process (``pawdex index --local``), copied into a batch."""
    batch = SpoolBatch(settings)
    try:
        for incoming in files:
            batch.begin(incoming.name)
            while chunk := incoming.stream.read(CHUNK):
                batch.write(chunk)
        batch.end()
    except BaseException:
        batch.discard()
        raise
    return batch


class MultipartSpool:
    """A ``multipart/form-data`` body parsed as it arrives (python-multipart's streaming
    parser), the file parts of ``field`` written straight into ``batch``: the body is written
    to disk once, by the parser's callbacks, never kept whole in memory nor copied again.

    Sans-I/O and blocking: feed it the body's chunks (from a thread, in the API), then call
    :meth:`close` for the form's fields in order, ``(name, SpooledFile)`` for the spooled
    files and ``(name, text)`` for text fields. File parts of other fields are read and
    dropped. The limits and messages are Starlette's own for its form parser."""

    def __init__(
        self,
        content_type: str,
        batch: SpoolBatch,
        *,
        field: str = UPLOAD_FIELD,
        max_files: float = 1000,
        max_fields: float = 1000,
        max_part_size: int = 1024 * 1024,
    ) -> None:
        _, params = parse_options_header(content_type)
        if b"boundary" not in params:
            raise MalformedUpload("Missing boundary in multipart.")
        try:
            self._charset = codecs.lookup(params.get(b"charset", b"utf-8").decode()).name
        except (LookupError, UnicodeDecodeError):
            self._charset = "latin-1"
        self.batch = batch
        self.field = field
        self.limits = (max_files, max_fields, max_part_size)
        self.fields: list[tuple[str, SpooledFile | str]] = []
        self._files = self._texts = 0
        self._headers: dict[bytes, bytes] = {}
        self._header = [b"", b""]
        self._name = ""
        self._kind: str | None = None  # "spool", "text" or "drop": where the part's data goes
        self._text = bytearray()
        callbacks = {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._header_piece(0, data, start, end),
            "on_header_value": lambda data, start, end: self._header_piece(1, data, start, end),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }
        try:
            self._parser = MultipartParser(params[b"boundary"], callbacks)
        except FormParserError as exc:
            raise MalformedUpload("Invalid multipart data.") from exc

    def feed(self, chunks: Iterable[bytes]) -> None:
        try:
            for chunk in chunks:
                self._parser.write(chunk)
        except FormParserError as exc:
            raise MalformedUpload("Invalid multipart data.") from exc

    def close(self) -> list[tuple[str, SpooledFile | str]]:
        """The body has ended: the form's fields. A body cut inside a part is malformed."""
        if self._kind is not None:
            raise MalformedUpload("Invalid multipart data: the body ends inside a part.")
        self._parser.finalize()
        return self.fields

    # python-multipart's callbacks: ``data[start:end]`` is this call's piece of the body.

    def _part_begin(self) -> None:
        self._headers = {}
        self._kind = "drop"

    def _header_piece(self, which: int, data: bytes, start: int, end: int) -> None:
        self._header[which] += data[start:end]

    def _header_end(self) -> None:
        name, value = self._header
        self._headers[name.lower()] = value
        self._header = [b"", b""]

    def _headers_finished(self) -> None:
        max_files, max_fields, _ = self.limits
        _, options = parse_options_header(self._headers.get(b"content-disposition"))
        if b"name" not in options:
            raise MalformedUpload('The Content-Disposition header field "name" must be provided.')
        self._name = self._decode(options[b"name"])
        if b"filename" in options:
            self._files += 1
            if self._files > max_files:
                raise MalformedUpload(f"Too many files. Maximum number of files is {max_files}.")
            if self._name == self.field:
                self._kind = "spool"
                self.fields.append(
                    (self._name, self.batch.begin(self._decode(options[b"filename"])))
                )
        else:
            self._texts += 1
            if self._texts > max_fields:
                raise MalformedUpload(f"Too many fields. Maximum number of fields is {max_fields}.")
            self._kind, self._text = "text", bytearray()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._kind == "spool":
            self.batch.write(memoryview(data)[start:end])  # no copy of the bytes
        elif self._kind == "text":
            max_part_size = self.limits[2]
            if len(self._text) + end - start > max_part_size:
                raise MalformedUpload(f"Part exceeded maximum size of {max_part_size // 1024}KB.")
            self._text += data[start:end]

    def _part_end(self) -> None:
        if self._kind == "spool":
            self.batch.end()
        elif self._kind == "text":
            self.fields.append((self._name, self._decode(self._text)))
        self._kind = None

    def _decode(self, raw: bytes | bytearray) -> str:
        try:
            return raw.decode(self._charset)
        except UnicodeDecodeError:
            return raw.decode("latin-1")


def sweep_spool(settings: Settings, min_age_s: float = 3600) -> list[str]:
    """Delete spool batches that no queued or running job reads: what an API killed while
    spooling left behind (its job was never committed), and the uploads of failed jobs.

    Only batches untouched for ``min_age_s`` go (a batch being spooled right now by another
    API process has no job yet), or at once those whose writer, a process of this host, is
    gone. Returns the names of the batches deleted."""
    spool = settings.spool_dir
    if not spool.is_dir():
        return []
    with session_scope(settings) as session:
        sources = session.scalars(
            select(Job.source).where(Job.status.in_([JobStatus.queued, JobStatus.running]))
        )
        in_use = {
            item["spool"].split("/", 1)[0]
            for source in sources
            for item in source or []
            if "spool" in item  # not the files pawdex index --local reads in place
        }
    cutoff = time.time() - min_age_s
    deleted = []
    for batch in spool.iterdir():
        if batch.name in in_use:
            continue
        try:
            newest = max(p.stat().st_mtime for p in (batch, *batch.rglob("*")))
        except OSError:
            continue  # deleted meanwhile
        if newest < cutoff or (batch.is_dir() and _writer_died(batch)):
            if batch.is_dir():
                shutil.rmtree(batch, ignore_errors=True)
            else:
                batch.unlink(missing_ok=True)
            deleted.append(batch.name)
    return deleted


def submit(
    kind: JobKind, files: list[IncomingFile], settings: Settings, *, enqueue: bool = True
) -> Job:
    """Spool the files, create the job and queue it. Returns the committed job."""
    settings.ensure_dirs()
    return submit_batch(kind, spool_files(files, settings), settings, enqueue=enqueue)


def submit_batch(
    kind: JobKind,
    batch: SpoolBatch,
    settings: Settings,
    *,
    enqueue: bool = True,
    name: str | None = None,
    origin: JobOrigin = JobOrigin.upload,
    created_by: str | None = None,
    created_by_key_id: int | None = None,
    grouping: str = "photo",
) -> Job:
    """Record the job of files already spooled (it claims the batch) and queue it. The
    batch is deleted if no job could be recorded. ``name``: what people call it (default:
    the upload's file name, see ``job_name``); ``created_by``: the key's name (and id);
    ``grouping``:
    how its photos become animals (``core.animals.Grouping``, refused if it cannot be used)."""
    try:
        grouping = Grouping.parse(grouping).text
        items = batch.source()
        if kind == JobKind.archive:
            for item in items:
                if detect_archive_kind(settings.spool_dir / item["spool"]) is None:
                    raise UnsupportedArchive(
                        f"{item['name']}: not a zip or tar archive (.zip, .tar, .tar.gz, .tgz)"
                    )
        with session_scope(settings) as session:
            job = Job(
                kind=kind, source=items, origin=origin, created_by=created_by,
                created_by_key_id=created_by_key_id, grouping=grouping,
                name=job_name([item["name"] for item in items], name),
            )  # fmt: skip
            session.add(job)
    except BaseException:
        batch.discard()
        raise
    batch.claim()
    if not enqueue:
        return job
    try:
        enqueue_ingest(job.id, settings)
    except Exception as exc:
        with session_scope(settings) as session:
            row = session.get(Job, job.id)
            row.status = JobStatus.failed
            row.message = f"could not queue the job: {exc}"
            row.finished_at = utcnow()
        raise BrokerUnavailable("the job queue is unavailable; try again shortly") from exc
    return job


def record_in_place(
    kind: JobKind, paths: list[Path], settings: Settings, name: str | None = None
) -> Job:
    """Record a job that reads files, archives or folders where they are (``pawdex index
    --local``): nothing is spooled, and ingest never deletes them."""
    items = [{"name": path.name, "path": str(path.resolve())} for path in paths]
    with session_scope(settings) as session:
        job = Job(
            kind=kind, source=items, origin=JobOrigin.cli, created_by="pawdex index --local",
            name=job_name([item["name"] for item in items], name),
        )  # fmt: skip
        session.add(job)
    return job
