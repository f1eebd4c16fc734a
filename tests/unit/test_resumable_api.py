"""Resumable uploads (tus 1.0 at /v1/uploads) in-process: who may upload, the limits, what
an upload must say about itself, the job a finished one becomes, the sweeping of abandoned
ones. (Interrupted uploads and ``pawdex index`` on real processes: tests/integration.)"""

from __future__ import annotations

import base64
import hashlib
import time

import pytest
from fastapi.testclient import TestClient

from tests.conftest import embedded_settings_at, make_key
from tests.factories import jpeg_bytes, make_zip

TUS = {"Tus-Resumable": "1.0.0"}
LIMIT = 100_000
PLAIN_LIMIT = 20_000


@pytest.fixture
def settings(tmp_path, monkeypatch):
    with embedded_settings_at(
        monkeypatch, tmp_path / "var",
        PAWDEX_MAX_RESUMABLE_BYTES=str(LIMIT), PAWDEX_MAX_UPLOAD_BYTES=str(PLAIN_LIMIT),
    ) as settings:  # fmt: skip
        yield settings


@pytest.fixture
def client(settings):
    from pawdex.api.main import create_app

    with TestClient(create_app(settings)) as client:
        client.headers["X-API-Key"] = make_key(settings, "archivist")
        yield client


def metadata(filename: str = "kennel.zip", filetype: str = "application/zip") -> str:
    encode = lambda text: base64.b64encode(text.encode()).decode()  # noqa: E731
    return f"filename {encode(filename)},filetype {encode(filetype)}"


def create(client: TestClient, length: int, **headers: str) -> str:
    answer = client.post(
        "/v1/uploads",
        headers={**TUS, "Upload-Length": str(length), "Upload-Metadata": metadata(), **headers},
    )
    assert answer.status_code == 201, answer.text
    return answer.headers["Location"]


def patch(client: TestClient, url: str, offset: int, body: bytes, **headers: str):
    return client.patch(url, content=body, headers={
        **TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream",
        **headers,
    })  # fmt: skip


def send(client: TestClient, data: bytes, chunk: int = 4096) -> str:
    """A whole upload, chunk by chunk; its id."""
    url = create(client, len(data))
    for offset in range(0, len(data), chunk):
        assert patch(client, url, offset, data[offset : offset + chunk]).status_code == 204
    return url.rsplit("/", 1)[-1]


def test_only_archivists_and_admins_may_upload(client, settings):
    url = create(client, 10)
    viewer = {"X-API-Key": make_key(settings, "viewer")}
    refused = client.post("/v1/uploads", headers={
        **TUS, **viewer, "Upload-Length": "10", "Upload-Metadata": metadata(),
    })  # fmt: skip
    assert refused.status_code == 403
    assert refused.json() == {"detail": "this needs the archivist role; the key is viewer"}
    assert patch(client, url, 0, b"0123456789", **viewer).status_code == 403
    assert client.head(url, headers={**TUS, **viewer}).status_code == 403
    upload_id = url.rsplit("/", 1)[-1]
    assert client.post(f"/v1/uploads/{upload_id}/job", headers=viewer).status_code == 403
    assert client.post("/v1/uploads", headers={**TUS, "X-API-Key": ""}).status_code == 401
    admin = {"X-API-Key": make_key(settings, "admin")}
    assert patch(client, url, 0, b"0123456789", **admin).status_code == 204


def test_an_upload_over_the_resumable_limit_is_refused_not_its_chunks_over_the_plain_one(
    client,
):
    over = client.post("/v1/uploads", headers={
        **TUS, "Upload-Length": str(LIMIT + 1), "Upload-Metadata": metadata(),
    })  # fmt: skip
    assert over.status_code == 413
    assert over.json() == {"detail": f"upload larger than the limit of {LIMIT} bytes"}
    assert client.options("/v1/uploads/").headers["Tus-Max-Size"] == str(LIMIT)

    # Of unknown length, it is refused as soon as its bytes pass the limit.
    deferred = client.post("/v1/uploads", headers={
        **TUS, "Upload-Defer-Length": "1", "Upload-Metadata": metadata(),
    })  # fmt: skip
    assert deferred.status_code == 201, deferred.text
    assert patch(client, deferred.headers["Location"], 0, b"x" * (LIMIT + 1)).status_code == 413

    # A chunk larger than the plain upload limit is fine: the upload's own limit holds.
    data = bytes(range(256)) * 200  # 51,200 bytes: over PAWDEX_MAX_UPLOAD_BYTES
    upload_id = send(client, data, chunk=len(data))
    assert client.post("/v1/archives", files={"file": ("a.zip", data)}).status_code == 413
    assert client.head(f"/v1/uploads/{upload_id}", headers=TUS).headers["Upload-Offset"] == str(
        len(data)
    )


def test_an_upload_tells_its_length_file_name_and_type(client):
    no_type = client.post("/v1/uploads", headers={
        **TUS, "Upload-Length": "10", "Upload-Metadata": metadata().split(",")[0],
    })  # fmt: skip
    assert no_type.status_code == 400
    assert "filename and filetype" in no_type.json()["detail"]
    no_length = client.post("/v1/uploads", headers={**TUS, "Upload-Metadata": metadata()})
    assert no_length.status_code == 400
    assert client.post("/v1/uploads", headers={"Upload-Length": "10"}).status_code == 412


def test_a_finished_upload_becomes_one_job_however_often_it_is_asked(client, settings, tmp_path):
    photos = {f"box/{i}.jpg": jpeg_bytes(96, 72, seed=i) for i in range(3)}
    archive = make_zip(tmp_path / "box.zip", photos).read_bytes()
    url = create(client, len(archive))
    upload_id = url.rsplit("/", 1)[-1]
    assert patch(client, url, 0, archive[:1000]).status_code == 204
    early = client.post(f"/v1/uploads/{upload_id}/job")
    assert early.status_code == 409
    assert early.json()["detail"] == (
        f"upload {upload_id} has received 1000 of {len(archive)} bytes: send the rest (PATCH), "
        "then ask for its job again"
    )
    assert patch(client, url, 1000, archive[1000:]).status_code == 204

    first = client.post(f"/v1/uploads/{upload_id}/job", json={"origin": "cli"})
    again = client.post(f"/v1/uploads/{upload_id}/job", json={"name": "another name"})
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert first.json()["name"] == "kennel.zip"  # the upload's file name
    job = client.get(f"/v1/jobs/{first.json()['job_id']}").json()
    assert (job["kind"], job["origin"], job["created_by"]) == ("archive", "cli", "test archivist")
    # The bytes are the job's now (its spool), not tus's.
    spooled = [p for p in settings.spool_dir.rglob("*") if p.is_file() and p.name[0] != "."]
    assert [hashlib.sha256(p.read_bytes()).digest() for p in spooled] == [
        hashlib.sha256(archive).digest()
    ]
    assert client.head(url, headers=TUS).status_code == 404
    missing = client.post(f"/v1/uploads/{'0' * 32}/job")
    assert missing.status_code == 404
    assert missing.json() == {"detail": f"upload {'0' * 32} not found"}
    assert client.post("/v1/uploads/not-an-id/job").status_code == 422


def test_a_photo_is_told_from_an_archive_by_its_bytes_not_its_name(client):
    upload_id = send(client, jpeg_bytes(seed=5))  # sent as "kennel.zip"
    accepted = client.post(f"/v1/uploads/{upload_id}/job")
    assert accepted.status_code == 202
    assert client.get(f"/v1/jobs/{accepted.json()['job_id']}").json()["kind"] == "images"


def test_bytes_past_the_recorded_offset_are_cut_off_not_resumed_after(client, settings):
    """A crash after bytes were written but before the offset was recorded: the next chunk
    goes at the recorded offset, over them."""
    data = bytes(range(256)) * 40
    url = create(client, len(data))
    upload_id = url.rsplit("/", 1)[-1]
    assert patch(client, url, 0, data[:4000]).status_code == 204
    with (settings.resumable_dir / upload_id).open("ab") as fh:
        fh.write(b"garbage that never made it into the sidecar")
    assert client.head(url, headers=TUS).headers["Upload-Offset"] == "4000"
    assert patch(client, url, 4000, data[4000:]).status_code == 204
    assert (settings.resumable_dir / upload_id).read_bytes() == data


def test_abandoned_uploads_and_old_job_markers_are_swept(client, settings):
    from pawdex.core.resumable import sweep_resumable

    unfinished = create(client, 1000).rsplit("/", 1)[-1]
    finished = send(client, jpeg_bytes(seed=9))
    assert client.post(f"/v1/uploads/{finished}/job").status_code == 202
    assert sweep_resumable(settings) == []
    later = time.time() + (settings.resumable_expiry_days + 1) * 86400
    assert sweep_resumable(settings, now=later) == sorted([unfinished, finished])
    assert not [p for p in settings.resumable_dir.iterdir() if p.name != ".locks"]
    assert client.head(f"/v1/uploads/{unfinished}", headers=TUS).status_code == 404
