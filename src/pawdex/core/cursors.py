"""Opaque keyset-pagination cursors: what the last row of a page was sorted by, as URL-safe
base64 JSON. Every paginated list (jobs, animals) encodes and decodes them here."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from pawdex.core.errors import InvalidCursor

MAX_ROW_ID = 2**31 - 1  # ids are 32-bit integers in the database


def encode_cursor(payload: Any) -> str:
    """``payload`` (JSON-serialisable; datetimes as ISO 8601) as an opaque cursor."""
    raw = json.dumps(payload, default=_iso).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Any:
    """The payload of a cursor this server produced; InvalidCursor for anything else."""
    try:
        return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidCursor("invalid cursor") from exc


def cursor_datetime(raw: Any) -> datetime:
    """A cursor's time, in UTC as the columns store it; InvalidCursor when it is not one
    (a time at the ends of the calendar overflows on the conversion)."""
    try:
        value = datetime.fromisoformat(raw)
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidCursor("invalid cursor") from exc


def cursor_row_id(raw: Any) -> int:
    """A cursor's row id; anything else would be a database error (a 500), not a 400."""
    if type(raw) is not int or not 0 < raw <= MAX_ROW_ID:
        raise InvalidCursor("invalid cursor")
    return raw


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
