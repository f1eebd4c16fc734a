"""API keys: creation (shown once), lookup by hash, revocation."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pawdex.core.errors import PawdexError
from pawdex.core.models import ApiKey, Role, utcnow

KEY_PREFIX = "pdx_"


class KeyRevocationRefused(PawdexError):
    """Revoking this key would lock people out: it is the last active admin key, or the key
    the request itself is signed in with."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def create_key(session: Session, role: Role, name: str) -> tuple[ApiKey, str]:
    """A new key; the plain text is returned once and never stored."""
    plain = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, role=role, key_hash=hash_key(plain), prefix=plain[:10])
    session.add(row)
    session.flush()
    return row, plain


def find_active_key(session: Session, plain: str) -> ApiKey | None:
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(plain)))
    if row is None or row.revoked_at is not None:
        return None
    return row


def revoke_key(session: Session, key_id: int) -> bool:
    row = session.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    return True


def revoke(session: Session, key: ApiKey, *, by: ApiKey) -> ApiKey:
    """Revoke ``key`` on behalf of the admin key ``by``; a key already revoked stays as it
    is. Refused for ``by`` itself (the admin's session would end mid-page) and for the last
    active admin key (nobody could manage keys over HTTP any more)."""
    if key.revoked_at is not None:
        return key
    if key.id == by.id:
        raise KeyRevocationRefused(
            "a key cannot revoke itself: sign in with another admin key to revoke this one"
        )
    if key.role is Role.admin:
        # Locked rows: two admins revoking each other's keys at once cannot both succeed.
        active_admins = select(ApiKey.id).where(
            ApiKey.role == Role.admin, ApiKey.revoked_at.is_(None)
        )
        if len(session.scalars(active_admins.with_for_update()).all()) <= 1:
            raise KeyRevocationRefused("this is the last active admin key: create another first")
    key.revoked_at = utcnow()
    return key


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def has_keys(session: Session) -> bool:
    return bool(session.scalar(select(func.count()).select_from(ApiKey)))


def bootstrap_admin_key(session: Session, key_file) -> str | None:
    """On an empty key table: create an admin key and write it to ``key_file`` (mode 0600)
    so a local user can start at once. Returns the key, or None when keys already exist."""
    import os

    if has_keys(session):
        return None
    _, plain = create_key(session, Role.admin, "bootstrap admin")
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.unlink(missing_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(plain + "\n")
    return plain
