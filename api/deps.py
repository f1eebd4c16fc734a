"""Named dependencies: a route's signature tells what it needs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session

from core.db import session_factory
from core.settings import Settings


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    with session_factory(settings)() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


# Database integers are 32-bit: a larger id is simply not found, never a database error.
RowId = Annotated[int, Path(ge=1, le=2_147_483_647, description="Numeric id")]
