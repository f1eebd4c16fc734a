"""The admin overview and Prometheus /metrics, on the embedded stack (eager Celery)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import make_key
from tests.factories import jpeg_bytes


@pytest.fixture
def indexed_job(eager_client):
    files = [("file", (f"m{i}.jpg", jpeg_bytes(seed=80 + i), "image/jpeg")) for i in range(4)]
    job_id = eager_client.post("/v1/images", files=files).json()["job_id"]
    return eager_client.get(f"/v1/jobs/{job_id}").json()


@pytest.fixture
def reporting_worker(embedded_settings):
    """This process reports itself as an inference worker that ran two batches."""
    from pawdex.worker import presence

    saved = presence._state
    presence._state = presence._State(hostname="inference@test", queues=["inference"])
    presence.describe_model("cpu", "onnx", "lite0-imagenet-dogs@57934424")
    presence.record_batch(32, 0.5)
    presence.record_batch(8, 0.25)
    presence._state.current_task = "pawdex.classify job=abc"
    presence.report(embedded_settings)
    yield presence._state
    presence._state = saved


def metrics(client) -> dict[str, list]:
    text = client.get("/metrics").text
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_overview_shows_queues_workers_throughput_failures_and_model(
    eager_client, embedded_settings, indexed_job, reporting_worker
):
    overview = eager_client.get("/v1/admin/overview")
    assert overview.status_code == 200, overview.text
    data = overview.json()
    assert {q["name"]: q["depth"] for q in data["queues"]} == {"ingest": 0, "inference": 0}
    (worker,) = data["workers"]
    assert worker["hostname"] == "inference@test" and worker["online"] is True
    assert (worker["device"], worker["runtime"], worker["batches"], worker["photos"]) == (
        "cpu", "onnx", 2, 40,
    )  # fmt: skip
    assert worker["current_task"] == "pawdex.classify job=abc"
    assert len(data["throughput"]) == 60 and data["photos_last_hour"] == 4
    assert data["throughput"][-1]["photos"] == 4  # this minute
    assert data["jobs_by_status"]["succeeded"] == 1 and data["failures_last_hour"] == 0
    assert data["active_model"]["name"] == "lite0-imagenet-dogs"
    assert sum(b["count"] for b in data["breeds"]) <= 4
    viewer = {"X-API-Key": make_key(embedded_settings, "viewer")}
    assert eager_client.get("/v1/admin/overview", headers=viewer).status_code == 403


def test_a_silent_worker_shows_offline(eager_client, embedded_settings, reporting_worker):
    from datetime import timedelta

    from pawdex.core.db import session_scope
    from pawdex.core.models import WorkerPresence, utcnow

    with session_scope(embedded_settings) as session:
        row = session.get(WorkerPresence, "inference@test")
        row.last_seen = utcnow() - timedelta(seconds=embedded_settings.presence_interval * 4)
    (worker,) = eager_client.get("/v1/admin/overview").json()["workers"]
    assert worker["online"] is False


def test_metrics_expose_latency_jobs_photos_queues_and_batch_times(
    eager_client, indexed_job, reporting_worker
):
    eager_client.get(f"/v1/jobs/{indexed_job['id']}")
    families = metrics(eager_client)
    latency = families["pawdex_http_request_duration_seconds"]
    routes = {s.labels.get("route") for s in latency}
    assert "/v1/jobs/{job_id}" in routes  # the route template, not the raw path
    assert not any(indexed_job["id"] in (r or "") for r in routes)
    jobs = {s.labels["status"]: s.value for s in families["pawdex_jobs"]}
    assert jobs["succeeded"] == 1
    assert families["pawdex_photos_indexed"][0].value == 4
    batches = {s.name: s.value for s in families["pawdex_inference_batch_seconds"]}
    assert batches["pawdex_inference_batch_seconds_total"] == pytest.approx(0.75)
    (up,) = families["pawdex_worker_up"]
    assert up.labels == {"worker": "inference@test", "device": "cpu", "runtime": "onnx"}
    assert up.value == 1
    depths = {s.labels["queue"]: s.value for s in families["pawdex_queue_depth"]}
    assert depths == {"ingest": 0, "inference": 0}
