"""API keys, managed by admins over HTTP (the web UI's dashboard; `pawdex keys` on the
server does the same without a key)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.orm import Session

from pawdex.api.deps import AdminKey, RowId, SessionDep, found
from pawdex.api.schemas import KeyIn, KeyRecord, NewKey, errors
from pawdex.core.keys import create_key, list_keys, revoke
from pawdex.core.models import ApiKey

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=errors(400, 401, 403, 429, 503))


def _key(session: Session, key_id: int) -> ApiKey:
    return found(session.get(ApiKey, key_id), f"key {key_id}")


@router.get("", response_model=list[KeyRecord], responses=errors(422))
def list_api_keys(session: SessionDep, _admin: AdminKey) -> list[KeyRecord]:
    """Every key, revoked ones included, oldest first."""
    return [KeyRecord.of(key) for key in list_keys(session)]


@router.post("", status_code=201, response_model=NewKey)
def create_api_key(body: KeyIn, session: SessionDep, _admin: AdminKey) -> NewKey:
    """A new key with this role. The answer's `key` is the only time it is shown: only its
    hash is stored."""
    key, plain = create_key(session, body.role, body.name)
    session.commit()
    return NewKey(**KeyRecord.of(key).model_dump(), key=plain)


@router.delete("/{key_id}", response_model=KeyRecord, responses=errors(404, 409, 422))
def revoke_api_key(key_id: RowId, session: SessionDep, admin: AdminKey) -> KeyRecord:
    """Revoke a key: requests with it are refused (401) from now on. A revoked key stays
    revoked (asked again: the same answer). 409 for the key the request is signed in with
    and for the last active admin key."""
    key = revoke(session, _key(session, key_id), by=admin)
    session.commit()
    return KeyRecord.of(key)
