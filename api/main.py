"""The FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.routers import animals, files, health, jobs, uploads
from core.catalog import InvalidQuery
from core.errors import PawdexError, UnsupportedArchive
from core.jobs import InvalidCursor
from core.settings import Settings, get_settings
from core.uploads import BrokerUnavailable, UploadTooLarge

ERROR_STATUS: dict[type[PawdexError], int] = {
    UploadTooLarge: 413,
    UnsupportedArchive: 415,
    InvalidQuery: 400,
    InvalidCursor: 400,
    BrokerUnavailable: 503,
}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.ensure_dirs()
    app = FastAPI(
        title="pawdex",
        version="1",
        summary="Index an animal shelter's photo archive by dog breed.",
    )
    app.state.settings = settings

    @app.exception_handler(PawdexError)
    async def _user_error(_request: Request, exc: PawdexError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=ERROR_STATUS.get(type(exc), 422))

    @app.middleware("http")
    async def _guard_request(request: Request, call_next):
        # PostgreSQL text cannot hold NUL: refuse it at the door rather than fail deep inside.
        if "\x00" in request.url.path or "%00" in request.url.query:
            return JSONResponse({"detail": "NUL bytes are not allowed in URLs"}, status_code=400)
        # Refuse an oversized upload before reading it, when the client says how big it is.
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > settings.max_upload_bytes:
            return JSONResponse(
                {"detail": f"upload larger than the limit of {settings.max_upload_bytes} bytes"},
                status_code=413,
            )
        return await call_next(request)

    for router in (uploads.router, jobs.router, animals.router, files.router, health.router):
        app.include_router(router)
    return app
