"""The one settings object (env prefix ``PAWDEX_``, also read from ``.env``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pawdex.model_names import DEFAULT_MODEL

MiB = 1024 * 1024
DEFAULT_UNCERTAIN_MARGIN = 0.15  # measured: see ``Settings.uncertain_margin``


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAWDEX_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("./var"), description="Storage, spool, embedded DB and broker.")
    database_url: str | None = Field(None, description="Default: SQLite in the data dir.")
    broker_url: str | None = Field(
        None, description="Default: a filesystem broker in the data dir."
    )
    storage_url: str | None = Field(
        None,
        pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$",
        description="Where the stored originals and thumbnails live: unset, the folder "
        "`storage` in the data dir; `s3://bucket/prefix`, an S3-compatible bucket every host "
        "reaches (MinIO, AWS S3), credentials as boto3 finds them (`AWS_ACCESS_KEY_ID` and "
        "`AWS_SECRET_ACCESS_KEY`). `pawdex migrate` creates the bucket when it is missing.",
    )
    s3_endpoint_url: str | None = Field(
        None,
        description="The S3 server's address, e.g. http://minio:9000 (unset: AWS S3 itself).",
    )
    s3_region: str | None = Field(
        None, description="The bucket's region (unset: boto3's, `AWS_DEFAULT_REGION`)."
    )
    library_roots: list[Path] = Field(
        [],
        description="Folders on the server under which an admin may register libraries "
        "(indexed in place: originals are read where they are, never copied), e.g. "
        '`["/mnt/nas/photos"]`. Empty: no libraries.',
    )
    library_scan_interval: float = Field(
        0,
        ge=0,
        description="Seconds between a library's scans, queued by the workers' sweeper "
        "(e.g. 3600: new photos on the share appear within the hour); 0: scans only when "
        "an admin asks.",
    )
    model: str = Field(
        DEFAULT_MODEL,
        description="The model served until one is activated (`pawdex models activate`). "
        "Lite1 won the default-model study (docs/default-model.md): top-1 0.808 vs Lite0's "
        "0.768 on the real photos at 0.62x its speed.",
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    runtime: Literal["auto", "torch", "onnx", "onnx-int8"] = Field(
        "auto",
        description="Where the forward runs: `auto` is ONNX Runtime on CPU (about 2x eager "
        "PyTorch there; the graph is exported once and cached), PyTorch on CUDA. "
        "`onnx-int8`: the graph quantized to int8, calibrated on `calibration_dir` (about "
        "1.1x `onnx` on CPU; Lite1's top-1 on the real photos 0.793 against 0.808); never "
        "chosen by `auto`.",
    )
    calibration_dir: Path | None = Field(
        None,
        description="Photos the `onnx-int8` graph is calibrated on, once, when it is first "
        "built: a folder read recursively, of which a fixed subset (up to 128, evenly spread "
        "over the sorted paths) is used. Photos like the ones you classify; `onnx-int8` "
        "refuses to start without them.",
    )
    onnx_cache_dir: Path | None = Field(
        None,
        description="Exported ONNX graphs (named by weights hash). Default: "
        "$XDG_CACHE_HOME/pawdex/onnx, else ~/.cache/pawdex/onnx.",
    )
    batch_size: int = Field(
        64,
        ge=1,
        le=1024,
        description="Photos per classification task (the first task of an ingest takes 8, so "
        "classification starts early). 64 on CPU: half the per-task cost of 32 (e2e against "
        "the bench's limit 0.89-0.91 against 0.88); on a GPU, 256 or more.",
    )
    decode_threads: int = Field(2, ge=1, le=64)

    # Upload and archive limits: every one of them is checked against what the bytes say,
    # never against what a header or an archive directory declares.
    max_upload_bytes: int = Field(2048 * MiB, description="Largest accepted upload (413 above).")
    max_resumable_bytes: int = Field(
        1024 * 1024 * MiB,
        ge=1,
        description="Largest resumable upload (tus 1.0 at /v1/uploads, sent in chunks: how the "
        "web UI sends files over `resumable_chunk_bytes` and `pawdex index` sends archives), "
        "refused with 413 when it is created or as soon as its bytes pass it. Its chunks are "
        "not bound by `max_upload_bytes`.",
    )
    resumable_chunk_bytes: int = Field(
        8 * MiB,
        ge=1024,
        description="The web UI sends each file larger than this as a resumable upload, in "
        "chunks of this size (a smaller file gains nothing: one request either way). Below a "
        "reverse proxy's body limit.",
    )
    resumable_expiry_days: int = Field(
        7,
        ge=1,
        description="An unfinished resumable upload is deleted this many days after it was "
        "created (a laptop closed for a week carries on; an abandoned upload goes).",
    )
    max_archive_members: int = Field(100_000, description="Entries read from one archive.")
    max_member_bytes: int = Field(64 * MiB, description="Largest single file inside an archive.")
    max_archive_total_bytes: int = Field(
        8192 * MiB, description="Total uncompressed bytes read from one archive."
    )
    max_compression_ratio: float = Field(200.0, description="Per-member zip ratio above = bomb.")
    max_image_pixels: int = Field(80_000_000, description="Larger images are refused (bombs).")
    max_aspect_ratio: float = Field(
        10.0,
        gt=1,
        description="Images whose long side is more than this many times their short side are "
        "refused before decoding (scaled to the model's input, a 1x40000 strip is gigabytes).",
    )
    max_jpeg_scans: int = Field(
        100,
        ge=1,
        description="JPEGs with more scans are refused before decoding: each scan is one more "
        "pass over the whole image (a photo has about 10; thousands take minutes).",
    )
    # Per-API-key token bucket (shared through Redis when the broker is Redis).
    rate_limit_per_minute: int = Field(
        1200, ge=0, description="Requests per minute per API key (refill rate); 0 disables."
    )
    rate_limit_burst: int = Field(
        300, ge=1, description="Requests a key may send at once before the rate applies."
    )
    rate_limit_exempt_keys: str = Field(
        "", description="Comma-separated key prefixes (as `pawdex keys list` shows) never limited."
    )
    thumbnail_size: int = Field(
        256,
        ge=32,
        le=1024,
        description="Shorter side of thumbnails, raised to the served model's resize (272 for "
        "Lite1) so the worker classifies from the thumbnail and never decodes an original.",
    )
    # Concurrency: every request the API is serving holds at most one thread and, while it
    # runs a query, one connection; keep the pool above the threads so no thread waits.
    api_processes: int = Field(
        1,
        ge=1,
        description="API server processes (`pawdex serve`); one Python process uses one core. "
        "With several, rate limits need Redis (the in-memory limiter is per process).",
    )
    api_threads: int = Field(
        20, ge=1, description="Threads the API runs requests in (anyio's thread limiter)."
    )
    api_queue_timeout: float = Field(
        10,
        gt=0,
        description="Past `api_threads` requests at once, a request waits this long for its "
        "turn, then gets 503 with Retry-After.",
    )
    db_pool_size: int = Field(10, ge=1, description="PostgreSQL connections each process keeps.")
    db_max_overflow: int = Field(
        15, ge=0, description="Connections a process may open beyond the pool under load."
    )
    db_pool_timeout: float = Field(
        5,
        gt=0,
        description="Seconds a request waits for a free connection before the API answers "
        "503 with Retry-After (load shed, never a 30 s hang).",
    )
    # Crash safety: what happens when a worker vanishes (killed, out of memory, host lost).
    broker_visibility_timeout: int = Field(
        3600,
        ge=1,
        description="Redis broker: seconds after which a task that no worker acknowledged is "
        "delivered again (a vanished worker's task). Keep it above the longest classify batch; "
        "an ingest delivered again while it still runs elsewhere does nothing (its lease).",
    )
    ingest_heartbeat_timeout: int = Field(
        300,
        ge=1,
        description="Seconds without a heartbeat (one per ingest batch) after which a job's "
        "ingest counts as lost and is resumed. Must exceed the longest batch.",
    )
    presence_interval: float = Field(
        5,
        gt=0,
        description="Seconds between a worker's reports of itself (admin dashboard); "
        "a worker silent for three intervals shows as offline.",
    )
    review_threshold: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Photos below this model confidence wait for review.",
    )
    # On ../shared/photos (203 dogs, the default Lite1), photos whose top two are closer
    # than 0.15 are 42 of 203; the top-1 is wrong for 48% of them (20) against 12% (19 of
    # 161) above it, and the true breed is one of the two for 79% (33): docs/default-model.md.
    uncertain_margin: float = Field(
        DEFAULT_UNCERTAIN_MARGIN,
        ge=0,
        le=1,
        description='The model\'s answer reads "uncertain between A and B" when its top '
        "breed's confidence is less than this above the second's.",
    )
    not_a_dog_confidence: float = Field(
        0.9,
        ge=0,
        le=1,
        description="The review queue leaves out photos the model says are not dogs with at "
        "least this species confidence (unless asked for them).",
    )
    trash_retention_days: float = Field(
        30,
        ge=0,
        description="Days a deletion waits in the trash, restorable, before its photos and "
        "their files are purged (0: at the workers' next sweep).",
    )
    flower_url: str | None = Field(
        None,
        description="Flower's address as the admin's browser reaches it (linked from the "
        "admin dashboard), e.g. https://flower.shelter.example; unset: no link. Not derived: "
        "`localhost` would be the viewer's own machine.",
    )
    # Inference workers on other hosts (docs/transport-measurements.md).
    thumbnail_source: Literal["storage", "api"] = Field(
        "storage",
        description="Where classify reads each photo's model-ready thumbnail: `storage` (the "
        "storage the API writes: the local data dir, or object storage every host reaches) or "
        "`api` (one `POST /v1/images/thumbnails` per batch to `api_url` with `api_key`: an "
        "inference host needs no shared disk).",
    )
    api_url: str | None = Field(
        None,
        description="The API as workers reach it, e.g. http://api.internal:8000 (required by "
        "`thumbnail_source=api`; no default: on another host localhost is the wrong machine).",
    )
    api_key: SecretStr | None = Field(
        None,
        description="The API key a worker fetches thumbnails with, `thumbnail_source=api`: an "
        "archivist's, so a photo deleted while its batch was queued is still classified and "
        "waits in the trash (with a viewer's it ends as a file error).",
    )
    worker_host: str | None = Field(
        None,
        description="The host name a worker reports (admin dashboard, grouped per host). "
        "Default: the machine's host name (`socket.gethostname()`); set it where that name "
        "says nothing (a container's id).",
    )
    sweep_interval: int = Field(
        15, ge=1, description="Seconds between each worker's checks for lost work."
    )
    task_retries: int = Field(
        8,
        ge=0,
        description="Retries (exponential backoff, up to two minutes apart) of a task that met "
        "a database or broker outage; after them its work is left to the sweeper.",
    )
    stall_timeout: int = Field(
        60,
        ge=1,
        description="Seconds a running job's counters may stand still, with its queue empty, "
        "before its queued work counts as lost (a broker restart, retries used up during a "
        "database outage) and is sent again. Must exceed the longest classify batch.",
    )
    max_attempts: int = Field(
        3,
        ge=1,
        description="Deliveries of a photo or archive entry that ended with the worker dead; "
        "after that many it is skipped with a per-file error (a poison file).",
    )

    @model_validator(mode="after")
    def _api_source_has_an_api(self) -> Settings:
        if self.thumbnail_source == "api" and not (self.api_url and self.api_key):
            raise ValueError("PAWDEX_THUMBNAIL_SOURCE=api needs PAWDEX_API_URL and PAWDEX_API_KEY")
        return self

    @property
    def single_host_defaults(self) -> list[str]:
        """The placement settings left at a default that only this machine reaches (SQLite,
        the filesystem broker, the local storage folder) while another is networked: on a
        second host such a process would silently work alone."""
        networked = bool(self.database_url or self.broker_url)
        local = {
            "PAWDEX_DATABASE_URL": not self.database_url,
            "PAWDEX_BROKER_URL": not self.broker_url,
        }
        return [name for name, unset in local.items() if unset] if networked else []

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'pawdex.db').resolve()}"

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def is_embedded_broker(self) -> bool:
        return self.resolved_broker_url.startswith("filesystem")

    @property
    def admin_key_file(self) -> Path:
        return self.data_dir / "admin.key"

    @property
    def storage_dir(self) -> Path:
        return self.data_dir / "storage"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def resumable_dir(self) -> Path:
        """Resumable uploads being received (not in the spool: a paused upload is not litter)."""
        return self.data_dir / "resumable"

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    def ensure_dirs(self) -> None:
        local = () if self.storage_url else (self.storage_dir,)  # object storage: no folder
        for path in (self.data_dir, *local, self.spool_dir, self.models_dir):
            path.mkdir(parents=True, exist_ok=True)


@lru_cache
def get_settings() -> Settings:
    return Settings()
