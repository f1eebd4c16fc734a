"""Uploads are written once: the multipart body is parsed as it arrives and each file part
goes straight into its spool file (no Starlette temporary file, no second copy); a request
that creates no job (refused, malformed, dropped mid-upload) leaves nothing in the spool."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest
from sqlalchemy import func, select

from pawdex.core.db import session_scope
from pawdex.core.models import Job
from pawdex.core.uploads import MalformedUpload, MultipartSpool, SpoolBatch, UploadTooLarge
from tests.conftest import make_key

BOUNDARY = "pawdexboundary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def _part(name: str, data: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (
        f'; filename="{filename}"' if filename is not None else ""
    )
    return (
        (
            f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + b"\r\n"
    )


def _body(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


@pytest.fixture
def client(embedded_settings):
    """The API in-process; jobs are queued on the filesystem broker, never run."""
    from fastapi.testclient import TestClient

    from pawdex.api.main import create_app

    with TestClient(create_app(embedded_settings)) as client:
        client.headers["X-API-Key"] = make_key(embedded_settings, "archivist")
        yield client


def _spool_files(settings) -> list[Path]:
    """The spooled files (not the mark that says which process writes a batch)."""
    return sorted(
        p for p in settings.spool_dir.rglob("*") if p.is_file() and not p.name.startswith(".")
    )


def _jobs(settings) -> int:
    with session_scope(settings) as session:
        return session.scalar(select(func.count()).select_from(Job))


def _io() -> tuple[int, int]:
    """Bytes this process has passed to write() and read() so far (Linux)."""
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["wchar"]), int(fields["rchar"])


# ------------------------------------------------------------------------ the parser alone


def test_parts_fed_a_byte_at_a_time_land_whole_in_the_spool(embedded_settings):
    photo, archive = os.urandom(70_000), os.urandom(5_000)
    body = _body(
        _part("note", b"kennel 4"),
        _part("file", photo, "rex.jpg"),
        _part("other", b"ignored" * 100, "other.bin"),  # a file of another field: dropped
        _part("file", archive, "../../etc/passwd"),
    )
    batch = SpoolBatch(embedded_settings)
    parser = MultipartSpool(CONTENT_TYPE, batch)
    parser.feed(body[i : i + 1] for i in range(len(body)))
    fields = parser.close()

    assert [name for name, _ in fields] == ["note", "file", "file"]
    assert fields[0][1] == "kennel 4"
    spooled = [value for _, value in fields[1:]]
    assert [s.path.read_bytes() for s in spooled] == [photo, archive]
    assert [s.size for s in spooled] == [len(photo), len(archive)]
    assert [p.name for p in _spool_files(embedded_settings)] == ["000000", "000001"]  # `file`
    # The client's names are kept, sanitised, and never used as paths.
    assert [item["name"] for item in batch.source()] == ["rex.jpg", "etc/passwd"]
    assert all(item["spool"].startswith(f"{batch.dir.name}/") for item in batch.source())
    batch.discard()
    assert not batch.dir.exists()


def test_the_limit_counts_the_file_bytes_as_they_are_written(embedded_settings):
    settings = embedded_settings.model_copy(update={"max_upload_bytes": 1000})
    batch = SpoolBatch(settings)
    parser = MultipartSpool(CONTENT_TYPE, batch)
    with pytest.raises(UploadTooLarge, match="1000 bytes"):
        parser.feed([_part("file", b"a" * 600, "a.jpg"), _part("file", b"b" * 600, "b.jpg")])
    assert batch.received <= 1000 + 600
    batch.discard()
    assert not any(settings.spool_dir.iterdir())


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("multipart/form-data", b"", "Missing boundary"),
        (CONTENT_TYPE, b"not multipart at all", "Invalid multipart data"),
        (CONTENT_TYPE, _body(_part("file", b"x", "a.jpg"))[:-30], "ends inside a part"),
        (CONTENT_TYPE, _body(b'--pawdexboundary\r\nContent-Disposition: form-data\r\n\r\nx\r\n'),
         '"name" must be provided'),
    ],
)  # fmt: skip
def test_malformed_bodies_are_refused(embedded_settings, content_type, body, message):
    batch = SpoolBatch(embedded_settings)
    with pytest.raises(MalformedUpload, match=message):
        parser = MultipartSpool(content_type, batch)
        parser.feed([body])
        parser.close()
    batch.discard()
    assert not batch.dir.exists()


# ------------------------------------------------------------------------------ over HTTP


def test_an_upload_is_written_once_straight_from_the_request_body(
    client, embedded_settings, monkeypatch
):
    import starlette.formparsers

    def no_temporary_file(*args, **kwargs):
        raise AssertionError("the upload went through a Starlette temporary file")

    monkeypatch.setattr(starlette.formparsers, "SpooledTemporaryFile", no_temporary_file)
    payload = os.urandom(8 * 1024 * 1024)
    client.post("/v1/images", files={"file": ("warm-up.jpg", b"x")})  # imports, first job

    written, read = _io()
    response = client.post("/v1/images", files={"file": ("big.jpg", payload, "image/jpeg")})
    written, read = _io()[0] - written, _io()[1] - read
    assert response.status_code == 202, response.text

    with session_scope(embedded_settings) as session:
        source = session.get(Job, response.json()["job_id"]).source
    assert [item["name"] for item in source] == ["big.jpg"]
    assert (embedded_settings.spool_dir / source[0]["spool"]).read_bytes() == payload
    # Everything this process wrote for the request: the spool file once, plus a little
    # (database, queue message). Before, the body went to a temporary file, was read back
    # and written again: 2x written, 1x read.
    assert written < 1.1 * len(payload), written / len(payload)
    assert read < 0.1 * len(payload), read / len(payload)


def test_an_upload_dropped_midway_leaves_no_half_spool_and_no_job(embedded_settings):
    """The client goes away after 3 MiB of a longer body: the bytes already spooled (they
    are written as they arrive) are deleted, no job is recorded."""
    from pawdex.api.main import create_app

    app = create_app(embedded_settings)
    key = make_key(embedded_settings, "archivist")
    head = _part("file", b"", "big.jpg")[: -len(b"\r\n")]
    chunks = [head] + [os.urandom(64 * 1024) for _ in range(48)]
    spooled_before_drop: list[int] = []
    sent: list[dict] = []

    async def receive() -> dict:
        if chunks:
            return {"type": "http.request", "body": chunks.pop(0), "more_body": True}
        spooled_before_drop.extend(p.stat().st_size for p in _spool_files(embedded_settings))
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/images", "raw_path": b"/v1/images", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
        "headers": [(b"host", b"testserver"), (b"x-api-key", key.encode()),
                    (b"content-type", CONTENT_TYPE.encode())],
    }  # fmt: skip
    anyio.run(app, scope, receive, send)

    assert spooled_before_drop and spooled_before_drop[0] >= 2 * 1024 * 1024  # streamed
    assert _spool_files(embedded_settings) == []
    assert not any(embedded_settings.spool_dir.iterdir())
    assert _jobs(embedded_settings) == 0


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"X-API-Key": "pdx_not_a_key"}, _body(_part("file", b"x" * 5000, "a.jpg")), 401),
        ({}, _body(_part("file", b"x" * 5000, "a.jpg"))[:-40], 400),
        ({}, _body(_part("file", b"x" * 5000)), 422),  # a text field is no file
    ],
)
def test_a_refused_upload_leaves_nothing_in_the_spool(
    client, embedded_settings, headers, body, status
):
    response = client.post(
        "/v1/images", content=body, headers={"Content-Type": CONTENT_TYPE, **headers}
    )
    assert response.status_code == status, response.text
    assert _spool_files(embedded_settings) == []
    assert _jobs(embedded_settings) == 0


def test_an_archive_that_is_no_archive_leaves_nothing_in_the_spool(client, embedded_settings):
    response = client.post("/v1/archives", files={"file": ("photos.zip", b"PK? no")})
    assert response.status_code == 415
    assert _spool_files(embedded_settings) == []
