"""``python -m bench``: how fast pawdex indexes, against the model alone and the naive demo.

One run, one machine, one device:

- ``bare_img_s``: the model's forward passes alone on preprocessed tensors, best batch size;
- ``limit_img_s``: the same archive through the service's own per-photo code (ingest's
  hash, decode, thumbnail and storage, then the classifier) in one process, overlapped, with
  no HTTP, broker or database: the throughput e2e can approach on these cores;
- ``e2e_img_s``: an N-photo archive through the real stack (API + ingest and inference
  workers as processes, as ``pawdex serve`` lays them out), from the start of the HTTP upload
  to the job's ``finished_at``;
- ``naive_img_s``: the study demo's way, one photo per synchronous request
  (:mod:`bench.naive`);
- ``query_p95_ms``: sequential catalogue requests (``GET /v1/photos`` with the filters
  people send, ``/v1/breeds``, ``/v1/review``) over seeded rows, labels included, in a fresh
  PostgreSQL database, with the plan of the slowest ``/v1/photos`` query;
- ``peak_rss_mb``: the workers' peak resident memory after N photos (and after M photos in a
  second, fresh stack: ``peak_rss_mb_large``, ``rss_growth``).

Progress goes to stderr; the caller prints the result (:func:`render_table`, JSON).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.archive import build_archive, render_photos, source_photos
from bench.harness import (
    base_env,
    cpu_seconds,
    free_port,
    peak_rss_mb,
    running_stack,
    spawn,
    stop,
    wait_ready,
)
from pawdex.cli.client import wait_job
from pawdex.core.models import JobStatus
from pawdex.core.settings import Settings, get_settings
from pawdex.core.storage import LocalStorage, Storage

if TYPE_CHECKING:
    from pawdex.ml import BreedClassifier

DEFAULT_SOURCE_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "photos"
DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
FRESH_PG = "pg"  # --database-url pg: a fresh temporary database on --pg-admin-url
WARMUP_PHOTOS = 8
NAIVE_WARMUP = 2
QUERY_WARMUP = 20
# The lists people read: the catalogue with its filters, most of all; photos per breed and
# the review queue (the gallery's and the review page's first requests).
QUERY_PATHS = ("/v1/photos", "/v1/breeds", "/v1/review")
QUERY_PATH_WEIGHTS = (0.85, 0.075, 0.075)
POLL_S = 0.2
MiB = 1024 * 1024

console = Console(stderr=True, highlight=False)


class BenchError(RuntimeError):
    """The bench could not measure what it was asked to (a job lost photos, a stack died)."""


@dataclass
class BenchOptions:
    photos: int = 1000
    rss_photos: int = 10_000
    database_url: str | None = None
    broker_url: str | None = None
    pg_admin_url: str | None = None
    query_rows: int = 100_000
    queries: int = 200
    naive_photos: int = 100
    naive_device: str = "cpu"
    source_photos: Path = DEFAULT_SOURCE_PHOTOS
    archive: Path | None = None
    workdir: Path | None = None
    keep: bool = False
    batch_sizes: tuple[int, ...] = (8, 16, 32, 64)
    bare_seconds: float = 3.0
    job_timeout: float = 3 * 3600


# --------------------------------------------------------------------------------- helpers


class _Steps:
    """Wall time of each part of the bench, announced on stderr."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str, what: str) -> Iterator[None]:
        console.print(f"[bold]bench[/bold] {what} …")
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - started, 1)
            console.print(f"[bold]bench[/bold] {what}: {self.seconds[name]:.1f} s")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def _pg_urls(admin_url: str, database: str) -> tuple[str, str]:
    """(psycopg conninfo URL, SQLAlchemy URL) of ``database`` on the admin URL's server."""
    from sqlalchemy.engine import make_url

    url = make_url(admin_url).set(database=database)
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    alchemy = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return plain, alchemy


def _plain_pg_url(alchemy_url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(alchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def temp_database(admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database (SQLAlchemy URL), dropped at the end."""
    import psycopg

    name = f"pawdex_bench_{uuid.uuid4().hex[:12]}"
    admin = _plain_pg_url(admin_url)
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        raise BenchError(f"cannot create a database on {_safe_url(admin_url)}: {exc}") from exc
    try:
        yield _pg_urls(admin_url, name)[1]
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg_reachable(admin_url: str) -> str | None:
    """None when the admin URL answers, else why not."""
    try:
        import psycopg

        with psycopg.connect(_plain_pg_url(admin_url), connect_timeout=5) as conn:
            conn.execute("SELECT 1")
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"


def _migrate(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pawdex", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise BenchError(f"pawdex migrate failed:\n{done.stdout}\n{done.stderr}")


def _log_tails(folder: Path, lines: int = 30) -> None:
    for log in sorted(folder.rglob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        console.print(f"[red]--- {log} (last {len(tail)} lines)[/red]")
        console.print("\n".join(tail), markup=False)


def _upload(client: httpx.Client, archive: Path) -> str:
    with archive.open("rb") as fh:
        response = client.post(
            "/v1/archives", files={"file": (archive.name, fh, "application/octet-stream")}
        )
    if response.status_code != 202:
        raise BenchError(f"upload of {archive.name}: {response.status_code} {response.text}")
    return response.json()["job_id"]


def _follow(client: httpx.Client, job_id: str, timeout: float, label: str) -> dict:
    """Poll the job every 0.2 s until it has finished; progress on stderr every 5 s."""
    shown = time.monotonic()

    def progress(job: dict) -> None:
        nonlocal shown
        if time.monotonic() - shown >= 5:
            shown = time.monotonic()
            seen = job["done"] + job["duplicates"] + job["failed"]
            console.print(f"  {label}: {job['status']} {seen}/{job['total']} (done {job['done']})")

    try:
        return wait_job(client, job_id, timeout, interval=POLL_S, on_progress=progress)
    except TimeoutError as exc:
        raise BenchError(str(exc)) from exc


def _check_job(job: dict, expected: int | None) -> None:
    """Every photo accounted for, none failed."""
    accounted = job["done"] + job["duplicates"] + job["failed"]
    problems = []
    if job["status"] != JobStatus.succeeded:
        problems.append(f"status {job['status']}")
    if job["failed"]:
        problems.append(f"{job['failed']} failed: {job['errors'][:5]}")
    if accounted != job["total"]:
        problems.append(f"done+duplicates+failed = {accounted} != total {job['total']}")
    if expected is not None and job["total"] != expected:
        problems.append(f"total {job['total']} != {expected} photos sent")
    if problems:
        raise BenchError(f"job {job['id']}: " + "; ".join(problems))


# The bench's one key sends as fast as it can: it measures the service, not the rate limit.
UNLIMITED = {"PAWDEX_RATE_LIMIT_PER_MINUTE": "0"}


def _archive_limits(archive: Path, settings: Settings, members: int) -> dict[str, int]:
    """The upload limits, raised where needed so the bench archive is accepted whole."""
    size = archive.stat().st_size
    return {
        "max_upload_bytes": max(settings.max_upload_bytes, size + 64 * MiB),
        "max_archive_total_bytes": max(settings.max_archive_total_bytes, 2 * size),
        "max_archive_members": max(settings.max_archive_members, members + 100),
    }


def _limits_env(archive: Path, settings: Settings, members: int) -> dict[str, str]:
    return {
        f"PAWDEX_{name.upper()}": str(value)
        for name, value in _archive_limits(archive, settings, members).items()
    }


def _count_members(archive: Path) -> int:
    import tarfile
    import zipfile

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            return sum(not info.is_dir() for info in zf.infolist())
    with tarfile.open(archive) as tf:
        return sum(member.isfile() for member in tf)


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _total(values: dict[str, float | None]) -> float | None:
    """The sum, or None when one of the values is unknown (``cpu_seconds`` off Linux)."""
    known = [v for v in values.values() if v is not None]
    return round(sum(known), 1) if len(known) == len(values) else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


# ------------------------------------------------------------------------------ the parts


def measure_bare(
    settings: Settings, sources: list[Path], batch_sizes: tuple[int, ...], min_seconds: float
) -> dict[str, Any]:
    """Forward passes alone (``predict_tensors``) on tensors decoded and preprocessed once."""
    import torch
    from PIL import Image, ImageOps

    from pawdex.ml import load_classifier

    model = load_classifier(
        settings.model, settings.device, settings.runtime, settings.onnx_cache_dir
    )
    model.load()
    tensors = []
    for path in sources[:64]:
        with Image.open(path) as opened:
            tensors.append(model.preprocess(ImageOps.exif_transpose(opened).convert("RGB")))
    by_batch: dict[str, float] = {}
    sizes = sorted({*batch_sizes, settings.batch_size})
    for size in sizes:
        batch = torch.stack([tensors[i % len(tensors)] for i in range(size)])
        model.predict_tensors(batch)  # warm-up: allocations, kernels, autotuning
        model.predict_tensors(batch)
        passes, started = 0, time.perf_counter()
        while True:
            model.predict_tensors(batch)
            passes += 1
            elapsed = time.perf_counter() - started
            if passes >= 3 and elapsed >= min_seconds:
                break
        by_batch[str(size)] = round(passes * size / elapsed, 2)
        console.print(f"  bare batch {size}: {by_batch[str(size)]:.1f} img/s")
    best = max(by_batch, key=by_batch.__getitem__)
    facts = {
        "device": str(model.device),
        "runtime": model.runtime,
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "model": model.name,
        "model_version": model.version,
        "input_size": model.input_size,
    }
    if model.device.type == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(model.device)
    return {
        "bare_img_s": by_batch[best],
        "bare_batch_size": int(best),
        "bare_by_batch": by_batch,
        "_facts": facts,
    }


def _pipeline(
    model: BreedClassifier, archive: Path, settings: Settings, storage: Storage, threads: int
) -> int:
    """The photos of ``archive`` through the service's own per-photo code, as fast as the
    cores allow: one thread reads the archive, ``threads`` hash, decode, store and read the
    thumbnail back for the model, and this thread runs the forward in ``forward_batch``
    chunks, in order. Returns the number of photos classified."""
    import queue
    import threading
    from concurrent.futures import Future, ThreadPoolExecutor
    from types import SimpleNamespace

    from pawdex.core.archive import ArchiveEntry, ArchiveLimits, iter_archive
    from pawdex.core.errors import UnsupportedImage
    from pawdex.core.imaging import sha256_bytes
    from pawdex.worker.classify import model_input
    from pawdex.worker.ingest import store_photo

    limits = ArchiveLimits.from_settings(settings)
    resize = model.preset.resize_size
    thumbnail_side = max(settings.thumbnail_size, resize)  # as ingest.Delivery decides

    def photo(entry: ArchiveEntry) -> Any:
        try:
            if entry.data is None:
                raise UnsupportedImage(entry.error or "empty entry")
            data = entry.data
            stored = store_photo(data, sha256_bytes(data), storage, settings, thumbnail_side)
        except UnsupportedImage as exc:  # the bench's archives hold photos only
            raise BenchError(f"{archive.name}: {entry.name}: {exc}") from exc
        row = SimpleNamespace(
            stored_path=stored.key, thumbnail_path=stored.thumbnail_key,
            width=stored.info.width, height=stored.info.height,
        )  # fmt: skip
        return model.prepare(model_input(row, storage, resize))

    # Futures in archive order; bounded so the reader stays a few chunks ahead, no more.
    ahead: queue.Queue[Future | None] = queue.Queue(maxsize=4 * model.forward_batch)
    stop = threading.Event()
    unreadable: list[Exception] = []
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="limit") as pool:

        def read() -> None:
            try:
                for entry in iter_archive(archive, limits):
                    if stop.is_set():
                        break
                    ahead.put(pool.submit(photo, entry))
            except Exception as exc:  # not an archive, or a corrupt one
                unreadable.append(exc)
            finally:
                ahead.put(None)

        reader = threading.Thread(target=read, name="limit-reader", daemon=True)
        reader.start()
        count, chunk = 0, []
        try:
            while (future := ahead.get()) is not None:
                chunk.append(future.result())
                if len(chunk) == model.forward_batch:
                    count += len(model.predict_prepared(chunk))
                    chunk = []
            count += len(model.predict_prepared(chunk))
            if unreadable:
                raise BenchError(f"{archive.name}: {unreadable[0]}")
        finally:
            stop.set()
            while reader.is_alive():  # let a blocked reader put its last future and end
                with suppress(queue.Empty):
                    ahead.get(timeout=0.1)
    return count


def measure_limit(
    settings: Settings, archive: Path, expected: int | None, warmup: Path, root: Path
) -> dict[str, Any]:
    """``limit_img_s``: what the service's per-photo work costs on these cores with perfect
    overlap and nothing else, on the e2e archive: reading the archive, hashing, the reduced
    decode and its checks, the thumbnail and storage (``worker.ingest.store_photo``), the
    classifier's input read back from the thumbnail (``worker.classify.model_input``) and
    the forward. No HTTP, broker or database: the ceiling e2e can approach."""
    from pawdex.worker.model_cache import get_classifier

    members = expected if expected is not None else _count_members(archive)
    settings = settings.model_copy(update=_archive_limits(archive, settings, members))
    model = get_classifier(settings)  # the model the inference worker serves, loaded
    threads = max(settings.decode_threads, os.cpu_count() or 1)
    folder = root / "limit"
    try:
        _pipeline(model, warmup, settings, LocalStorage(folder / "warmup"), threads)
        started, cpu_started = time.perf_counter(), time.process_time()
        photos = _pipeline(model, archive, settings, LocalStorage(folder / "storage"), threads)
        seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if expected is not None and photos != expected:
        raise BenchError(f"limit pipeline: {photos} photos classified, {expected} sent")
    console.print(f"  limit: {photos} photos in {seconds:.1f} s, {threads} threads")
    return {
        "limit_img_s": round(photos / seconds, 2),
        "limit_seconds": round(seconds, 2),
        "limit_threads": threads,
        "limit_cpu_ms_per_photo": round(1000 * cpu_s / photos, 1),
    }


@contextmanager
def _stack_database(opts: BenchOptions) -> Iterator[str | None]:
    """The e2e stack's database: None (SQLite in its data dir), a fresh PG one, or the URL."""
    if opts.database_url == FRESH_PG:
        with temp_database(opts.pg_admin_url or DEFAULT_PG_ADMIN_URL) as url:
            yield url
    else:
        yield opts.database_url


def run_e2e(
    label: str,
    archive: Path,
    expected: int | None,
    warmup: Path,
    settings: Settings,
    opts: BenchOptions,
    root: Path,
) -> dict[str, Any]:
    """A fresh stack (API + ingest worker + inference worker), a warm-up job, then the timed
    upload of ``archive``; returns its throughput and the workers' peak RSS."""
    data_dir = (root / label / "data").resolve()
    logs = root / label / "logs"
    members = expected if expected is not None else _count_members(archive)
    with _stack_database(opts) as database_url:
        env = base_env(
            data_dir,
            inherit_settings=True,
            PAWDEX_DATABASE_URL=database_url or f"sqlite:///{data_dir / 'pawdex.db'}",
            PAWDEX_BROKER_URL=opts.broker_url or "filesystem://",
            **_limits_env(archive, settings, members),
            **UNLIMITED,
        )
        _migrate(env)
        # Exactly the embedded layout of `pawdex serve`: two solo workers, one per queue.
        workers = [
            ["--queues", queue, "--concurrency", "1", "--name", f"{queue}@%h"]
            for queue in ("ingest", "inference")
        ]
        try:
            with (
                running_stack(
                    env, logs, embedded=False, workers=workers, serve_args=["--no-migrate"],
                    timeout=300,
                ) as stack,
                httpx.Client(
                    base_url=stack.url, timeout=opts.job_timeout, headers=stack.headers
                ) as client,
            ):  # fmt: skip
                warm = _follow(client, _upload(client, warmup), 900, f"{label} warm-up")
                _check_job(warm, WARMUP_PHOTOS)
                processes = [stack.api, *stack.workers]
                cpu_before = [cpu_seconds(proc.pid) for proc in processes]
                started = time.time()
                job_id = _upload(client, archive)
                upload_s = time.time() - started
                console.print(f"  {label}: uploaded in {upload_s:.1f} s, job {job_id}")
                job = _follow(client, job_id, opts.job_timeout, label)
                observed_s = time.time() - started
                cpu_after = [cpu_seconds(proc.pid) for proc in processes]
                rss = {
                    queue: _round(peak_rss_mb(proc.pid))
                    for queue, proc in zip(("ingest", "inference"), stack.workers, strict=True)
                }
                api_rss = _round(peak_rss_mb(stack.api.pid))
        except Exception:
            _log_tails(logs)
            raise
    _check_job(job, expected)
    seconds = datetime.fromisoformat(job["finished_at"]).timestamp() - started
    started_at = job.get("started_at")
    queued_s = datetime.fromisoformat(started_at).timestamp() - started if started_at else None
    photos = job["total"]
    known = [v for v in rss.values() if v is not None]
    cpu_ms = {
        name: None if a is None or b is None else round(1000 * (a - b) / photos, 1)
        for name, b, a in zip(("api", "ingest", "inference"), cpu_before, cpu_after, strict=True)
    }
    return {
        "photos": photos,
        "seconds": round(seconds, 3),  # a few photos take ~0.2 s: 0.01 s would be 5 %
        "img_s": round(photos / seconds, 2),
        "cpu_ms_per_photo": _total(cpu_ms),
        "cpu_ms_per_photo_by_process": cpu_ms,
        "upload_s": round(upload_s, 2),
        "ingest_start_s": _round(queued_s, 2),
        "observed_s": round(observed_s, 2),
        "archive_mb": round(archive.stat().st_size / MiB, 1),
        "peak_rss_mb": max(known) if known else None,
        "peak_rss_mb_by_worker": rss,
        "api_peak_rss_mb": api_rss,
    }


def measure_naive(
    settings: Settings, opts: BenchOptions, sources: list[Path], root: Path
) -> dict[str, Any]:
    """The naive demo server, fed one camera-size photo per request, sequentially."""
    folder = root / "naive"
    folder.mkdir(parents=True, exist_ok=True)
    photos = list(render_photos(opts.naive_photos + NAIVE_WARMUP, sources, "naive"))
    env = base_env(folder, inherit_settings=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["--port", str(port), "--model", settings.model, "--device", opts.naive_device]
    proc = spawn(args, env, folder / "naive.log", module="bench.naive")
    try:
        wait_ready(url, [proc], timeout=300, path="/healthz")
        with httpx.Client(base_url=url, timeout=300) as client:

            def predict(data: bytes) -> None:
                response = client.post(
                    "/predict", files={"file": ("photo.jpg", data, "image/jpeg")}
                )
                if response.status_code != 200:
                    raise BenchError(f"naive /predict: {response.status_code} {response.text}")

            for data in photos[:NAIVE_WARMUP]:
                predict(data)
            started = time.perf_counter()
            for data in photos[NAIVE_WARMUP:]:
                predict(data)
            elapsed = time.perf_counter() - started
    except Exception:
        _log_tails(folder)
        raise
    finally:
        stop(proc)
    return {
        "naive_img_s": round(opts.naive_photos / elapsed, 2),
        "naive_photos": opts.naive_photos,
        "naive_device": opts.naive_device,
    }


def seed_catalog(
    alchemy_url: str, rows: int, storage: Storage, seed: int = 1234, labelled: float = 0.03
) -> None:
    """``rows`` images with one prediction each (one active model version), bulk-copied.
    Their files are not written, but their keys are the ones ``storage`` would give them.

    Breeds follow a long-tailed (Zipf-like) distribution over the 120 Stanford Dogs names;
    ~88 % dogs, 8 % cats, 4 % other; confidences skewed high for dogs, as the model gives.
    A ``labelled`` share of the photos carry a person's current label (reviewers correct the
    least confident ones), as a catalogue in use does: the queries' plans change with them."""
    import psycopg

    from pawdex.ml.classes import BREED_NAMES

    rng = random.Random(seed)
    breeds = list(BREED_NAMES)
    rng.shuffle(breeds)
    weights = [1 / (rank + 1) ** 0.8 for rank in range(len(breeds))]
    now = datetime.now(UTC)
    with psycopg.connect(_plain_pg_url(alchemy_url)) as conn:
        version_id = conn.execute(
            "INSERT INTO model_versions (version, name, active, details, created_at)"
            " VALUES (%s, %s, true, %s, %s) RETURNING id",
            ("bench-seed@00000000", "bench-seed", json.dumps({"seeded_rows": rows}), now),
        ).fetchone()[0]
        with conn.cursor() as cur:
            with cur.copy(
                "COPY images (id, sha256, filename, path, format, size_bytes, width, height,"
                " stored_path, thumbnail_path, created_at) FROM STDIN"
            ) as copy:
                for i in range(1, rows + 1):
                    sha = hashlib.sha256(f"bench-seed:{i}".encode()).hexdigest()
                    name = f"photo-{i:06d}.jpg"
                    copy.write_row((
                        i, sha, name, f"{2015 + i % 10}/kennel-{i % 50:02d}/{name}", "JPEG",
                        200_000 + i % 50_000, 1600, 1200, storage.image_key(sha, "JPEG"),
                        storage.thumbnail_key(sha), now - timedelta(seconds=3 * (rows - i)),
                    ))  # fmt: skip
            labels = []
            with cur.copy(
                "COPY predictions (image_id, model_version_id, species, breed, confidence,"
                " species_confidence, top_k, created_at, catalog_species, catalog_breed,"
                " labelled) FROM STDIN"
            ) as copy:
                for i in range(1, rows + 1):
                    species = rng.choices(("dog", "cat", "other"), (0.88, 0.08, 0.04))[0]
                    picks = rng.choices(breeds, weights, k=8)
                    top = list(dict.fromkeys(picks))[:5]
                    confidence = (
                        rng.betavariate(5, 2) if species == "dog" else rng.betavariate(2, 5)
                    )
                    rest = 1 - confidence
                    top_k = [{"breed": top[0], "confidence": round(confidence, 4)}] + [
                        {"breed": b, "confidence": round(min(confidence, rest / 2 ** (k + 1)), 4)}
                        for k, b in enumerate(top[1:])
                    ]
                    breed = top[0] if species == "dog" else None
                    shown = (species, breed)
                    is_labelled = rng.random() < labelled
                    if is_labelled:  # reviewers mostly confirm or correct dogs
                        shown = ("dog", rng.choices(breeds, weights)[0])
                        labels.append((i, *shown, version_id, breed, "bench", True, now))
                    copy.write_row((
                        i, version_id, species, breed, confidence, rng.uniform(0.5, 1.0),
                        json.dumps(top_k), now - timedelta(seconds=3 * (rows - i) - 1), *shown,
                        is_labelled,
                    ))  # fmt: skip
            with cur.copy(
                "COPY labels (image_id, species, breed, model_version_id, model_breed,"
                " key_name, current, created_at) FROM STDIN"
            ) as copy:
                for row in labels:
                    copy.write_row(row)
            cur.execute(
                "SELECT setval(pg_get_serial_sequence('images', 'id'), %s)", (max(rows, 1),)
            )
        conn.commit()
        # What autovacuum does after a bulk load: statistics, and the visibility map that
        # lets the catalogue find a page from its indexes alone.
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")


def explain_animals_query(alchemy_url: str, params: dict[str, Any]) -> dict[str, str]:
    """The SQL statements that ``core.catalog.list_photos`` runs for the query ``params``
    (as sent to ``GET /v1/photos``), with their ``EXPLAIN (ANALYZE, BUFFERS)`` plans."""
    import psycopg
    from sqlalchemy import create_engine, event
    from sqlalchemy.orm import Session
    from sqlalchemy.pool import NullPool

    from pawdex.core.catalog import PhotoFilters, PhotoSort, list_photos

    filters = PhotoFilters(
        breed=params.get("breed"),
        species=params.get("species"),
        min_confidence=params.get("min_confidence"),
        label_source=params.get("label_source"),
    )
    sort = PhotoSort(params.get("sort", PhotoSort.confidence_desc.value))
    engine = create_engine(alchemy_url, poolclass=NullPool)
    captured: list[tuple[str, Any]] = []

    def grab(_conn, _cursor, statement, parameters, _context, _many) -> None:
        captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", grab)
    sqls, plans = [], []
    try:
        with Session(engine) as session:
            list_photos(session, filters, sort, limit=params.get("limit", 50))
        statements = [(s, p) for s, p in captured if "FROM images" in s]
        with engine.connect() as conn, psycopg.connect(_plain_pg_url(alchemy_url)) as raw:
            for statement, parameters in statements:
                plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
                plans.append("\n".join(row[0] for row in plan))
                sqls.append(psycopg.ClientCursor(raw).mogrify(statement, parameters))
    finally:
        engine.dispose()
    return {"query_sql": "\n\n".join(sqls), "query_explain": "\n\n".join(plans)}


def _common_first(names: list[str], seed: int = 1234) -> list[str]:
    """The breed names in the order ``seed_catalog`` makes them common (its Zipf ranks)."""
    ranked = list(names)
    random.Random(seed).shuffle(ranked)
    return ranked


def _query_params(rng: random.Random, breeds: list[str]) -> dict[str, Any]:
    """A catalogue query as people send them: common and rare breeds, species alone, low and
    high confidence floors (large matches included), labelled photos, "might be" a breed, the
    three sorts."""
    params: dict[str, Any] = {"limit": 50, "sort": rng.choice(["-confidence", "confidence",
                                                               "-indexed_at"])}  # fmt: skip
    kind = rng.random()
    if kind < 0.5:
        common = rng.random() < 0.5
        params["breed"] = breeds[rng.randrange(5)] if common else rng.choice(breeds)
    elif kind < 0.8:
        params["species"] = rng.choice(["dog", "cat", "other"])
    elif kind < 0.9:
        params["label_source"] = "human"
    elif kind < 0.95:  # might be that breed: anywhere in the top 5 (breed_candidates)
        params["might_be"] = breeds[rng.randrange(5)]
    if rng.random() < 0.6:
        params["min_confidence"] = round(rng.uniform(0.0, 0.9), 3)
    return params


def measure_query(settings: Settings, opts: BenchOptions, root: Path) -> dict[str, Any]:
    """Seeded rows on a fresh PostgreSQL database; sequential filtered queries over HTTP."""
    admin = opts.pg_admin_url or DEFAULT_PG_ADMIN_URL
    why_not = _pg_reachable(admin)
    if why_not is not None:
        note = f"PostgreSQL not reachable at {_safe_url(admin)} ({why_not}); query not measured"
        console.print(f"[yellow]{note}[/yellow]")
        return {"query_p50_ms": None, "query_p95_ms": None, "query_note": note}

    from pawdex.ml.classes import BREED_NAMES

    folder = root / "query"
    rng = random.Random(7)
    data_dir = (folder / "data").resolve()
    with temp_database(admin) as url:
        env = base_env(
            data_dir,
            inherit_settings=True,
            PAWDEX_DATABASE_URL=url,
            PAWDEX_BROKER_URL="filesystem://",
            **UNLIMITED,
        )
        _migrate(env)
        started = time.perf_counter()
        storage = LocalStorage(settings.model_copy(update={"data_dir": data_dir}).storage_dir)
        seed_catalog(url, opts.query_rows, storage)
        console.print(f"  seeded {opts.query_rows} rows in {time.perf_counter() - started:.1f} s")
        try:
            with (
                running_stack(
                    env, folder / "logs", embedded=False, serve_args=["--no-migrate"]
                ) as stack,
                httpx.Client(base_url=stack.url, timeout=60, headers=stack.headers) as client,
            ):
                timings: dict[str, list[float]] = {path: [] for path in QUERY_PATHS}
                slowest: tuple[float, dict[str, Any]] = (0.0, {})
                breeds = _common_first(BREED_NAMES)
                for number in range(QUERY_WARMUP + opts.queries):
                    path = rng.choices(QUERY_PATHS, QUERY_PATH_WEIGHTS)[0]
                    params = _query_params(rng, breeds) if path == "/v1/photos" else {}
                    began = time.perf_counter()
                    response = client.get(path, params=params)
                    elapsed_ms = (time.perf_counter() - began) * 1000
                    if response.status_code != 200:
                        raise BenchError(f"{path}: {response.status_code} {response.text}")
                    if number >= QUERY_WARMUP:
                        timings[path].append(elapsed_ms)
                        if path == "/v1/photos":
                            slowest = max(slowest, (elapsed_ms, params), key=lambda t: t[0])
        except Exception:
            _log_tails(folder)
            raise
        plan = explain_animals_query(url, slowest[1])
    every = [ms for path_timings in timings.values() for ms in path_timings]
    return {
        "query_p50_ms": round(statistics.median(every), 2),
        "query_p95_ms": _p95(every),
        "query_max_ms": round(max(every), 2),
        "query_p95_ms_by_path": {path: _p95(ms) for path, ms in timings.items() if ms},
        "query_rows": opts.query_rows,
        "query_count": len(every),
        "query_slowest_params": slowest[1],
        **plan,
    }


def _p95(timings: list[float]) -> float:
    if len(timings) < 2:
        return round(max(timings), 2)
    return round(statistics.quantiles(timings, n=100, method="inclusive")[94], 2)


# ---------------------------------------------------------------------------- the whole run


def _mode(url: str | None, embedded: str) -> str:
    if url is None:
        return embedded
    if url == FRESH_PG:
        return "postgresql (fresh temporary database)"
    return url.split(":", 1)[0].split("+", 1)[0]


def run_bench(opts: BenchOptions) -> dict[str, Any]:
    """Every measurement, in an order that never runs two of them at once."""
    settings = get_settings()
    sources = source_photos(opts.source_photos)
    if opts.workdir is not None:
        opts.workdir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="pawdex-bench-", dir=opts.workdir)).resolve()
    step = _Steps()
    result: dict[str, Any] = {}
    console.print(f"[bold]bench[/bold] scratch dir {root}")
    try:
        with step("archive", "building the archives"):
            warmup = build_archive(root / "warmup.zip", WARMUP_PHOTOS, sources, "warmup")
            if opts.archive is not None:
                archive, expected = opts.archive.resolve(), None
            else:
                archive = build_archive(root / "photos.zip", opts.photos, sources, "photos")
                expected = opts.photos

        with step("bare", "bare model throughput"):
            bare = measure_bare(settings, sources, opts.batch_sizes, opts.bare_seconds)
        facts = bare.pop("_facts")
        result |= bare

        with step("limit", "in-process pipeline limit"):
            result |= measure_limit(settings, archive, expected, warmup, root)

        with step("e2e", "end to end through the stack"):
            small = run_e2e("e2e", archive, expected, warmup, settings, opts, root)
        result |= {
            "e2e_img_s": small["img_s"],
            "e2e_seconds": small["seconds"],
            "photos": small["photos"],
            "e2e_upload_s": small["upload_s"],
            "e2e_ingest_start_s": small["ingest_start_s"],
            "e2e_cpu_ms_per_photo": small["cpu_ms_per_photo"],
            "e2e_cpu_ms_per_photo_by_process": small["cpu_ms_per_photo_by_process"],
            "archive_mb": small["archive_mb"],
            "peak_rss_mb": small["peak_rss_mb"],
            "peak_rss_mb_by_worker": small["peak_rss_mb_by_worker"],
            "api_peak_rss_mb": small["api_peak_rss_mb"],
        }
        if opts.archive is None:
            (root / "photos.zip").unlink(missing_ok=True)

        if opts.naive_photos > 0:
            with step("naive", "naive demo server"):
                result |= measure_naive(settings, opts, sources, root)
        else:
            result |= {"naive_img_s": None, "naive_photos": 0}

        with step("query", "catalogue queries on PostgreSQL"):
            result |= measure_query(settings, opts, root)

        if opts.rss_photos > 0:
            with step("archive_large", f"building the {opts.rss_photos}-photo archive"):
                large_archive = build_archive(root / "large.zip", opts.rss_photos, sources, "large")
                large_warmup = build_archive(
                    root / "warmup-large.zip", WARMUP_PHOTOS, sources, "warmup-large"
                )
            with step("e2e_large", f"end to end with {opts.rss_photos} photos (RSS)"):
                large = run_e2e(
                    "e2e-large", large_archive, opts.rss_photos, large_warmup, settings, opts,
                    root,
                )  # fmt: skip
            result |= {
                "large_photos": opts.rss_photos,
                "peak_rss_mb_large": large["peak_rss_mb"],
                "peak_rss_mb_large_by_worker": large["peak_rss_mb_by_worker"],
                "e2e_img_s_large": large["img_s"],
                "rss_growth": _ratio(large["peak_rss_mb"], result["peak_rss_mb"]),
            }
        else:
            result |= {"large_photos": 0, "peak_rss_mb_large": None, "rss_growth": None}
    finally:
        if opts.keep:
            console.print(f"[bold]bench[/bold] kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    result["ratio_e2e_vs_bare"] = _ratio(result["e2e_img_s"], result["bare_img_s"])
    result["ratio_e2e_vs_limit"] = _ratio(result["e2e_img_s"], result["limit_img_s"])
    result["ratio_e2e_vs_naive"] = _ratio(result["e2e_img_s"], result.get("naive_img_s"))
    result["machine"] = {
        "cpu_count": os.cpu_count(),
        **facts,
        "batch_size": settings.batch_size,
        "decode_threads": settings.decode_threads,
        "database": _mode(opts.database_url, "sqlite (embedded)"),
        "broker": _mode(opts.broker_url, "filesystem (embedded)"),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    result["steps_s"] = step.seconds
    return result


# ------------------------------------------------------------------------------- reporting


def _fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    return f"{value}{unit}"


def render_table(result: dict[str, Any], console_out: Console) -> None:
    """The figures, how each was measured, the machine, and the query plan."""
    m = result["machine"]
    table = Table(title="pawdex bench", show_lines=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("how", overflow="fold")
    batches = ", ".join(f"{b}: {v:.1f}" for b, v in result["bare_by_batch"].items())
    rows = [
        ("bare_img_s", _fmt(result["bare_img_s"]),
         f"forward alone, best batch {result['bare_batch_size']} (img/s by batch: {batches})"),
        ("e2e_img_s", _fmt(result["e2e_img_s"]),
         f"{result['photos']} photos ({result['archive_mb']} MB zip) upload → finished_at in "
         f"{result['e2e_seconds']:.1f} s (upload {result['e2e_upload_s']:.1f} s)"),
        ("naive_img_s", _fmt(result.get("naive_img_s")),
         f"{result.get('naive_photos')} photos, 1 per sync request, full decode, batch 1, "
         f"{result.get('naive_device', '')}"),
        ("limit_img_s", _fmt(result["limit_img_s"]),
         "the same photos in one process, no HTTP, broker or database: ingest's hash, decode, "
         f"thumbnail and store, the thumbnail read back and the forward, overlapped "
         f"({result['limit_threads']} threads + the forward)"),
        ("cpu_ms_per_photo", _fmt(result["e2e_cpu_ms_per_photo"]),
         "CPU time per photo (all cores), e2e: "
         + ", ".join(f"{k} {_fmt(v)}" for k, v in result["e2e_cpu_ms_per_photo_by_process"].items())
         + f"; limit {_fmt(result['limit_cpu_ms_per_photo'])} (what the service adds, whatever "
         "the load)"),
        ("ratio_e2e_vs_bare", _fmt(result["ratio_e2e_vs_bare"], digits=3),
         "the bare forward is out of reach: each photo also costs ingest CPU"),
        ("ratio_e2e_vs_limit", _fmt(result["ratio_e2e_vs_limit"], digits=3), "target ≥ 0.9"),
        ("ratio_e2e_vs_naive", _fmt(result["ratio_e2e_vs_naive"], digits=2), "target ≥ 3"),
        ("query_p50_ms", _fmt(result.get("query_p50_ms"), digits=2),
         f"{result.get('query_count', 0)} GET of /v1/photos (filters), /v1/breeds, /v1/review;"
         f" {result.get('query_rows', 0):,} rows"),
        ("query_p95_ms", _fmt(result.get("query_p95_ms"), digits=2),
         result.get("query_note") or "target < 20 at 1,000,000 rows; by path: " + ", ".join(
             f"{path} {ms}" for path, ms in result.get("query_p95_ms_by_path", {}).items())),
        ("peak_rss_mb", _fmt(result["peak_rss_mb"]),
         "max VmHWM of the workers after N: "
         + ", ".join(f"{k} {_fmt(v)}" for k, v in result["peak_rss_mb_by_worker"].items())
         + f" (api {_fmt(result['api_peak_rss_mb'])})"),
    ]  # fmt: skip
    if result.get("large_photos"):
        rows += [
            ("peak_rss_mb_large", _fmt(result["peak_rss_mb_large"]),
             f"after {result['large_photos']} photos: "
             + ", ".join(f"{k} {_fmt(v)}" for k, v in result["peak_rss_mb_large_by_worker"].items())
             + f"; e2e {_fmt(result['e2e_img_s_large'])} img/s"),
            ("rss_growth", _fmt(result["rss_growth"], digits=3), "large / small, target ≤ 1.1"),
        ]  # fmt: skip
    for row in rows:
        table.add_row(*row)
    table.add_section()
    facts = [
        ("device", m["device"] + (f" ({m['gpu']})" if m.get("gpu") else "")),
        ("cpu_count / torch threads", f"{m['cpu_count']} / {m['torch_threads']}"),
        ("torch", m["torch_version"]),
        ("model", m["model_version"]),
        ("worker batch size / decode threads", f"{m['batch_size']} / {m['decode_threads']}"),
        ("database / broker", f"{m['database']} / {m['broker']}"),
        ("steps (s)", ", ".join(f"{k} {v:.0f}" for k, v in result["steps_s"].items())),
    ]
    for name, value in facts:
        table.add_row(name, "", value)
    console_out.print(table)
    if result.get("query_explain"):
        console_out.print(
            f"Plan (EXPLAIN ANALYZE) of the slowest query, {result.get('query_slowest_params')}:",
            markup=False,
        )
        console_out.print(result["query_sql"], markup=False, highlight=False)
        console_out.print(result["query_explain"], markup=False, highlight=False)


def bench_main(options: BenchOptions, as_json: bool) -> int:
    """``pawdex bench``: run, print the table on stdout and, with ``as_json``, the result as
    one JSON object on the last line of stdout. Returns the exit status."""
    try:
        result = run_bench(options)
    except (BenchError, FileNotFoundError) as exc:
        console.print(f"[red]bench failed: {exc}[/red]")
        return 1
    render_table(result, Console(width=140))
    if as_json:
        sys.stdout.flush()
        print(json.dumps(result), flush=True)
    return 0
