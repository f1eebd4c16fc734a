"""Named dependencies: a route's signature tells what it needs."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Path, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import (
    APIKeyCookie,
    APIKeyHeader,
    HTTPAuthorizationCredentials,
    HTTPBearer,
)
from pydantic import AfterValidator, BeforeValidator
from sqlalchemy.orm import Session
from starlette.datastructures import Headers
from starlette.requests import cookie_parser

from pawdex.core.breeds import UnknownBreed, resolve_breed
from pawdex.core.cursors import MAX_ROW_ID
from pawdex.core.db import session_factory
from pawdex.core.keys import find_active_key
from pawdex.core.models import ApiKey, Role, utcnow
from pawdex.core.settings import Settings


# Dependencies that never wait on I/O are ``async def``: FastAPI runs a plain ``def`` one in
# the thread pool, a hop per dependency per request (a tenth of a small request's CPU).
async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    with session_factory(settings)() as session:
        yield session


# Closed as soon as the route function returns (``scope="function"``), before the response is
# serialized and sent: its connection is back in the pool while the response waits for a
# thread and the client reads it (held until the end, hundreds of clients emptied the pool).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

# Database integers are 32-bit: a larger id is simply not found, never a database error.
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="Numeric id")]


def _in_utc(moment: datetime) -> datetime:
    """A date or date-time as typed, in UTC (without a zone: UTC); a zone that would carry it
    past year 1 or 9999 leaves it at that end of time rather than failing."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def iso_text(value: object) -> object:
    """Only ISO text (``2024-03-18``, ``2024-03-18T09:30:00+02:00``) is a date: pydantic
    would also read ``0`` or ``0.5`` as seconds since 1970, which the document does not
    allow (a client sending a number has a bug worth a 422)."""
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError("give an ISO date (YYYY-MM-DD) or date-time")
    return value


# A query parameter's ISO date (midnight UTC) or date-time.
UtcMoment = Annotated[datetime, BeforeValidator(iso_text), AfterValidator(_in_utc)]
# A date as ISO text (query parameter or body).
IsoDate = Annotated[date, BeforeValidator(iso_text)]


def known_breed(typed: str, parameter: str) -> str:
    """The class ``typed`` names; else a 422 shaped as any invalid parameter's, its message
    listing what the name could mean."""
    try:
        return resolve_breed(typed)
    except UnknownBreed as exc:
        problem = {"type": "unknown_breed", "loc": ("query", parameter), "msg": str(exc),
                   "input": typed}  # fmt: skip
        raise RequestValidationError([problem]) from None


T = TypeVar("T")


def found(value: T | None, what: str) -> T:
    """``value``, or a 404 ``{what} not found`` when there is none: the api package's one way
    to answer 404."""
    if value is None:
        raise HTTPException(404, f"{what} not found")
    return value


def _is_array(schema: dict[str, Any], components: dict[str, Any]) -> bool:
    if ref := schema.get("$ref"):
        schema = components.get(ref.rsplit("/", 1)[-1], {})
    if schema.get("type") == "array":
        return True
    return any(_is_array(s, components) for s in schema.get("anyOf", []) + schema.get("oneOf", []))


@cache
def _single_valued(
    document: Callable[[], dict[str, Any]], path: str, method: str
) -> frozenset[str]:
    """The query parameters of an operation that take one value, as its OpenAPI document
    declares them (an array parameter may repeat)."""
    schema = document()
    operation = schema["paths"].get(path, {}).get(method, {})
    components = schema.get("components", {}).get("schemas", {})
    return frozenset(
        p["name"]
        for p in operation.get("parameters", [])
        if p["in"] == "query" and not _is_array(p.get("schema", {}), components)
    )


async def single_valued_query(request: Request) -> None:
    """422 for a single-valued query parameter given more than once (``?cursor=a&cursor=b``):
    which value counts would be a guess. Every route gets it (the app's dependencies)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not route.include_in_schema:
        return
    method = "get" if request.method == "HEAD" else request.method.lower()
    names = _single_valued(request.app.openapi, route.path_format, method)
    repeated = [
        (name, values)
        for name in dict.fromkeys(request.query_params.keys())
        if name in names and len(values := request.query_params.getlist(name)) > 1
    ]
    if repeated:
        raise RequestValidationError(
            [
                {
                    "type": "repeated_parameter",
                    "loc": ("query", name),
                    "msg": "one value expected, the parameter is repeated",
                    "input": values,
                }
                for name, values in repeated
            ]
        )


SESSION_COOKIE = "pawdex_key"
UI_HEADER = "X-Requested-With"  # the web UI sends it with every cookie-authenticated change
_TOUCH_EVERY = timedelta(minutes=1)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class PresentedKey:
    plain: str
    by_cookie: bool  # the web UI's session cookie, not a header


def presented_key(headers: Headers) -> PresentedKey | None:
    """The API key a request carries: ``X-API-Key``, else ``Authorization: Bearer``, else the
    web UI's session cookie. The one reading of them: authentication (``current_key``), the
    rate limit (``api.limits``) and sign-in (``POST /v1/session``) all ask here."""
    if plain := headers.get("x-api-key"):
        return PresentedKey(plain, by_cookie=False)
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return PresentedKey(credentials.strip(), by_cookie=False)
    if plain := cookie_parser(headers.get("cookie", "")).get(SESSION_COOKIE, "").strip():
        return PresentedKey(plain, by_cookie=True)
    return None


# The three ways in, as OpenAPI security schemes: they document, ``presented_key`` reads.
_header_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key.")
_bearer_key = HTTPBearer(auto_error=False, description="The same key as a Bearer token.")
_cookie_key = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, description="The web UI's session (POST /v1/session)."
)


async def _documented_schemes(
    _header: Annotated[str | None, Security(_header_key)],
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer_key)],
    _cookie: Annotated[str | None, Security(_cookie_key)],
) -> None:
    """Lists the schemes in the OpenAPI document of every route that needs a key."""


def current_key(
    request: Request,
    session: SessionDep,
    _schemes: Annotated[None, Depends(_documented_schemes)],
) -> ApiKey:
    presented = presented_key(request.headers)
    if presented is None:
        raise HTTPException(
            401,
            "an API key is required (header X-API-Key or Authorization: Bearer)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # A cookie travels with requests that other sites make the browser send; a custom
    # header cannot be set by them (not without a CORS preflight this API never grants).
    if (
        presented.by_cookie
        and request.method not in _SAFE_METHODS
        and UI_HEADER not in request.headers
    ):
        raise HTTPException(403, f"a change signed in by cookie needs the {UI_HEADER} header")
    key = find_active_key(session, presented.plain)
    if key is None:
        raise HTTPException(
            401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"}
        )
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > _TOUCH_EVERY:
        key.last_used_at = now  # at most one write a minute per key
    # End the transaction: its connection goes back to the pool while the request waits for
    # a thread to run its handler (held there, 100 waiting requests emptied the pool).
    session.commit()
    return key


def require(role: Role) -> Callable[..., ApiKey]:
    async def check(key: Annotated[ApiKey, Depends(current_key)]) -> ApiKey:
        if not key.role.allows(role):
            raise HTTPException(
                403, f"this needs the {role.value} role; the key is {key.role.value}"
            )
        return key

    return check


ViewerKey = Annotated[ApiKey, Depends(require(Role.viewer))]
ArchivistKey = Annotated[ApiKey, Depends(require(Role.archivist))]
AdminKey = Annotated[ApiKey, Depends(require(Role.admin))]
