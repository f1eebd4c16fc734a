"""Uploads: single or many photos, and archives. Both answer 202 with the queued job.

The multipart body is parsed as it arrives and each file written straight into the spool
(:class:`SpoolingRequest`): never into a Starlette temporary file first, never copied. The
routes still declare their ``file`` parts as ``UploadFile``: FastAPI validates and documents
them as before (the OpenAPI contract is unchanged); each one stands for its spool file.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

import anyio
from fastapi import (
    APIRouter,
    Depends,
    File,
    Form,
    HTTPException,
    Request,
    Response,
    UploadFile,
    status,
)  # fmt: skip
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from pawdex.api.deps import ArchivistKey, SettingsDep, require
from pawdex.api.schemas import GROUPING_DOC, NO_NUL, JobAccepted, errors
from pawdex.core.jobs import NAME_MAX
from pawdex.core.models import ApiKey, JobKind, JobOrigin, Role
from pawdex.core.settings import Settings
from pawdex.core.uploads import (
    MalformedUpload,
    MultipartSpool,
    SpoolBatch,
    SpooledFile,
    UploadTooLarge,
    submit_batch,
)

FEED_BYTES = 1024 * 1024  # body chunks handed to the parser's thread together


class SpooledUpload(UploadFile):
    """A file part already written (and closed) in the spool: read it from ``spooled.path``."""

    def __init__(self, spooled: SpooledFile) -> None:
        with spooled.path.open("rb") as closed:  # no descriptor held per file
            super().__init__(closed, size=spooled.size, filename=spooled.name)
        self.spooled = spooled

    async def close(self) -> None:
        """Nothing is open."""


class SpoolingRequest(Request):
    """A request whose ``multipart/form-data`` form streams its files into a spool batch."""

    batch: SpoolBatch | None = None

    async def form(  # type: ignore[override]  (awaited by FastAPI, never used as a context)
        self,
        *,
        max_files: int | float = 1000,
        max_fields: int | float = 1000,
        max_part_size: int = 1024 * 1024,
    ) -> FormData:
        limits = {"max_files": max_files, "max_fields": max_fields, "max_part_size": max_part_size}
        content_type = self.headers.get("content-type", "")
        if parse_options_header(content_type)[0] != b"multipart/form-data":
            return await super().form(**limits)  # Starlette's (no files): a 422 follows
        if self._form is None:
            try:
                self._form = await self._spool(content_type, limits)
            except UploadTooLarge as exc:
                raise HTTPException(413, str(exc)) from exc
            except MalformedUpload as exc:
                raise HTTPException(400, str(exc)) from exc
        return self._form

    async def _spool(self, content_type: str, limits: dict[str, Any]) -> FormData:
        self.batch = SpoolBatch(self.app.state.settings)
        parser = MultipartSpool(content_type, self.batch, **limits)
        pending: list[bytes] = []
        size = 0
        async for chunk in self.stream():
            pending.append(chunk)
            size += len(chunk)
            if size >= FEED_BYTES:  # disk writes off the event loop, a megabyte at a time
                await run_in_threadpool(parser.feed, pending)
                pending, size = [], 0
        return await run_in_threadpool(_finish, parser, pending)

    async def discard_unclaimed(self) -> None:
        """Delete the spooled files unless a job took them (a refused or failed request)."""
        if self.batch is not None and not self.batch.claimed:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(self.batch.discard)


def _finish(parser: MultipartSpool, rest: list[bytes]) -> FormData:
    parser.feed(rest)
    return FormData(
        [
            (name, SpooledUpload(value) if isinstance(value, SpooledFile) else value)
            for name, value in parser.close()
        ]
    )


class SpoolingRoute(APIRoute):
    """FastAPI's route, handed a :class:`SpoolingRequest`; the spool batch of a request that
    created no job (refused, invalid, disconnected, failed) is deleted when it ends."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def spooling_handler(request: Request) -> Response:
            spooling = SpoolingRequest(request.scope, request.receive)
            try:
                return await handler(spooling)
            finally:
                await spooling.discard_unclaimed()

        return spooling_handler


async def single_form_fields(request: Request) -> None:
    """422 for ``name`` or ``origin`` sent twice, or ``origin`` sent empty: which value counts
    would be a guess (as for repeated query parameters, see ``deps.single_valued_query``)."""
    form = await request.form()
    problems = [
        {"type": "repeated_parameter", "loc": ("body", field),
         "msg": "one value expected, the field is repeated", "input": form.getlist(field)}
        for field in ("name", "origin", "grouping") if len(form.getlist(field)) > 1
    ]  # fmt: skip
    if form.get("origin") == "":
        problems.append({"type": "enum", "loc": ("body", "origin"),
                         "msg": "origin is empty: upload or cli", "input": ""})  # fmt: skip
    if problems:
        raise RequestValidationError(problems)


router = APIRouter(
    prefix="/v1",
    tags=["uploads"],
    dependencies=[Depends(require(Role.archivist)), Depends(single_form_fields)],
    responses=errors(400, 401, 403, 413, 429, 503),
    route_class=SpoolingRoute,
)

Files = Annotated[
    list[UploadFile], File(min_length=1, description="One or more files (field name `file`).")
]


def _batch(request: Request, files: list[UploadFile]) -> SpoolBatch:
    batch = request.batch if isinstance(request, SpoolingRequest) else None
    assert batch is not None and all(isinstance(f, SpooledUpload) for f in files)
    return batch


JobName = Annotated[
    str | None,
    Form(
        max_length=NAME_MAX,
        pattern=NO_NUL,
        description="What to call the job (default: the upload's file name, "
        "`rex.jpg and 11 more` for several photos).",
    ),
]
GroupingField = Annotated[str, Form(max_length=300, pattern=NO_NUL, description=GROUPING_DOC)]
Origin = Annotated[
    Literal["upload", "cli"],
    Form(description="Where the upload comes from: `cli` for `pawdex index`."),
]


def _submit(
    kind: JobKind, request: Request, files: list[UploadFile], settings: Settings,
    key: ApiKey, name: str | None, origin: str, grouping: str,
) -> JobAccepted:  # fmt: skip
    batch = _batch(request, files)
    job = submit_batch(
        kind, batch, settings, name=name, origin=JobOrigin(origin), created_by=key.name,
        created_by_key_id=key.id, grouping=grouping,
    )  # fmt: skip
    return JobAccepted.of(job)


@router.post("/images", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted)
def upload_images(
    file: Files, request: Request, settings: SettingsDep, key: ArchivistKey,
    name: JobName = None, origin: Origin = "upload", grouping: GroupingField = "photo",
) -> JobAccepted:  # fmt: skip
    """Index one or more photos. Unreadable files become per-file errors of the job."""
    return _submit(JobKind.images, request, file, settings, key, name, origin, grouping)


@router.post(
    "/archives",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    responses=errors(415),
)
def upload_archive(
    file: Files, request: Request, settings: SettingsDep, key: ArchivistKey,
    name: JobName = None, origin: Origin = "upload", grouping: GroupingField = "photo",
) -> JobAccepted:  # fmt: skip
    """Index every photo of a .zip, .tar, .tar.gz or .tgz archive (folders kept as paths)."""
    return _submit(JobKind.archive, request, file, settings, key, name, origin, grouping)
