"""Uploads: single or many photos, and archives. Both answer 202 with the queued job."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, UploadFile, status

from pawdex.api.deps import SettingsDep, require
from pawdex.api.schemas import JobAccepted, errors
from pawdex.core.models import JobKind, Role
from pawdex.core.uploads import IncomingFile, submit

router = APIRouter(
    prefix="/v1",
    tags=["uploads"],
    dependencies=[Depends(require(Role.archivist))],
    responses=errors(400, 401, 403, 413, 429, 503),
)

Files = Annotated[
    list[UploadFile], File(min_length=1, description="One or more files (field name `file`).")
]


def _incoming(files: list[UploadFile]) -> list[IncomingFile]:
    return [IncomingFile(name=f.filename or "", stream=f.file) for f in files]


@router.post("/images", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted)
def upload_images(file: Files, settings: SettingsDep) -> JobAccepted:
    """Index one or more photos. Unreadable files become per-file errors of the job."""
    return JobAccepted.of(submit(JobKind.images, _incoming(file), settings))


@router.post(
    "/archives",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    responses=errors(415),
)
def upload_archive(file: Files, settings: SettingsDep) -> JobAccepted:
    """Index every photo of a .zip, .tar, .tar.gz or .tgz archive (folders kept as paths)."""
    return JobAccepted.of(submit(JobKind.archive, _incoming(file), settings))
