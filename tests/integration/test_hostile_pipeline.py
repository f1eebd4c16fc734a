"""The hostile input corpus through the production stack: uvicorn API + a separate Celery
worker process, PostgreSQL, Redis. PostgreSQL is stricter than SQLite (no NUL in text, strict
encodings, typed columns): every name and message the corpus provokes must go in as it is."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from pawdex.core.models import Image, JobError
from tests.hostile import check_job, limit_env, mixed_tar, mixed_zip, photo_samples
from tests.stack import admin_headers, migrated_production_env, running_server, wait_job

pytestmark = pytest.mark.integration


def test_hostile_corpus_through_postgres_redis_and_a_worker(pg_url, redis_url, tmp_path):
    env = migrated_production_env(
        tmp_path / "data", pg_url, redis_url, PAWDEX_BATCH_SIZE="8", **limit_env()
    )
    zip_data, zip_samples = mixed_zip(seed=21)
    tar_data, tar_samples = mixed_tar(seed=22)
    singles = photo_samples(seed=23)
    uploads = [
        ("/v1/archives", [("mixed.zip", zip_data)], zip_samples),
        ("/v1/archives", [("mixed.tar.gz", tar_data)], tar_samples),
        ("/v1/images", [(s.name, s.data) for s in singles], singles),
    ]

    with (
        running_server(
            env, tmp_path / "logs", embedded=False, workers=[["--queues", "ingest,inference"]]
        ) as url,
        httpx.Client(base_url=url, timeout=60, headers=admin_headers(env)) as client,
    ):
        accepted = []
        for route, files, samples in uploads:
            response = client.post(route, files=[("file", f) for f in files])
            assert response.status_code == 202, response.text
            accepted.append((response.json()["job_id"], samples))
        for job_id, samples in accepted:
            check_job(client, wait_job(client, job_id, timeout=300), samples)

    indexed = {s.sha256 for _, samples in accepted for s in samples if s.expect == "indexed"}
    refused = sum(s.expect == "refused" for _, samples in accepted for s in samples)
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Image)) == len(indexed)
            assert conn.scalar(select(func.count()).select_from(JobError)) == refused
    finally:
        engine.dispose()
