"""The FastAPI application."""

from __future__ import annotations

import re
from functools import cache

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from pawdex.api.limits import BodySizeLimit, RateLimit
from pawdex.api.metrics import Metrics
from pawdex.api.ratelimit import make_rate_limiter
from pawdex.api.routers import admin, animals, files, health, jobs, session, ui, uploads
from pawdex.core.errors import InvalidCursor, InvalidQuery, PawdexError, UnsupportedArchive
from pawdex.core.jobs import JobConflict
from pawdex.core.labels import InvalidLabel
from pawdex.core.settings import Settings, get_settings
from pawdex.core.uploads import BrokerUnavailable, UploadTooLarge

ERROR_STATUS: dict[type[PawdexError], int] = {
    UploadTooLarge: 413,
    UnsupportedArchive: 415,
    InvalidQuery: 400,
    InvalidCursor: 400,
    BrokerUnavailable: 503,
    JobConflict: 409,
    InvalidLabel: 400,
}


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


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.ensure_dirs()
    app = FastAPI(
        title="pawdex",
        version="1",
        summary="Index an animal shelter's photo archive by dog breed.",
    )
    app.state.settings = settings

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 405:
            # Starlette lists only the first matching route's methods; a path served by
            # several routes (POST and DELETE /v1/session) must list them all.
            exc.headers = {**(exc.headers or {}), "Allow": allowed_methods(app, request)}
        return await http_exception_handler(request, exc)

    @app.exception_handler(PawdexError)
    async def _user_error(_request: Request, exc: PawdexError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=ERROR_STATUS.get(type(exc), 422))

    # Read at each request: tests (and a future reload) may swap the settings object.
    def current_settings() -> Settings:
        return app.state.settings

    # The last added runs first: NUL guard, then rate limit, then body size, then routes.
    app.add_middleware(BodySizeLimit, settings=current_settings)
    app.add_middleware(RateLimit, settings=current_settings, limiter=make_rate_limiter(settings))

    metrics = Metrics(current_settings)
    app.middleware("http")(metrics.middleware)
    app.add_route("/metrics", metrics.endpoint, include_in_schema=False)

    @app.middleware("http")
    async def _guard_request(request: Request, call_next):
        # PostgreSQL text cannot hold NUL: refuse it at the door rather than fail deep inside.
        if "\x00" in request.url.path or "%00" in request.url.query:
            return JSONResponse({"detail": "NUL bytes are not allowed in URLs"}, status_code=400)
        return await call_next(request)

    for router in (
        uploads.router, jobs.router, animals.router, files.router, health.router,
        session.router, admin.router,
    ):  # fmt: skip
        app.include_router(router)
    app.include_router(ui.router)
    app.mount("/static", StaticFiles(directory=ui.STATIC_DIR), name="static")
    return app
