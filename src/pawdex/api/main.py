"""The FastAPI application."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import cache

import anyio
import anyio.to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from pawdex.api.accesslog import install_access_log_redaction
from pawdex.api.deps import single_valued_query
from pawdex.api.docs import add_docs
from pawdex.api.limits import Admission, BodySizeLimit, RateLimit
from pawdex.api.metrics import Metrics
from pawdex.api.openapi import use_client_ready_openapi
from pawdex.api.ratelimit import make_rate_limiter
from pawdex.api.routers import (
    admin,
    animals,
    files,
    health,
    jobs,
    keys,
    libraries,
    photos,
    resumable,
    session,
    trash,
    ui,
    uploads,
)
from pawdex.core.animal_import import InvalidAnimalRows
from pawdex.core.animals import AnimalConflict, InvalidGrouping, NoSuchPhotos
from pawdex.core.errors import InvalidCursor, InvalidQuery, PawdexError, UnsupportedArchive
from pawdex.core.jobs import JobConflict
from pawdex.core.keys import KeyRevocationRefused
from pawdex.core.labels import InvalidLabel
from pawdex.core.libraries import LibraryRefused, OriginalUnavailable
from pawdex.core.resumable import UploadIncomplete
from pawdex.core.settings import Settings, get_settings
from pawdex.core.trash import NothingToDelete, NotYours
from pawdex.core.uploads import BrokerUnavailable, UploadTooLarge

ERROR_STATUS: dict[type[PawdexError], int] = {
    UploadTooLarge: 413,
    UnsupportedArchive: 415,
    InvalidQuery: 400,
    InvalidCursor: 400,
    BrokerUnavailable: 503,
    JobConflict: 409,
    InvalidLabel: 400,
    OriginalUnavailable: 404,
    LibraryRefused: 400,
    InvalidGrouping: 400,
    InvalidAnimalRows: 400,
    AnimalConflict: 409,
    NoSuchPhotos: 404,
    NotYours: 403,
    NothingToDelete: 404,
    UploadIncomplete: 409,
    KeyRevocationRefused: 409,
}

# A database or broker outage (or a saturated connection pool) is answered 503 with this
# Retry-After, never a 500: the client is told to come back, not that it sent something wrong.
RETRY_AFTER_SECONDS = 5

log = logging.getLogger(__name__)


def unavailable(detail: str) -> JSONResponse:
    return JSONResponse(
        {"detail": detail}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


def is_outage(exc: sa_exc.DBAPIError) -> bool:
    """The database did not answer (refused, gone, timed out), as opposed to a statement it
    refused (a bug: those stay 500s)."""
    return isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError) or bool(
        exc.connection_invalidated
    )


@cache
def _path_patterns(app: FastAPI) -> list[tuple[re.Pattern[str], str]]:
    patterns = []
    for path, operations in app.openapi()["paths"].items():
        regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path))
        methods = ", ".join(sorted(m.upper() for m in operations))
        patterns.append((re.compile(f"^{regex}$"), methods))
    return patterns


def allowed_methods(app: FastAPI, request: Request) -> str:
    for pattern, methods in _path_patterns(app):
        if pattern.match(request.url.path):
            return methods
    return ""


class RefuseNul:
    """PostgreSQL text cannot hold NUL: refuse it at the door rather than fail deep inside."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope["path"] or b"%00" in scope.get("query_string", b"")
        ):
            response = JSONResponse({"detail": "NUL bytes are not allowed in URLs"}, 400)
            return await response(scope, receive, send)
        await self.app(scope, receive, send)


def _threads(count: int) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Sync routes and dependencies run in anyio's thread pool: size it from the settings
    (the connection pool is kept larger, so no thread waits for a connection)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = count
        yield

    return lifespan


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.ensure_dirs()
    install_access_log_redaction()
    app = FastAPI(
        lifespan=_threads(settings.api_threads),
        title="pawdex",
        version="1",
        summary="Index an animal shelter's photo archive by dog breed.",
        docs_url=None,  # served on local assets (api.docs): no CDN
        redoc_url=None,
        dependencies=[Depends(single_valued_query)],
    )
    app.state.settings = settings
    use_client_ready_openapi(app)
    add_docs(app)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 405:
            # Starlette lists only the first matching route's methods; a path served by
            # several routes (POST and DELETE /v1/session) must list them all.
            exc.headers = {**(exc.headers or {}), "Allow": allowed_methods(app, request)}
        return await http_exception_handler(request, exc)

    @app.exception_handler(PawdexError)
    async def _user_error(_request: Request, exc: PawdexError) -> JSONResponse:
        status = ERROR_STATUS.get(type(exc), 422)
        if status == 503:
            return unavailable(str(exc))
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(sa_exc.DBAPIError)
    async def _database_error(request: Request, exc: sa_exc.DBAPIError) -> JSONResponse:
        if not is_outage(exc):
            raise exc
        log.warning(
            "event=database_unavailable path=%s error=%s",
            request.url.path,
            type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__,
        )
        return unavailable("the database is unavailable; retry shortly")

    @app.exception_handler(BrokerError)
    async def _broker_error(request: Request, exc: BrokerError) -> JSONResponse:
        # Sending a task failed outside an upload (which answers BrokerUnavailable): a job
        # retry, a reindex. The broker's URL may hold a password: only the error's type.
        cause = type(exc.__cause__ or exc).__name__
        log.warning("event=broker_unavailable path=%s error=%s", request.url.path, cause)
        return unavailable("the job queue is unavailable; retry shortly")

    @app.exception_handler(sa_exc.TimeoutError)
    async def _pool_exhausted(request: Request, _exc: sa_exc.TimeoutError) -> JSONResponse:
        log.warning("event=database_pool_exhausted path=%s", request.url.path)
        return unavailable("the server is busy (no database connection free); retry shortly")

    # Read at each request: tests (and a future reload) may swap the settings object.
    def current_settings() -> Settings:
        return app.state.settings

    # The last added runs first: NUL guard, then rate limit, then body size, then routes.
    app.add_middleware(BodySizeLimit, settings=current_settings)
    app.add_middleware(RateLimit, settings=current_settings, limiter=make_rate_limiter(settings))

    metrics = Metrics(current_settings)
    # The route's template (``/v1/jobs/{job_id}``) labels the latency, never the raw path.
    app.add_middleware(metrics.middleware)
    app.add_route("/metrics", metrics.endpoint, include_in_schema=False)

    app.add_middleware(Admission, settings=current_settings)
    app.add_middleware(RefuseNul)

    for router in (
        uploads.router, jobs.router, photos.router, files.router, health.router,
        session.router, admin.router, libraries.router, animals.router, keys.router,
        trash.router,
    ):  # fmt: skip
        app.include_router(router)
    resumable.add_resumable_uploads(app, settings)  # tus 1.0, and the job route
    app.include_router(ui.router)
    app.mount("/static", StaticFiles(directory=ui.STATIC_DIR), name="static")
    return app
