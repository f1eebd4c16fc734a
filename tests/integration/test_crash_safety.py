"""Crash safety with real processes: PostgreSQL, Redis, the API and Celery workers, killed
with SIGKILL at the worst moments. Whatever dies, every photo ends with exactly one
prediction or one per-file error, and every job ends.

The broker's visibility timeout, the ingest heartbeat timeout and the sweep interval are set
to seconds (production: an hour, five minutes, a minute) so that recovery happens in a test.
The workers run ``tests.integration.faulty_worker`` (``pawdex`` plus test-only fault knobs).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Engine

from pawdex.core.models import Job, JobError, JobImage, Prediction
from tests.factories import jpeg_bytes, make_zip
from tests.integration.private_services import PrivateRedis
from tests.stack import (
    base_env,
    running_stack,
    spawn,
    stop,
    wait_job,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAULTY = "tests.integration.faulty_worker"
POISON_INGEST = b"pawdex-test-poison-ingest"
POISON_CLASSIFY = b"pawdex-test-poison-classify"
HANG = b"pawdex-test-hang"


@pytest.fixture
def redis_url(tmp_path) -> Iterator[str]:
    """A Redis server of the test's own: its workers must neither take other tests' tasks nor
    lose theirs to them (on a dev machine the shared server is shared by everyone's tests)."""
    server = PrivateRedis(tmp_path)
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def env(pg_url, redis_url, tmp_path) -> dict[str, str]:
    return base_env(
        tmp_path / "data",
        PAWDEX_DATABASE_URL=pg_url,
        PAWDEX_BROKER_URL=redis_url,
        PAWDEX_BATCH_SIZE="4",
        PAWDEX_BROKER_VISIBILITY_TIMEOUT="3",
        PAWDEX_INGEST_HEARTBEAT_TIMEOUT="3",
        PAWDEX_SWEEP_INTERVAL="1",
    )


@pytest.fixture
def db(pg_url) -> Iterator[Engine]:
    engine = create_engine(pg_url)
    yield engine
    engine.dispose()


class Workers:
    """Worker processes of one role that the test kills and restarts (as a supervisor)."""

    def __init__(self, queue: str, env: dict[str, str], logs: Path, **faults: str) -> None:
        self.queue, self.env, self.logs = queue, env | faults, logs
        self.started: list[subprocess.Popen] = []

    @property
    def current(self) -> subprocess.Popen:
        return self.started[-1]

    def start(self, **faults: str) -> subprocess.Popen:
        n = len(self.started)
        args = ["worker", "--queues", self.queue, "--name", f"{self.queue}{n}@%h"]
        log = self.logs / f"{self.queue}{n}.log"
        self.started.append(spawn(args, self.env | faults, log, module=FAULTY))
        return self.current

    def restart_if_dead(self) -> bool:
        if self.current.poll() is None:
            return False
        self.start()
        return True

    @property
    def deaths(self) -> int:
        return sum(proc.poll() is not None for proc in self.started)

    def log_text(self) -> str:
        return "".join(p.read_text() for p in sorted(self.logs.glob(f"{self.queue}*.log")))

    def stop_all(self) -> None:
        for proc in self.started:
            stop(proc)


@contextmanager
def workers(*groups: Workers) -> Iterator[None]:
    try:
        for group in groups:
            group.start()
        yield
    finally:
        for group in groups:
            group.stop_all()


def job_row(db: Engine, job_id: str) -> dict:
    with db.connect() as conn:
        return dict(conn.execute(select(Job.__table__).where(Job.id == job_id)).mappings().one())


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.02)


def mid_batch(db: Engine, job_id: str) -> list[int]:
    """Photos that a classify delivery took in hand and has not written yet: the worker is in
    the middle of their batch."""
    with db.connect() as conn:
        return list(
            conn.scalars(
                select(JobImage.image_id).where(
                    JobImage.job_id == job_id,
                    JobImage.attempts > 0,
                    ~select(Prediction.id).where(Prediction.image_id == JobImage.image_id).exists(),
                )
            )
        )


def attempts(db: Engine, job_id: str, image_ids: list[int]) -> set[int]:
    with db.connect() as conn:
        return set(
            conn.scalars(
                select(JobImage.attempts).where(
                    JobImage.job_id == job_id, JobImage.image_id.in_(image_ids)
                )
            )
        )


def upload(client: httpx.Client, archive: Path) -> str:
    with archive.open("rb") as fh:
        response = client.post("/v1/archives", files={"file": (archive.name, fh)})
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def assert_nothing_lost(db: Engine, job: dict, photos: int) -> None:
    """The job ended and accounts for every file; the database holds one prediction per
    photo, none twice."""
    assert job["total"] == job["done"] + job["duplicates"] + job["failed"]
    with db.connect() as conn:
        images = conn.scalar(
            select(func.count()).select_from(JobImage).where(JobImage.job_id == job["id"])
        )
        predictions = conn.scalar(
            select(func.count()).select_from(Prediction).where(Prediction.job_id == job["id"])
        )
        distinct = conn.scalar(
            select(func.count(func.distinct(Prediction.image_id))).where(
                Prediction.job_id == job["id"]
            )
        )
        errors = conn.scalar(
            select(func.count()).select_from(JobError).where(JobError.job_id == job["id"])
        )
    assert images == photos
    assert predictions == distinct == job["done"]
    assert errors == job["failed"]


def test_killed_workers_lose_and_duplicate_nothing(env, db, tmp_path):
    """SIGKILL the ingest worker mid-archive, then the inference worker mid-batch; new workers
    finish both jobs: ingest resumes from its committed position, the broker delivers the
    killed batch again."""
    logs = tmp_path / "logs"
    ingest = Workers("ingest", env, logs, PAWDEX_TEST_INGEST_DELAY="0.25")
    inference = Workers("inference", env, logs, PAWDEX_TEST_HANG=HANG.decode())
    with (
        running_stack(env, logs, embedded=False) as stack,
        httpx.Client(base_url=stack.url, headers=stack.headers, timeout=30) as client,
        workers(ingest, inference),
    ):
        # 1. The ingest worker, killed after some batches were committed.
        archive = make_zip(
            tmp_path / "first.zip", {f"a/{i:02d}.jpg": jpeg_bytes(seed=1000 + i) for i in range(24)}
        )
        job_id = upload(client, archive)
        wait_for(
            lambda: 8 <= job_row(db, job_id)["ingest_position"] < 24,
            "ingest never got half-way",
        )
        os.kill(ingest.current.pid, signal.SIGKILL)
        killed_at = job_row(db, job_id)["ingest_position"]
        ingest.current.wait()
        ingest.start()
        job = wait_job(client, job_id, timeout=120, interval=0.2)
        assert (job["status"], job["total"], job["done"], job["failed"]) == ("succeeded", 24, 24, 0)
        assert_nothing_lost(db, job, photos=24)
        assert f"job_id={job_id} resume=True position={killed_at}" in ingest.log_text()

        # 2. The inference worker, killed in the middle of a classify batch: the second batch
        # holds a photo on which it hangs.
        photos = {f"b/{i:02d}.jpg": jpeg_bytes(seed=2000 + i) for i in range(24)}
        photos["b/05.jpg"] += HANG
        job_id = upload(client, make_zip(tmp_path / "second.zip", photos))
        wait_for(
            lambda: job_row(db, job_id)["done"] == 4 and len(mid_batch(db, job_id)) == 4,
            "classify never hung in its second batch",
        )
        os.kill(inference.current.pid, signal.SIGKILL)
        inference.current.wait()
        in_hand = mid_batch(db, job_id)
        assert len(in_hand) == 4
        inference.start(PAWDEX_TEST_HANG="")
        job = wait_job(client, job_id, timeout=120, interval=0.2)
        assert (job["status"], job["total"], job["done"], job["failed"]) == ("succeeded", 24, 24, 0)
        assert_nothing_lost(db, job, photos=24)
        # The killed batch was delivered again, and its photos classified by the new worker.
        assert attempts(db, job_id, in_hand) == {2}


def test_poison_files_end_after_a_bounded_number_of_deaths(env, db, tmp_path):
    """One file kills the ingest worker, another the inference worker, every time they are
    read. Restarted workers (as a supervisor would) skip each after ``max_attempts`` deaths
    with a per-file error; every other photo is indexed, and the job ends."""
    logs = tmp_path / "logs"
    env |= {"PAWDEX_MAX_ATTEMPTS": "2"}  # the default, 3, only makes the test longer
    ingest = Workers("ingest", env, logs, PAWDEX_TEST_POISON=POISON_INGEST.decode())
    inference = Workers("inference", env, logs, PAWDEX_TEST_POISON=POISON_CLASSIFY.decode())
    photos = {f"c/{i:02d}.jpg": jpeg_bytes(seed=3000 + i) for i in range(14)}
    photos["c/05.jpg"] += POISON_INGEST  # read at ingest: the worker dies
    photos["c/09.jpg"] += POISON_CLASSIFY  # a valid JPEG; decoding it for the model kills
    archive = make_zip(tmp_path / "poison.zip", photos)
    with (
        running_stack(env, logs, embedded=False) as stack,
        httpx.Client(base_url=stack.url, headers=stack.headers, timeout=30) as client,
        workers(ingest, inference),
    ):
        job_id = upload(client, archive)
        deadline = time.monotonic() + 150
        while job_row(db, job_id)["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, f"job still running: {job_row(db, job_id)}"
            ingest.restart_if_dead()
            inference.restart_if_dead()
            time.sleep(0.1)
        job = client.get(f"/v1/jobs/{job_id}").json()
        deaths = (ingest.deaths, inference.deaths)

    assert job["status"] == "partial"
    assert (job["total"], job["done"], job["failed"]) == (14, 12, 2)
    errors = {e["name"]: e["error"] for e in job["errors"]}
    assert set(errors) == {"c/05.jpg", "c/09.jpg"}
    assert all("stopped the worker 2 times" in message for message in errors.values())
    # Bounded: ingest first dies in the batch holding the entry, then reads it alone twice;
    # classify takes the photo in hand twice (in its batch, then alone).
    assert deaths == (3, 2)
    assert_nothing_lost(db, job, photos=13)  # the classify poison was ingested


def _raw_post_headers(url: str, path: str, key: str, boundary: str, length: int) -> bytes:
    host = url.removeprefix("http://")
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {key}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def test_an_api_killed_mid_upload_records_no_job_and_leaves_no_spool(env, db, tmp_path):
    """The API is SIGKILLed while a client is half-way through a 64 MiB upload. After a
    restart: no job row, nothing in the spool (a batch a killed API left behind while
    spooling is swept at start), and uploads work again."""
    logs = tmp_path / "logs"
    spool = Path(env["PAWDEX_DATA_DIR"]) / "spool"
    boundary = "pawdexcrashtest"
    preamble = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.zip"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode()
    total = 64 * 1024 * 1024
    with running_stack(env, logs, embedded=False) as stack:
        host, port = stack.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            key = stack.headers["X-API-Key"]
            sock.sendall(_raw_post_headers(stack.url, "/v1/archives", key, boundary, total))
            sock.sendall(preamble)
            chunk = b"\0" * (1024 * 1024)
            for _ in range(16):  # a quarter of the body, then the server dies under it
                sock.sendall(chunk)
            sock.settimeout(0.5)
            with pytest.raises(TimeoutError):  # no answer: the API is still reading the body
                sock.recv(1)
            os.kill(stack.api.pid, signal.SIGKILL)
            stack.api.wait()

    # What an API killed during the copy into the spool (before its commit) leaves behind.
    orphan = spool / ("f" * 32)
    orphan.mkdir(parents=True, exist_ok=True)
    (orphan / "000000").write_bytes(b"half an archive")
    two_hours_ago = time.time() - 7200
    for path in (orphan / "000000", orphan):
        os.utime(path, (two_hours_ago, two_hours_ago))

    with (
        running_stack(env, logs / "restart", embedded=False) as stack,
        httpx.Client(base_url=stack.url, headers=stack.headers, timeout=30) as client,
    ):
        with db.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM jobs")) == 0
        assert list(spool.iterdir()) == []

        archive = make_zip(tmp_path / "after.zip", {"one.jpg": jpeg_bytes(seed=4000)})
        job_id = upload(client, archive)
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
        assert len(list(spool.iterdir())) == 1  # a queued job's upload is kept
