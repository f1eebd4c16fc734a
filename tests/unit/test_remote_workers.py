"""Inference workers on other hosts: thumbnails a batch at a time over HTTP
(``POST /v1/images/thumbnails``, ``PAWDEX_THUMBNAIL_SOURCE=api``), workers that report their
host, and batches checked against the broker's visibility timeout."""

from __future__ import annotations

import io
import logging
import tarfile

import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from tests.conftest import make_key
from tests.factories import jpeg_bytes
from tests.stack import free_port


def upload(client, sizes: list[tuple[int, int]], seed: int) -> list[int]:
    """Index photos of these sizes (eager: stored, thumbnailed, classified); their ids."""
    from pawdex.core.db import session_scope
    from pawdex.core.models import Image

    files = [
        ("file", (f"r{seed + i}.jpg", jpeg_bytes(w, h, seed=seed + i), "image/jpeg"))
        for i, (w, h) in enumerate(sizes)
    ]
    job_id = client.post("/v1/images", files=files).json()["job_id"]
    with session_scope() as session:
        return list(session.scalars(select(Image.id).where(Image.job_id == job_id)))


def members(response) -> dict[str, bytes]:
    assert response.headers["content-type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:") as archive:
        return {m.name: archive.extractfile(m).read() for m in archive}


# -- the endpoint ----------------------------------------------------------------------------


def test_thumbnails_come_in_one_tar_in_the_order_asked_missing_ones_absent(
    eager_client, embedded_settings
):
    ids = upload(eager_client, [(640, 480), (500, 400)], seed=300)
    viewer = {"X-API-Key": make_key(embedded_settings, "viewer")}
    asked = [ids[1], 999_999, ids[0], ids[1]]  # an unknown id, a repeated one
    response = eager_client.post("/v1/images/thumbnails", json={"image_ids": asked}, headers=viewer)
    assert response.status_code == 200, response.text
    got = members(response)
    assert list(got) == [f"{ids[1]}.jpg", f"{ids[0]}.jpg"]
    for image_id in ids:  # byte for byte the thumbnail the single-photo route serves
        one = eager_client.get(f"/v1/images/{image_id}/thumbnail", headers=viewer)
        assert got[f"{image_id}.jpg"] == one.content
        assert PILImage.open(io.BytesIO(one.content)).format == "JPEG"
    nothing = eager_client.post(
        "/v1/images/thumbnails", json={"image_ids": [999_998]}, headers=viewer
    )
    assert nothing.status_code == 200 and members(nothing) == {}


def test_thumbnails_need_a_key_and_leave_out_photos_in_the_trash(eager_client, embedded_settings):
    ids = upload(eager_client, [(640, 480), (600, 480)], seed=310)
    body = {"image_ids": ids}
    anonymous = eager_client.post("/v1/images/thumbnails", json=body, headers={"X-API-Key": ""})
    assert anonymous.status_code == 401
    for role in ("viewer", "archivist", "admin"):
        key = {"X-API-Key": make_key(embedded_settings, role)}
        response = eager_client.post("/v1/images/thumbnails", json=body, headers=key)
        assert response.status_code == 200 and len(members(response)) == 2, role
    assert eager_client.delete(f"/v1/photos/{ids[0]}").status_code == 200
    viewer = {"X-API-Key": make_key(embedded_settings, "viewer")}
    after = members(eager_client.post("/v1/images/thumbnails", json=body, headers=viewer))
    assert list(after) == [f"{ids[1]}.jpg"]
    # Those who may restore it still see it, as /thumbnail shows it to them: a worker with
    # such a key classifies a photo deleted while it was queued.
    admin = members(eager_client.post("/v1/images/thumbnails", json=body))
    assert sorted(admin) == sorted(f"{i}.jpg" for i in ids)


@pytest.mark.parametrize(
    "body",
    [
        {"image_ids": []},
        {"image_ids": list(range(1, 514))},  # 513: over the limit
        {"image_ids": [0]},
        {"image_ids": ["one"]},
        {"ids": [1]},
    ],
)
def test_thumbnails_refuse_bad_requests(eager_client, body):
    assert eager_client.post("/v1/images/thumbnails", json=body).status_code == 422


def test_thumbnails_take_up_to_512(eager_client):
    response = eager_client.post("/v1/images/thumbnails", json={"image_ids": list(range(1, 513))})
    assert response.status_code == 200


# -- classify with PAWDEX_THUMBNAIL_SOURCE=api --------------------------------------------------


@pytest.fixture
def remote_worker(eager_client, embedded_settings, tmp_path, monkeypatch):
    """A worker's settings with an EMPTY data dir and the API as its thumbnail source (the
    in-process API, reached through the TestClient's transport); ``requests`` lists what it
    asked the API."""
    from pawdex.core.settings import Settings
    from pawdex.worker import thumbnails

    empty = tmp_path / "worker-host"
    empty.mkdir()
    requests: list[str] = []
    worker_key = make_key(embedded_settings, "viewer")
    real = thumbnails._client

    class Transport:  # the worker's requests, with its own key, to the in-process API
        def request(self, method: str, url: str, **kwargs):
            requests.append(f"{method} {url}")
            return eager_client.request(method, url, headers={"X-API-Key": worker_key}, **kwargs)

    def client(base_url: str, key: str):
        if base_url != "http://api.example:8000":
            return real(base_url, key)
        assert key == worker_key
        return Transport()

    monkeypatch.setattr(thumbnails, "_client", client)
    monkeypatch.setattr(thumbnails, "BACKOFF_S", (0.0,))
    settings = Settings(
        data_dir=empty,
        database_url=embedded_settings.resolved_database_url,
        thumbnail_source="api",
        api_url="http://api.example:8000",
        api_key=worker_key,
    )
    yield settings, requests
    assert list(empty.iterdir()) == []  # nothing was stored on the worker's host


def reindex_job(ids: list[int]) -> str:
    """A job that classifies these photos again (nothing queued: the test delivers it)."""
    from pawdex.core.db import session_scope
    from pawdex.core.model_versions import create_reindex_job

    with session_scope() as session:
        plan = create_reindex_job(session, everything=True, created_by="test")
        assert set(ids) <= set(plan.image_ids)
        return plan.job.id


def test_a_worker_without_the_storage_classifies_from_the_api(eager_client, remote_worker):
    """One request for the batch's thumbnails. A photo smaller than the model's input is
    its own thumbnail (no request for its original); only a panorama, whose thumbnail's
    longer side is capped, needs its original, fetched on its own (the rare case)."""
    from pawdex.worker.classify import classify_images

    settings, requests = remote_worker
    big = upload(eager_client, [(640, 480), (480, 640), (700, 500)], seed=320)
    small = upload(eager_client, [(200, 150)], seed=330)  # the whole photo is its thumbnail
    panorama = upload(eager_client, [(2400, 300)], seed=335)  # thumbnail 512 x 64
    job_id = reindex_job(big + small + panorama)
    requests.clear()
    classify_images(job_id, big + small + panorama, settings)
    job = eager_client.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["failed"], job["errors"]) == ("succeeded", 0, [])
    assert job["done"] >= 5
    assert requests == ["POST /v1/images/thumbnails", f"GET /v1/images/{panorama[0]}/file"]
    from pawdex.core.db import session_scope
    from pawdex.core.models import Prediction

    with session_scope() as session:  # written by this delivery, the reindex job's
        written = session.scalars(select(Prediction.image_id).where(Prediction.job_id == job_id))
        assert set(written) == set(big + small + panorama)


def test_a_photo_the_api_does_not_send_is_a_file_error(
    eager_client, embedded_settings, remote_worker
):
    """Its thumbnail lost from the API's storage: that photo fails, as an unreadable stored
    file does, and the rest of the batch is classified."""
    from pawdex.core.db import session_scope
    from pawdex.core.models import Image
    from pawdex.core.storage import open_storage
    from pawdex.worker.classify import classify_images

    settings, _ = remote_worker
    ids = upload(eager_client, [(640, 480), (600, 450)], seed=340)
    job_id = reindex_job(ids)
    with session_scope() as session:
        lost = session.get(Image, ids[0])
        open_storage(embedded_settings).delete(lost.thumbnail_path)
        name = lost.path
    classify_images(job_id, ids, settings)
    job = eager_client.get(f"/v1/jobs/{job_id}").json()
    (error,) = job["errors"]
    assert error["name"] == name and "cannot read the stored photo" in error["error"]
    assert (job["status"], job["failed"]) == ("partial", 1)


def test_an_api_that_is_down_retries_the_task_and_fails_no_photo(
    eager_client, remote_worker, monkeypatch
):
    """As in a database outage: the task raises a transient error (Celery retries it, the
    sweeper sends it again later), no photo becomes a file error, the attempt is given back."""
    from pawdex.core.db import session_scope
    from pawdex.core.models import JobImage
    from pawdex.worker import tasks, thumbnails
    from pawdex.worker.classify import classify_images

    settings, _ = remote_worker
    ids = upload(eager_client, [(640, 480), (640, 481)], seed=350)
    job_id = reindex_job(ids)
    # The real HTTP client, towards a port nobody listens on.
    down = settings.model_copy(update={"api_url": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(thumbnails.ApiUnavailable):
        classify_images(job_id, ids, down)
    assert thumbnails.ApiUnavailable in tasks.TRANSIENT
    monkeypatch.setattr("pawdex.worker.classify.get_settings", lambda: down)
    with pytest.raises(thumbnails.ApiUnavailable):
        tasks.classify(job_id, ids)  # re-raised for the retry, never give_up
    job = eager_client.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["failed"], job["errors"]) == ("running", 0, [])
    with session_scope() as session:
        attempts = session.scalars(select(JobImage.attempts).where(JobImage.job_id == job_id))
        assert set(attempts) == {0}


def test_api_source_needs_the_api_address_and_key():
    from pydantic import ValidationError

    from pawdex.core.settings import Settings

    with pytest.raises(ValidationError, match="PAWDEX_API_URL"):
        Settings(thumbnail_source="api", api_url=None, api_key="k")


# -- workers report their host; batches against the visibility timeout --------------------------


@pytest.fixture
def presence_state():
    from pawdex.worker import presence

    saved = presence._state
    presence._state = presence._State()
    yield presence
    presence._state = saved


def test_workers_report_their_host_and_address(
    eager_client, embedded_settings, presence_state, monkeypatch
):
    presence = presence_state
    for name, host in (("inference@a/1", "gpu-box-1"), ("inference@a/2", "gpu-box-1")):
        monkeypatch.setenv("PAWDEX_WORKER_HOST", host)
        settings = type(embedded_settings)()
        presence._state = presence._State()
        presence._state.hostname, presence._state.queues = name, ["inference"]
        presence._state.host = presence.host_name(settings)
        presence._state.address = presence.host_address(settings)
        presence.report(settings)
    monkeypatch.delenv("PAWDEX_WORKER_HOST")
    assert presence.host_name(type(embedded_settings)()) == __import__("socket").gethostname()
    workers = eager_client.get("/v1/admin/overview").json()["workers"]
    assert {(w["hostname"], w["host"]) for w in workers} == {
        ("inference@a/1", "gpu-box-1"), ("inference@a/2", "gpu-box-1"),
    }  # fmt: skip
    assert all(w["address"] for w in workers)


def test_the_address_is_the_one_that_reaches_the_broker(presence_state):
    from pawdex.core.settings import Settings

    settings = Settings(broker_url="redis://127.0.0.1:6379/0", database_url="sqlite://")
    assert presence_state.host_address(settings) == "127.0.0.1"


def test_a_batch_near_the_visibility_timeout_is_flagged_and_logged(
    eager_client, embedded_settings, presence_state, caplog
):
    from pawdex.api.schemas import OverviewOut
    from pawdex.core.db import session_scope
    from pawdex.core.monitoring import overview
    from pawdex.core.settings import Settings

    presence = presence_state
    redis_settings = Settings(broker_url="redis://127.0.0.1:1/0", broker_visibility_timeout=100)
    with caplog.at_level(logging.WARNING, logger="pawdex.presence"):
        presence.record_delivery(40.0, redis_settings)  # under half: quiet
        assert "batch_nears_visibility_timeout" not in caplog.text
        presence.record_delivery(20.0, redis_settings)  # not the longest
        presence.record_delivery(61.0, redis_settings)
    assert "event=batch_nears_visibility_timeout batch_s=61.0" in caplog.text
    presence._state.hostname, presence._state.queues = "inference@slow", ["inference"]
    presence.report(embedded_settings)
    with session_scope(embedded_settings) as session:
        seen = overview(session, embedded_settings)
    # The embedded broker has no visibility timeout: nothing to flag.
    (worker,) = OverviewOut.of(seen, None).workers
    assert worker.longest_batch_seconds == 61.0 and worker.near_visibility_timeout is False
    seen.visibility_timeout = 100
    assert OverviewOut.of(seen, None).workers[0].near_visibility_timeout is True
    seen.visibility_timeout = 3600
    assert OverviewOut.of(seen, None).workers[0].near_visibility_timeout is False
    api = eager_client.get("/v1/admin/overview").json()
    assert api["visibility_timeout"] is None
    assert api["workers"][0]["longest_batch_seconds"] == 61.0


def test_a_placement_left_at_its_single_host_default_is_named():
    """PostgreSQL with the filesystem broker (or Redis with SQLite) works on one machine only:
    the worker names what to set (start-up warning)."""
    from pawdex.core.settings import Settings

    pg = "postgresql+psycopg://pawdex@db.internal/pawdex"
    assert Settings(database_url=pg, broker_url=None).single_host_defaults == ["PAWDEX_BROKER_URL"]
    assert Settings(database_url=None, broker_url="redis://r:6379/0").single_host_defaults == [
        "PAWDEX_DATABASE_URL"
    ]
    assert Settings(database_url=None, broker_url=None).single_host_defaults == []  # embedded
    assert Settings(database_url=pg, broker_url="redis://r:6379/0").single_host_defaults == []


# -- a database host that never answers ------------------------------------------------------
def test_a_database_that_never_answers_fails_the_connection_instead_of_hanging(monkeypatch):
    """A listening socket that never speaks PostgreSQL (the handshake completes, then
    nothing, as with a stalled or half-dead host): libpq alone would wait forever, hanging
    a worker's presence report or a request; with the connect timeout it raises."""
    import socket
    import threading

    from sqlalchemy.exc import OperationalError

    from pawdex.core import db

    monkeypatch.setattr(db, "CONNECT_TIMEOUT", 2)  # psycopg's least
    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # never accepted, never answered
        port = silent.getsockname()[1]
        engine = db.make_engine(f"postgresql+psycopg://pawdex@127.0.0.1:{port}/pawdex")
        outcome: list[BaseException] = []

        def connect() -> None:
            try:
                engine.connect().close()
            except BaseException as exc:  # recorded for the assertion
                outcome.append(exc)

        attempt = threading.Thread(target=connect, daemon=True)
        attempt.start()
        attempt.join(60)  # a hang, not a slow answer: far above the timeout
        assert not attempt.is_alive(), "the connection attempt hung"
    assert len(outcome) == 1 and isinstance(outcome[0], OperationalError), outcome
    assert "timeout" in str(outcome[0]).lower()


def test_the_connect_timeout_yields_to_the_url_and_the_environment(monkeypatch):
    from pawdex.core.db import CONNECT_TIMEOUT, connect_args

    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    assert connect_args("postgresql+psycopg://h/db") == {"connect_timeout": CONNECT_TIMEOUT}
    assert connect_args("postgresql+psycopg://h/db?connect_timeout=30") == {}
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "30")
    assert connect_args("postgresql+psycopg://h/db") == {}


# -- a worker that cannot register its model -------------------------------------------------
def test_a_model_that_fails_to_preload_is_retried_then_ends_the_worker(monkeypatch, caplog):
    """Celery starts a worker whatever its ``worker_init`` receivers raise, and logs their
    errors before its logging is set up (nowhere): a failed preload used to leave a worker
    running unseen, with no presence and no sweeper. It is retried (a database still
    starting), then it ends the process with the reason."""
    from pawdex.worker import model_cache, startup

    waits: list[float] = []
    monkeypatch.setattr(startup.time, "sleep", waits.append)
    outcomes = [RuntimeError("database starting"), RuntimeError("database starting"), None]

    def flaky(settings):
        if (outcome := outcomes.pop(0)) is not None:
            raise outcome

    monkeypatch.setattr(model_cache, "preload", flaky)
    with caplog.at_level(logging.WARNING, logger="pawdex.worker"):
        startup._preload(settings=None)
    assert waits == list(startup.PRELOAD_RETRIES[:2]) and not outcomes
    assert caplog.text.count("event=preload_failed") == 2

    def broken(settings):
        raise RuntimeError("no such table: model_versions")

    monkeypatch.setattr(model_cache, "preload", broken)
    waits.clear()
    with pytest.raises(SystemExit, match="cannot load the model it serves: no such table"):
        startup._preload(settings=None)
    assert waits == list(startup.PRELOAD_RETRIES)
