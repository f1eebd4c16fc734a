"""Secrets never reach the access log: an API key sent in the query string (``?api_key=``,
which this API does not read, but clients send anyway) is written as ``***``.

The filter sits on uvicorn's ``uvicorn.access`` logger and is installed by ``create_app``, so
every launcher (``pawdex serve``, ``uvicorn --factory``, gunicorn's uvicorn workers, tests)
gets it; uvicorn's logging configuration, applied before or after, keeps a logger's filters.
"""

from __future__ import annotations

import logging
from urllib.parse import unquote_plus

ACCESS_LOGGER = "uvicorn.access"
REDACTED = "***"
# Query parameters whose value is a credential (compared lower-case, "-" read as "_").
SECRET_PARAMETERS = frozenset({"api_key", "apikey", "key", "token", "access_token", "x_api_key"})


def redact_query(target: str) -> str:
    """``target`` (a path with its query string, as logged) with secret values replaced."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    pairs = []
    for pair in query.split("&"):
        name, eq, value = pair.partition("=")
        if eq and value and _is_secret(name):
            value = REDACTED
        pairs.append(f"{name}{eq}{value}")
    return f"{path}?{'&'.join(pairs)}"


def _is_secret(name: str) -> bool:
    return unquote_plus(name).strip().lower().replace("-", "_") in SECRET_PARAMETERS


class RedactSecrets(logging.Filter):
    """Rewrites uvicorn's access records: their args are (client, method, path with query,
    HTTP version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


def install_access_log_redaction() -> None:
    """Add the filter to uvicorn's access logger, once per process."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactSecrets) for f in logger.filters):
        logger.addFilter(RedactSecrets())
