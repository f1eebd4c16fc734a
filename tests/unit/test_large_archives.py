"""An archive larger than PAWDEX_MAX_ARCHIVE_TOTAL_BYTES (a shelter's 300 GB of photos, here
scaled down) is read to its end; a bomb that expands far beyond its own size still stops."""

from __future__ import annotations

import io
import zipfile

import pytest

from tests.conftest import _eager_client, embedded_settings_at
from tests.factories import jpeg_bytes

CAP = 200_000  # bytes read from one archive, as the settings say


@pytest.fixture
def client(tmp_path, monkeypatch, classifier):
    from pawdex.worker.model_cache import preload

    env = {"PAWDEX_BATCH_SIZE": "4", "PAWDEX_MAX_ARCHIVE_TOTAL_BYTES": str(CAP)}
    with embedded_settings_at(monkeypatch, tmp_path / "var", **env) as settings:
        preload(settings)
        with _eager_client(settings) as client:
            yield client


def _zip(entries: dict[str, bytes], compression: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _upload(client, data: bytes) -> dict:
    accepted = client.post("/v1/archives", files={"file": ("a.zip", data, "application/zip")})
    assert accepted.status_code == 202, accepted.text
    return client.get(f"/v1/jobs/{accepted.json()['job_id']}").json()


def test_photos_beyond_the_total_cap_are_read_when_the_archive_is_that_large(client):
    photos = {f"2019/{i}.jpg": jpeg_bytes(640, 480, seed=i) for i in range(8)}
    archive = _zip(photos, zipfile.ZIP_STORED)
    assert sum(map(len, photos.values())) > CAP
    job = _upload(client, archive)
    assert (job["status"], job["done"], job["failed"]) == ("succeeded", 8, 0), job


def test_a_small_archive_that_expands_past_the_cap_still_stops(client):
    zeros = {f"z{i}.jpg": bytes(900_000) for i in range(4)}  # each under the ratio floor
    job = _upload(client, _zip({"first.jpg": jpeg_bytes(seed=99), **zeros}, zipfile.ZIP_DEFLATED))
    assert job["status"] == "partial"
    assert "of files in total; the rest was not read" in job["errors"][-1]["error"]
