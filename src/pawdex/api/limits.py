"""Request limits answered before a route runs: body size (413), per-key rate (429) and
failed authentications per client address (429).

Both are ASGI middlewares so that a refused upload is refused before its body is read:
FastAPI reads a multipart body before it resolves the route's dependencies.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import anyio
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pawdex.api.deps import presented_key
from pawdex.api.ratelimit import RateLimiter
from pawdex.api.routers.resumable import PREFIX as RESUMABLE_PREFIX
from pawdex.core.keys import hash_key
from pawdex.core.settings import Settings

SettingsSource = Callable[[], Settings]


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"upload larger than the limit of {limit} bytes")


class BodySizeLimit:
    """413 for a body over ``max_upload_bytes``: at once when ``Content-Length`` says so,
    else as soon as the bytes received pass the limit (chunked uploads). A resumable
    upload's chunk (``PATCH /v1/uploads/…``, streamed to disk) is bound by the upload's own
    limit, ``max_resumable_bytes``, which the tus routes also check as they write."""

    def __init__(self, app: ASGIApp, settings: SettingsSource) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        settings = self.settings()
        limit = settings.max_upload_bytes
        if scope["method"] == "PATCH" and scope["path"].startswith(f"{RESUMABLE_PREFIX}/"):
            limit = settings.max_resumable_bytes
        length = Headers(scope=scope).get("content-length")
        if length and length.isdigit() and int(length) > limit:
            return await _error(BodyTooLarge(limit), scope, receive, send)

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)  # answered by FastAPI's HTTPException handler
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:  # read outside a route (no handler in between)
            if started:
                raise
            await _error(exc, scope, receive, send)


# Failed authentications (401: no key, a wrong or a revoked one) a client address may make:
# a burst for a person mistyping, then one every few seconds. Past it the address gets 429
# for every /v1/ request, a valid key included (a brute force must not learn which one is).
AUTH_FAILURE_BURST = 20
AUTH_FAILURES_PER_MINUTE = 10


class RateLimit:
    """A token bucket per API key (the key as presented, hashed as stored): 429 with
    ``Retry-After`` once the key's bucket is empty. Only requests that carry a key to
    ``/v1/`` count; ``rate_limit_per_minute = 0`` turns the limit off.

    Failed authentications empty a second bucket, per client address (the address uvicorn
    reports: behind a proxy, run it with ``--proxy-headers`` and ``--forwarded-allow-ips``):
    while it is empty every ``/v1/`` request from that address is refused with 429."""

    def __init__(self, app: ASGIApp, settings: SettingsSource, limiter: RateLimiter) -> None:
        self.app = app
        self.settings = settings
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings = self.settings()
        if (
            scope["type"] != "http"
            or settings.rate_limit_per_minute <= 0
            or not scope["path"].startswith("/v1/")
        ):
            return await self.app(scope, receive, send)

        failures = _failure_bucket(scope)
        wait = await self.limiter.peek(failures, AUTH_FAILURES_PER_MINUTE, AUTH_FAILURE_BURST)
        if wait > 0:
            retry_after = _seconds(wait)
            error = HTTPException(
                429,
                f"too many failed authentications from this address; retry in {retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )
            return await _error(error, scope, receive, send)

        key = presented_key(Headers(scope=scope))
        if key and key.plain[:10] not in _exempt(settings):
            wait = await self.limiter.take(
                hash_key(key.plain), settings.rate_limit_per_minute, settings.rate_limit_burst
            )
            if wait > 0:
                retry_after = _seconds(wait)
                error = HTTPException(
                    429,
                    f"rate limit of {settings.rate_limit_per_minute} requests a minute "
                    f"(bursts of {settings.rate_limit_burst}) reached for this API key; "
                    f"retry in {retry_after} s",
                    headers={"Retry-After": str(retry_after)},
                )
                return await _error(error, scope, receive, send)

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                await self.limiter.take(failures, AUTH_FAILURES_PER_MINUTE, AUTH_FAILURE_BURST)
            await send(message)

        await self.app(scope, receive, counting_send)


def _failure_bucket(scope: Scope) -> str:
    client = scope.get("client")
    return f"authfail:{client[0] if client else 'unknown'}"


def _seconds(wait: float) -> int:
    return max(1, math.ceil(wait))


def _exempt(settings: Settings) -> set[str]:
    return {p.strip() for p in settings.rate_limit_exempt_keys.split(",") if p.strip()}


async def _error(exc: HTTPException, scope: Scope, receive: Receive, send: Send) -> None:
    response = JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)
    await response(scope, receive, send)


class Admission:
    """At most ``api_threads`` requests inside the app at once; the others wait here, in the
    event loop, holding no thread and no database connection, and after ``api_queue_timeout``
    seconds are answered 503 with Retry-After (load shed, never a timeout). The connection
    pool is larger than the admitted requests, so no admitted request waits for one.

    Uploads are not counted: a slow client streaming a large body would hold a place for
    minutes (their database work is one short transaction at the end)."""

    UNCOUNTED = ("/v1/images", "/v1/archives")

    def __init__(self, app: ASGIApp, settings: SettingsSource) -> None:
        self.app, self.settings = app, settings
        self._places: anyio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.UNCOUNTED:
            return await self.app(scope, receive, send)
        settings = self.settings()
        if self._places is None:
            self._places = anyio.Semaphore(settings.api_threads)
        with anyio.move_on_after(settings.api_queue_timeout) as waited:
            await self._places.acquire()
        if waited.cancelled_caught:
            response = JSONResponse(
                {"detail": "the server is busy; retry shortly"},
                status_code=503,
                headers={"Retry-After": str(max(1, math.ceil(settings.api_queue_timeout / 2)))},
            )
            return await response(scope, receive, send)
        try:
            await self.app(scope, receive, send)
        finally:
            self._places.release()
