"""What classify reads when the storage is out of reach (``PAWDEX_THUMBNAIL_SOURCE=api``): a
batch's thumbnails fetched from the API in one request (``POST /v1/images/thumbnails``, a tar
of ``<id>.jpg``), and, for the rare photo whose thumbnail is smaller than the model's input,
its original (``GET /v1/images/{id}/file``).

Chosen by measurement (docs/transport-measurements.md): the thumbnails in the task message
or in Redis would hold gigabytes of a backlog in the broker's memory; one request per batch
costs milliseconds and stays far below the key's rate limit.

A photo the API does not send is a per-file error, as an unreadable stored file is; an API
that does not answer (down, overloaded, refusing the key) raises :class:`ApiUnavailable`, a
transient error: the task retries as in a database outage, and no photo is failed for it."""

from __future__ import annotations

import io
import logging
import tarfile
import time
from functools import lru_cache

import httpx

from pawdex.core.settings import Settings

log = logging.getLogger("pawdex.thumbnails")

TIMEOUT = httpx.Timeout(connect=5, read=30, write=30, pool=5)
ATTEMPTS = 4  # within one delivery, then the task's own retries (worker.tasks.RETRY)
BACKOFF_S = (0.5, 1.0, 2.0)
MAX_RETRY_AFTER_S = 10.0
CHUNK = 512  # the endpoint's limit (api.schemas.THUMBNAILS_MAX)


class ApiUnavailable(Exception):
    """The API did not answer usefully (connection, timeout, 5xx, 429, a refused key)."""


@lru_cache
def _client(base_url: str, key: str) -> httpx.Client:
    """One connection pool per worker process (decode threads share it: httpx is thread-safe)."""
    return httpx.Client(base_url=base_url, headers={"X-API-Key": key}, timeout=TIMEOUT)


def _request(settings: Settings, method: str, url: str, **kwargs) -> httpx.Response:
    """The response (2xx or 404), retrying what may pass; ApiUnavailable when it does not."""
    assert settings.api_url and settings.api_key  # Settings refuses `api` without them
    client = _client(settings.api_url.rstrip("/"), settings.api_key.get_secret_value())
    problem = ""
    for attempt in range(ATTEMPTS):
        try:
            response = client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:  # connection refused, timeouts, a cut stream
            problem = f"{type(exc).__name__}: {exc}"
            wait = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
        else:
            if response.is_success or response.status_code == 404:
                return response
            problem = f"HTTP {response.status_code}"
            if response.status_code in (401, 403):  # the key: retrying now will not help
                break
            wait = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
            if retry_after := response.headers.get("Retry-After", "").strip():
                wait = min(float(retry_after), MAX_RETRY_AFTER_S) if retry_after.isdigit() else wait
        if attempt + 1 < ATTEMPTS:
            time.sleep(wait)
    log.warning("event=api_unavailable method=%s url=%s problem=%r", method, url, problem)
    raise ApiUnavailable(f"{method} {url}: {problem}")


class FetchedThumbnails:
    """One batch's model inputs as the API sent them, read by storage key like the storage."""

    def __init__(self, settings: Settings, rows: list) -> None:
        self.settings = settings
        self._by_key: dict[str, bytes] = {}
        self._originals: dict[str, int] = {
            row.stored_path: row.id for row in rows if row.stored_path
        }
        by_id = {row.id: row.thumbnail_path for row in rows if row.thumbnail_path}
        ids = list(by_id)
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            response = _request(
                settings, "POST", "/v1/images/thumbnails", json={"image_ids": chunk}
            )
            for image_id, data in _members(response.content):
                if image_id in by_id:
                    self._by_key[by_id[image_id]] = data

    def read(self, key: str) -> bytes:
        """A thumbnail of the batch, or an original fetched now (decode threads call this);
        FileNotFoundError for what the API does not have (a per-file error)."""
        if key in self._by_key:
            return self._by_key[key]
        image_id = self._originals.get(key)
        if image_id is None:
            raise FileNotFoundError(f"not sent by the API: {key}")
        response = _request(self.settings, "GET", f"/v1/images/{image_id}/file")
        if response.status_code == 404:
            raise FileNotFoundError(f"the API has no photo {image_id}")
        return response.content


def _members(content: bytes) -> list[tuple[int, bytes]]:
    """``(id, bytes)`` per ``<id>.jpg`` member; a damaged archive is a failed request."""
    found: list[tuple[int, bytes]] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(content), mode="r:") as archive:
            for member in archive:
                stem, _, ext = member.name.partition(".")
                if member.isfile() and ext == "jpg" and stem.isdigit():
                    file = archive.extractfile(member)
                    if file is not None:
                        found.append((int(stem), file.read()))
    except tarfile.TarError as exc:  # a response cut short: try the delivery again
        raise ApiUnavailable(f"a damaged thumbnail archive: {exc}") from exc
    return found
