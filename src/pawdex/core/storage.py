"""Content-addressed file storage: photos by sha256, thumbnails beside them.

Paths are derived from the hash only, so nothing a user sends can choose where a file lands.
Two places behind one interface (``Storage``): a local folder (``LocalStorage``, the data
dir's ``storage``) and an S3-compatible bucket every host reaches (``S3Storage``: MinIO, AWS
S3), chosen by ``PAWDEX_STORAGE_URL`` in ``open_storage``.
"""

from __future__ import annotations

import io
import mimetypes
import os
from abc import ABC, abstractmethod
from functools import lru_cache, partial
from pathlib import Path
from typing import IO, TYPE_CHECKING

from pawdex.fileio import atomic_write
from pawdex.formats import storage_extension

if TYPE_CHECKING:
    from pawdex.core.settings import Settings

# Object storage answers within these or the call fails (retried by botocore first): a
# worker or a request never hangs on a lost server.
S3_CONNECT_TIMEOUT_S = 5
S3_READ_TIMEOUT_S = 30
S3_ATTEMPTS = 5  # tries in all, the first included
S3_PROBE_TIMEOUT_S = 2  # /readyz: one try, answered within a probe's usual timeout


class Stream(io.RawIOBase):
    """A stored file opened for reading, with its size (a response's Content-Length)."""

    def __init__(self, raw: IO[bytes], size: int) -> None:
        self._raw, self.size = raw, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class Storage(ABC):
    """Where stored originals and thumbnails live, by key (``images/ab/cd/<sha>.jpg``)."""

    @staticmethod
    def image_key(sha256: str, image_format: str) -> str:
        ext = storage_extension(image_format)
        return f"images/{sha256[:2]}/{sha256[2:4]}/{sha256}.{ext}"

    @staticmethod
    def thumbnail_key(sha256: str) -> str:
        return f"thumbs/{sha256[:2]}/{sha256[2:4]}/{sha256}.jpg"

    @abstractmethod
    def put(self, key: str, data: bytes) -> object:
        """Write atomically; an existing file with the same key is kept (same content)."""

    @abstractmethod
    def read(self, key: str) -> bytes:
        """The whole file; a missing one raises FileNotFoundError (a storage fault)."""

    @abstractmethod
    def open(self, key: str) -> Stream:
        """The file as a stream (originals are served without being read whole)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the file; a missing one is fine."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def local_path(self, key: str) -> Path | None:
        """The file on this machine's disk, or None (object storage: read it by key)."""

    @abstractmethod
    def check(self) -> None:
        """Raise when files cannot be stored now (``/readyz``): quick, never retried."""


class LocalStorage(Storage):
    """A folder on this machine (or a share every host mounts)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"storage key escapes the storage dir: {key!r}")
        return path

    def put(self, key: str, data: bytes) -> Path:
        target = self.path(key)
        if target.exists():
            return target
        return atomic_write(target, data, mode=0o644)

    def read(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def open(self, key: str) -> Stream:
        path = self.path(key)
        raw = path.open("rb")
        return Stream(raw, os.fstat(raw.fileno()).st_size)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def local_path(self, key: str) -> Path:
        return self.path(key)

    def check(self) -> None:
        # The folder is made by the first write: until then, the place it will be made in.
        existing = next(p for p in (self.root, *self.root.parents) if p.exists())
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise PermissionError(f"{existing} is not writable")


class S3Storage(Storage):
    """Objects ``prefix + key`` in a bucket of an S3-compatible server (boto3)."""

    def __init__(self, bucket: str, prefix: str, client, probe_client=None) -> None:
        """``probe_client``: makes the client ``check`` uses (only ``/readyz`` asks for it,
        so workers never build it); default: ``client``."""
        self.bucket, self.prefix, self.client = bucket, prefix, client
        self.probe_client = probe_client or (lambda: client)

    def _name(self, key: str) -> str:
        # The same refusal as the folder's: a key never reaches outside the prefix.
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"storage key escapes the storage prefix: {key!r}")
        return self.prefix + key

    @staticmethod
    def _missing(exc: Exception, codes=("404", "NoSuchKey", "NotFound")) -> bool:
        # A missing bucket is not a missing file: it fails loudly (NoSuchBucket), never as
        # one file error per photo.
        return getattr(exc, "response", {}).get("Error", {}).get("Code", "") in codes

    def put(self, key: str, data: bytes) -> None:
        # One PUT is atomic (readers see the whole object or none); content-addressed keys
        # make a racing second writer harmless, so a HEAD first only saves the upload.
        if self.exists(key):
            return
        media = mimetypes.guess_type(key)[0] or "application/octet-stream"
        self.client.put_object(
            Bucket=self.bucket, Key=self._name(key), Body=data, ContentType=media
        )

    def _get(self, key: str) -> dict:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as exc:
            if self._missing(exc):
                raise FileNotFoundError(f"no object {self._name(key)!r} in {self.bucket}") from exc
            raise

    def read(self, key: str) -> bytes:
        body = self._get(key)["Body"]
        with body:
            return body.read()

    def open(self, key: str) -> Stream:
        answer = self._get(key)
        return Stream(answer["Body"], answer["ContentLength"])

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))  # missing: fine

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as exc:
            if self._missing(exc):
                return False
            raise
        return True

    def local_path(self, key: str) -> None:
        return None

    def check(self) -> None:
        self.probe_client().head_bucket(Bucket=self.bucket)  # reachable, the bucket there

    def ensure_bucket(self) -> bool:
        """Create the bucket if it is missing (``pawdex migrate``); True when created."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
            return False
        except ClientError as exc:
            if not self._missing(exc, ("404", "NoSuchBucket")):
                raise
        region = self.client.meta.region_name
        where = {} if region in (None, "us-east-1") else {"LocationConstraint": region}
        self.client.create_bucket(
            Bucket=self.bucket, **({"CreateBucketConfiguration": where} if where else {})
        )
        return True


def open_storage(settings: Settings) -> Storage:
    """The storage the settings name: ``PAWDEX_STORAGE_URL`` (``s3://bucket/prefix``), else
    the data dir's folder."""
    if not settings.storage_url:
        return LocalStorage(settings.storage_dir)
    bucket, _, prefix = settings.storage_url.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
    where = (settings.s3_endpoint_url, settings.s3_region, os.getpid())
    return S3Storage(bucket, prefix, _s3_client(*where), partial(_s3_client, *where, probe=True))


def prepare_storage(settings: Settings) -> str | None:
    """What ``pawdex migrate`` does for the storage: object storage's bucket is created when
    it is missing (nothing else creates one). Says what it found; None for a local folder."""
    storage = open_storage(settings)
    if not isinstance(storage, S3Storage):
        return None
    created = storage.ensure_bucket()
    return f"bucket {storage.bucket} {'created' if created else 'exists'}"


@lru_cache(maxsize=8)
def _s3_client(endpoint_url: str | None, region: str | None, pid: int, probe: bool = False):
    """One client per process and server (clients are thread-safe, not fork-safe: ``pid``),
    with bounded timeouts and retries; ``probe``: one short try, for readiness checks. boto3
    is imported here: local storage never loads it."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=S3_PROBE_TIMEOUT_S if probe else S3_CONNECT_TIMEOUT_S,
        read_timeout=S3_PROBE_TIMEOUT_S if probe else S3_READ_TIMEOUT_S,
        retries={"total_max_attempts": 1 if probe else S3_ATTEMPTS, "mode": "standard"},
        # MinIO and most S3-compatible servers address buckets by path, not by host name.
        s3={"addressing_style": "path" if endpoint_url else "auto"},
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region, config=config
    )
