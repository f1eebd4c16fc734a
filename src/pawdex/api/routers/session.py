"""Who is calling, and the web UI's sign-in: the key once, then an HttpOnly cookie."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from pawdex.api.deps import SESSION_COOKIE, ViewerKey, current_key, presented_key
from pawdex.api.schemas import KeyOut, errors
from pawdex.core.models import ApiKey

router = APIRouter(prefix="/v1", tags=["session"], responses=errors(400, 401, 403, 422, 429, 503))


@router.get("/me", response_model=KeyOut)
def me(key: ViewerKey) -> KeyOut:
    """The calling key's name and role."""
    return KeyOut.of(key)


@router.post("/session", response_model=KeyOut)
def sign_in(
    request: Request, response: Response, key: Annotated[ApiKey, Depends(current_key)]
) -> KeyOut:
    """Sign the browser in: send the key once (``X-API-Key``); it comes back as an HttpOnly,
    SameSite=Strict cookie that authenticates the UI's requests, images included."""
    presented = presented_key(request.headers)
    assert presented is not None  # current_key found one
    response.set_cookie(
        SESSION_COOKIE, presented.plain, httponly=True, samesite="strict",
        secure=request.url.scheme == "https", max_age=7 * 24 * 3600, path="/",
    )  # fmt: skip
    return KeyOut.of(key)


@router.delete("/session", status_code=204)
def sign_out(response: Response) -> None:
    """Forget the browser's session cookie."""
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
