"""Shared storage on an S3-protocol server: pawdex (embedded, through its HTTP API) keeps its
stored originals and thumbnails as objects in a bucket, serves them from there, and purging a
deletion removes them; nothing is written to the data dir's storage folder.

The server is moto's (installed by ``make install``), a real HTTP server speaking S3 on
127.0.0.1, in a thread of this process."""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest
from typer.testing import CliRunner

from tests.conftest import _eager_client, embedded_settings_at, import_or_skip
from tests.factories import jpeg_bytes

pytestmark = pytest.mark.integration

BUCKET, PREFIX = "pawdex-shelter", "kennel"


@pytest.fixture
def s3_moto(s3_env):
    """moto's S3 server on a free port of 127.0.0.1 (the server: a test may stop it)."""
    server_module = import_or_skip("moto.server", "moto[server]")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_server(s3_moto) -> str:
    """moto's S3 server's address."""
    host, port = s3_moto.get_host_and_port()
    return f"http://{host}:{port}"


def _objects(client) -> set[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return {obj["Key"] for page in pages for obj in page.get("Contents", [])}


def test_originals_and_thumbnails_live_in_the_bucket_and_leave_with_a_purge(
    s3_server, monkeypatch, tmp_path, classifier
):
    import boto3

    from pawdex.cli import app
    from pawdex.core.storage import Storage
    from pawdex.worker.model_cache import preload

    data_dir = tmp_path / "var"
    env = {
        "PAWDEX_BATCH_SIZE": "4",
        "PAWDEX_STORAGE_URL": f"s3://{BUCKET}/{PREFIX}",
        "PAWDEX_S3_ENDPOINT_URL": s3_server,
        "PAWDEX_S3_REGION": "us-east-1",
    }
    # One larger photo: its original is streamed in several chunks.
    photos = {f"run/{i}.jpg": jpeg_bytes(seed=4200 + i) for i in range(3)}
    photos["run/big.jpg"] = jpeg_bytes(width=1600, height=1200, seed=4299, quality=95)
    assert len(photos["run/big.jpg"]) > 512 * 1024
    bucket = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")

    with embedded_settings_at(monkeypatch, data_dir, **env) as settings:
        migrated = CliRunner().invoke(app, ["migrate"])  # the operator's step: the bucket
        assert migrated.exit_code == 0, migrated.output
        assert f"bucket {BUCKET} created" in migrated.output
        preload(settings)
        with _eager_client(settings) as client:
            archive = io.BytesIO()
            with zipfile.ZipFile(archive, "w") as zf:
                for path, data in photos.items():
                    zf.writestr(path, data)
            accepted = client.post(
                "/v1/archives", files={"file": ("run.zip", archive.getvalue(), "application/zip")}
            )
            assert accepted.status_code == 202, accepted.text
            job = client.get(f"/v1/jobs/{accepted.json()['job_id']}").json()
            assert (job["status"], job["done"], job["failed"]) == ("succeeded", 4, 0), job

            items = client.get("/v1/photos", params={"limit": 50}).json()["items"]
            ids = {item["path"]: item["id"] for item in items}
            assert set(ids) == set(photos)
            keys = {}
            for path, data in photos.items():
                sha = hashlib.sha256(data).hexdigest()
                keys[path] = (Storage.image_key(sha, "JPEG"), Storage.thumbnail_key(sha))
            stored = {f"{PREFIX}/{key}" for pair in keys.values() for key in pair}
            assert _objects(bucket) == stored  # every original and thumbnail, nothing else

            for path, data in photos.items():
                image_id = ids[path]
                original = client.get(f"/v1/images/{image_id}/file")
                assert original.status_code == 200, original.text
                assert original.content == data
                assert original.headers["content-type"] == "image/jpeg"
                assert original.headers["content-length"] == str(len(data))
                assert "immutable" in original.headers["cache-control"]
                assert original.headers["x-content-type-options"] == "nosniff"
                thumbnail = client.get(f"/v1/images/{image_id}/thumbnail")
                assert thumbnail.status_code == 200, thumbnail.text
                thumb_key = f"{PREFIX}/{keys[path][1]}"
                in_bucket = bucket.get_object(Bucket=BUCKET, Key=thumb_key)["Body"].read()
                assert thumbnail.content == in_bucket
                assert thumbnail.headers["content-type"] == "image/jpeg"
                assert thumbnail.headers["content-length"] == str(len(in_bucket))
                assert "immutable" in thumbnail.headers["cache-control"]

            victim = "run/big.jpg"
            deleted = client.delete(f"/v1/photos/{ids[victim]}")
            assert deleted.status_code == 200, deleted.text
            assert {f"{PREFIX}/{key}" for key in keys[victim]} <= _objects(bucket)  # undoable
            purged = client.delete(f"/v1/trash/{deleted.json()['id']}")
            assert purged.status_code == 200, purged.text
            assert purged.json()["state"] == "purged"
            remaining = stored - {f"{PREFIX}/{key}" for key in keys[victim]}
            assert _objects(bucket) == remaining
            assert client.get(f"/v1/images/{ids['run/0.jpg']}/file").content == photos["run/0.jpg"]

    written = [p for p in (data_dir / "storage").rglob("*") if p.is_file()]
    assert written == [], "object storage wrote files to the data dir's storage folder"


def test_readiness_says_when_the_bucket_is_missing_or_the_server_is_down(
    s3_moto, s3_server, monkeypatch, tmp_path
):
    from pawdex.cli import app

    # A bucket of its own: moto's buckets outlive its server, within this process.
    env = {"PAWDEX_STORAGE_URL": "s3://pawdex-readiness", "PAWDEX_S3_ENDPOINT_URL": s3_server,
           "PAWDEX_S3_REGION": "us-east-1"}  # fmt: skip
    with (
        embedded_settings_at(monkeypatch, tmp_path / "var", **env) as settings,
        _eager_client(settings) as client,
    ):
        missing = client.get("/readyz")  # before `pawdex migrate` made the bucket
        assert missing.status_code == 503, missing.text
        assert missing.json() == {"status": "unavailable", "database": "ok", "broker": "ok",
                                  "storage": "error: ClientError"}  # fmt: skip

        assert CliRunner().invoke(app, ["migrate"]).exit_code == 0
        ready = client.get("/readyz")
        assert (ready.status_code, ready.json()["storage"]) == (200, "ok"), ready.text

        s3_moto.stop()  # the object store goes away: the API stops taking work
        down = client.get("/readyz")
        assert down.status_code == 503, down.text
        assert down.json()["storage"] == "error: EndpointConnectionError"
        assert down.json()["database"] == "ok"
