"""Request limits answered before a route runs: body size (413) and per-key rate (429).

Both are ASGI middlewares so that a refused upload is refused before its body is read:
FastAPI reads a multipart body before it resolves the route's dependencies.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pawdex.api.deps import presented_key
from pawdex.api.ratelimit import RateLimiter
from pawdex.core.keys import hash_key
from pawdex.core.settings import Settings

SettingsSource = Callable[[], Settings]


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"upload larger than the limit of {limit} bytes")


class BodySizeLimit:
    """413 for a body over ``max_upload_bytes``: at once when ``Content-Length`` says so,
    else as soon as the bytes received pass the limit (chunked uploads)."""

    def __init__(self, app: ASGIApp, settings: SettingsSource) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.settings().max_upload_bytes
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


class RateLimit:
    """A token bucket per API key (the key as presented, hashed as stored): 429 with
    ``Retry-After`` once the key's bucket is empty. Only requests that carry a key to
    ``/v1/`` count; ``rate_limit_per_minute = 0`` turns the limit off."""

    def __init__(self, app: ASGIApp, settings: SettingsSource, limiter: RateLimiter) -> None:
        self.app = app
        self.settings = settings
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings = self.settings()
        if (
            scope["type"] == "http"
            and settings.rate_limit_per_minute > 0
            and scope["path"].startswith("/v1/")
            and (key := presented_key(Headers(scope=scope)))
            and key.plain[:10] not in _exempt(settings)
        ):
            wait = await self.limiter.take(
                hash_key(key.plain), settings.rate_limit_per_minute, settings.rate_limit_burst
            )
            if wait > 0:
                retry_after = max(1, math.ceil(wait))
                error = HTTPException(
                    429,
                    f"rate limit of {settings.rate_limit_per_minute} requests a minute "
                    f"(bursts of {settings.rate_limit_burst}) reached for this API key; "
                    f"retry in {retry_after} s",
                    headers={"Retry-After": str(retry_after)},
                )
                return await _error(error, scope, receive, send)
        await self.app(scope, receive, send)


def _exempt(settings: Settings) -> set[str]:
    return {p.strip() for p in settings.rate_limit_exempt_keys.split(",") if p.strip()}


async def _error(exc: HTTPException, scope: Scope, receive: Receive, send: Send) -> None:
    response = JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)
    await response(scope, receive, send)
