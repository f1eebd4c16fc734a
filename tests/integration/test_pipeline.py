"""Production mode end to end: uvicorn API + a separate Celery worker process, PostgreSQL,
Redis; a real archive uploaded over HTTP; predictions checked against the true breeds."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from pawdex.core.models import Image, JobImage, Prediction
from tests.photo_archives import pick, shelter_zip
from tests.stack import admin_headers, migrated_production_env, running_server, wait_job

pytestmark = [pytest.mark.integration, pytest.mark.realphotos]


def test_archive_upload_through_postgres_redis_and_a_worker(
    pg_url, redis_url, labelled_photos, tmp_path
):
    photos = pick(labelled_photos, dogs=36, others=4)
    archive, expected = shelter_zip(tmp_path / "shelter.zip", photos)
    env = migrated_production_env(tmp_path / "data", pg_url, redis_url, PAWDEX_BATCH_SIZE="8")

    with (
        running_server(
            env, tmp_path / "logs", embedded=False, workers=[["--queues", "ingest,inference"]]
        ) as url,
        httpx.Client(base_url=url, timeout=60, headers=admin_headers(env)) as client,
    ):
        with archive.open("rb") as fh:
            accepted = client.post(
                "/v1/archives", files={"file": ("shelter.zip", fh, "application/zip")}
            )
        assert accepted.status_code == 202, accepted.text
        job = wait_job(client, accepted.json()["job_id"], timeout=600)

        assert job["status"] == "partial"
        assert job["total"] == len(photos) + 3
        assert (job["done"], job["duplicates"], job["failed"]) == (len(photos), 1, 2)
        assert {e["name"] for e in job["errors"]} == {
            "notes/not-a-photo.jpg",
            "2020/truncated.jpg",
        }

        items = client.get("/v1/photos", params={"job_id": job["id"], "limit": 500}).json()["items"]
        breeds = client.get("/v1/breeds").json()
        # What the database holds: one prediction per photo, none twice.
        for model in (Image, JobImage, Prediction):
            assert _count(pg_url, model) == len(photos)
        _delete_restore_and_purge(client, job, pg_url, env)

    by_path = {a["path"]: a for a in items}
    assert set(by_path) == set(expected)
    dogs = [p for p, label in expected.items() if label != "not_dog"]
    correct = sum(by_path[p]["breed"] == expected[p] for p in dogs)
    assert correct / len(dogs) >= 0.6, f"top-1 {correct}/{len(dogs)}"
    non_dogs = [p for p, label in expected.items() if label == "not_dog"]
    assert sum(by_path[p]["species"] != "dog" for p in non_dogs) >= len(non_dogs) - 1
    assert sum(b["count"] for b in breeds) == sum(a["breed"] is not None for a in items)


def _count(pg_url: str, model) -> int:
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(model))
    finally:
        engine.dispose()


def _delete_restore_and_purge(client: httpx.Client, job: dict, pg_url: str, env: dict) -> None:
    """The job to the trash and back, on PostgreSQL: predictions set aside and restored
    (the breed tallies' triggers follow), then purged with the files."""
    from pathlib import Path

    photos = client.get("/v1/photos", params={"limit": 500}).json()["items"]
    breeds = client.get("/v1/breeds").json()
    deletion = client.delete(f"/v1/jobs/{job['id']}").json()
    assert deletion["photos"] == len(photos)
    assert client.get("/v1/photos").json()["items"] == []
    assert client.get("/v1/breeds").json() == []
    assert _count(pg_url, Prediction) == 0
    assert client.post(f"/v1/trash/{deletion['id']}/restore").status_code == 200
    assert client.get("/v1/photos", params={"limit": 500}).json()["items"] == photos
    assert client.get("/v1/breeds").json() == breeds

    storage = Path(env["PAWDEX_DATA_DIR"]) / "storage"
    files = [p for p in storage.rglob("*") if p.is_file()]
    assert len(files) >= 2 * len(photos)  # an original and a thumbnail each
    deletion = client.delete(f"/v1/jobs/{job['id']}").json()
    assert client.delete(f"/v1/trash/{deletion['id']}").status_code == 200
    assert not any(p.exists() for p in files)
    assert (_count(pg_url, Image), _count(pg_url, Prediction)) == (0, 0)
