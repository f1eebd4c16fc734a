"""Admins steer real work: cancel stops a running job's Celery tasks, retry queues the rest
again; workers show up on the dashboard and in /metrics. PostgreSQL + Redis + a separate
Celery worker process."""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import jpeg_bytes, make_zip
from tests.stack import admin_headers, migrated_production_env, running_server, wait_job

pytestmark = pytest.mark.integration

PHOTOS = 160


def test_cancel_stops_a_running_job_and_retry_finishes_it(pg_url, redis_url, tmp_path):
    archive = make_zip(
        tmp_path / "many.zip",
        {f"box/{i:03d}.jpg": jpeg_bytes(160, 120, seed=i) for i in range(PHOTOS)},
    )
    env = migrated_production_env(
        tmp_path / "data", pg_url, redis_url, PAWDEX_BATCH_SIZE="2", PAWDEX_PRESENCE_INTERVAL="1"
    )
    workers = [
        ["--queues", "ingest", "--name", "ingest@%h"],
        ["--queues", "inference", "--name", "inference@%h"],
    ]
    with (
        running_server(env, tmp_path / "logs", embedded=False, workers=workers) as url,
        httpx.Client(base_url=url, timeout=60, headers=admin_headers(env)) as client,
    ):
        with archive.open("rb") as fh:
            job_id = client.post("/v1/archives", files={"file": ("many.zip", fh)}).json()["job_id"]
        deadline = time.monotonic() + 300
        while (job := client.get(f"/v1/jobs/{job_id}").json())["done"] < 4:
            assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
            time.sleep(0.05)

        cancelled = client.post(f"/v1/jobs/{job_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        # The queued classify tasks are consumed without work: the queue drains while the
        # count of predictions stops (at most the batch in flight lands after the cancel).
        at_cancel = cancelled.json()["done"]
        deadline = time.monotonic() + 120
        while True:
            queues = {
                q["name"]: q["depth"] for q in client.get("/v1/admin/overview").json()["queues"]
            }
            if queues == {"ingest": 0, "inference": 0} or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert queues == {"ingest": 0, "inference": 0}
        time.sleep(1.5)
        stopped = client.get(f"/v1/jobs/{job_id}").json()
        assert stopped["status"] == "cancelled"
        assert stopped["done"] <= at_cancel + 2 < PHOTOS
        assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 409

        retried = client.post(f"/v1/jobs/{job_id}/retry")
        assert retried.status_code == 202, retried.text
        final = wait_job(client, job_id, timeout=600)
        assert (final["status"], final["done"], final["total"]) == ("succeeded", PHOTOS, PHOTOS)
        animals = client.get("/v1/photos", params={"job_id": job_id, "limit": 500}).json()
        assert len(animals["items"]) == PHOTOS

        # Workers report every second: wait for the report that follows the last batch.
        deadline = time.monotonic() + 30
        while True:
            overview = client.get("/v1/admin/overview").json()
            online = {w["hostname"].split("@")[0]: w for w in overview["workers"] if w["online"]}
            reported = online.get("inference", {}).get("photos", 0)
            if reported >= PHOTOS - stopped["done"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert set(online) == {"ingest", "inference"}
        assert online["inference"]["device"] == "cpu"
        assert online["inference"]["runtime"] in ("onnx", "torch")
        assert reported >= PHOTOS - stopped["done"]
        assert overview["photos_last_hour"] == PHOTOS
        text = client.get("/metrics").text
    families = {f.name: f.samples for f in text_string_to_metric_families(text)}
    batches = sum(s.value for s in families["pawdex_inference_batches"])
    assert batches >= PHOTOS // 2 - stopped["done"] // 2
