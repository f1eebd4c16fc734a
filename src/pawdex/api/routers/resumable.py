"""Resumable uploads: tus 1.0 at ``/v1/uploads`` (tuspyserver's router), and the job a
finished upload becomes (``POST /v1/uploads/{id}/job``).

A client creates an upload (``POST /v1/uploads`` with ``Upload-Length`` and
``Upload-Metadata`` ``filename`` and ``filetype``; the answer's ``Location`` is the upload),
sends its bytes in chunks (``PATCH`` at the ``Upload-Offset`` that ``HEAD`` answers: a
dropped connection costs the chunk in flight, never the upload), then asks for its job.
Archivists and admins only. The protocol's routes stay out of the OpenAPI document (a
raw-body protocol it cannot describe, spoken by tus clients); the job route is in it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, BinaryIO

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Path, status
from starlette.concurrency import run_in_threadpool
from tuspyserver import create_tus_router
from tuspyserver.storage.local import LocalFileStorage

from pawdex.api.deps import ArchivistKey, SettingsDep, found, require
from pawdex.api.schemas import ErrorOut, JobAccepted, ResumableJobIn, errors
from pawdex.core.models import JobOrigin, Role
from pawdex.core.resumable import UPLOAD_ID, submit_upload, sweep_resumable
from pawdex.core.settings import Settings

PREFIX = "/v1/uploads"


class ChunkStorage(LocalFileStorage):
    """tuspyserver's filesystem backend, but each PATCH's bytes go to disk as they arrive (in
    a thread, off the event loop) rather than held in memory until the request ends, and at
    the offset the sidecar records: bytes past it (a request refused half-way, a crash before
    the sidecar was saved) are cut off before the next write, never resumed after."""

    def __init__(self, files_dir: str) -> None:
        super().__init__(files_dir)
        self._writing: dict[str, BinaryIO] = {}

    def _path(self, uid: str) -> str:
        if not re.match(UPLOAD_ID, uid):  # never a sidecar, a marker or the lock folder
            raise HTTPException(404, "upload not found")
        return super()._path(uid)

    def _open_at_offset(self, uid: str) -> BinaryIO:
        with open(self._info_path(uid)) as fh:
            offset = int(json.load(fh)["offset"])
        out = open(self._path(uid), "r+b")  # noqa: SIM115  (closed by flush or the lock)
        out.truncate(offset)
        out.seek(offset)
        return out

    async def append(self, uid: str, chunk: bytes) -> None:
        out = self._writing.get(uid)
        if out is None:
            out = self._writing[uid] = await asyncio.to_thread(self._open_at_offset, uid)
        await asyncio.to_thread(out.write, chunk)

    async def flush(self, uid: str) -> None:
        """Durable before the new offset is recorded (tuspyserver saves it next)."""
        if (out := self._writing.pop(uid, None)) is not None:
            await asyncio.to_thread(_close, out, sync=True)

    async def delete(self, uid: str) -> None:
        await self._drop(uid)
        await super().delete(uid)

    async def _drop(self, uid: str) -> None:
        if (out := self._writing.pop(uid, None)) is not None:
            await asyncio.to_thread(_close, out, sync=False)

    @asynccontextmanager
    async def lock(self, uid: str) -> AsyncIterator[None]:
        async with super().lock(uid):
            try:
                yield
            finally:  # a request that failed before its flush
                await self._drop(uid)


def _close(out: BinaryIO, sync: bool) -> None:
    try:
        if sync:
            out.flush()
            os.fsync(out.fileno())
    finally:
        out.close()


def _tus_routes(settings: Settings) -> APIRouter:
    """The tus 1.0 routes (creation, HEAD, PATCH, termination, OPTIONS) for these settings."""
    limit = settings.max_resumable_bytes

    async def before_create(metadata: dict, upload: dict) -> None:
        if upload["size"] is None and not upload["defer_length"]:
            raise HTTPException(400, "Upload-Length (or Upload-Defer-Length: 1) is required")
        if upload["size"] is not None and upload["size"] > limit:
            raise HTTPException(413, f"upload larger than the limit of {limit} bytes")
        if not (metadata.get("filename") and metadata.get("filetype")):
            raise HTTPException(
                400, "Upload-Metadata needs filename and filetype (each base64-encoded)"
            )
        await run_in_threadpool(sweep_resumable, settings)  # the abandoned ones go

    return create_tus_router(
        prefix=PREFIX,
        files_dir=str(settings.resumable_dir),
        max_size=limit,
        days_to_keep=settings.resumable_expiry_days,
        pre_create_hook=before_create,
        tags=["uploads"],
        storage=ChunkStorage(str(settings.resumable_dir)),
    )


router = APIRouter(
    prefix=PREFIX,
    tags=["uploads"],
    responses={
        **errors(400, 401, 403, 404, 429, 503),
        409: {"model": ErrorOut, "description": "The upload has not received all its bytes."},
    },
)

UploadId = Annotated[
    str,
    Path(
        pattern=UPLOAD_ID,
        description="The upload: the last part of the `Location` that `POST /v1/uploads` answered.",
        examples=["9b1d4c0e5f2a4e8c8d7b6a5f4e3d2c1b"],
    ),
]


@router.post("/{upload_id}/job", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted)
def upload_job(
    upload_id: UploadId,
    settings: SettingsDep,
    key: ArchivistKey,
    body: Annotated[ResumableJobIn | None, Body()] = None,
) -> JobAccepted:
    """Index a finished resumable upload: an archive (.zip, .tar, .tar.gz, .tgz) or a photo,
    as its bytes say. Asked again, it answers the same job (an answer lost on the way costs
    nothing); 409 while the upload still lacks bytes."""
    body = body or ResumableJobIn()
    job = submit_upload(
        upload_id,
        settings,
        name=body.name,
        origin=JobOrigin(body.origin),
        created_by=key.name,
        created_by_key_id=key.id,
        grouping=body.grouping,
    )
    return JobAccepted.of(found(job, f"upload {upload_id}"))


def add_resumable_uploads(app: FastAPI, settings: Settings) -> None:
    # The role is checked before anything else the tus routes do: not through tuspyserver's
    # own ``auth`` option, which its PATCH resolves after it has written the body.
    app.include_router(
        _tus_routes(settings),
        include_in_schema=False,
        dependencies=[Depends(require(Role.archivist))],
    )
    app.include_router(router)
