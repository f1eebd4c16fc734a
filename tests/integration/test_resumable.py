"""Resumable uploads (tus 1.0 at /v1/uploads) on the real stack: PostgreSQL + Redis, the API
and a separate Celery worker. An upload cut off mid-chunk resumes from the offset the server
answers, assembles byte for byte, and becomes one job however often its job is asked for;
``pawdex index`` sends an archive over the plain upload limit in chunks, and a run killed
mid-upload is carried on by the next one."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.factories import jpeg_bytes, make_zip
from tests.stack import migrated_production_env, pawdex, running_stack, wait_job

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MiB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
WORKERS = [["--queues", "ingest,inference"]]


def _metadata(**fields: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in fields.items())


def _patch(client: httpx.Client, url: str, offset: int, body: bytes) -> httpx.Response:
    headers = {**TUS, "Upload-Offset": str(offset),
               "Content-Type": "application/offset+octet-stream"}  # fmt: skip
    return client.patch(url, headers=headers, content=body)


def _offset(client: httpx.Client, url: str) -> int:
    answer = client.head(url, headers=TUS)
    assert answer.status_code == 200, answer.status_code
    return int(answer.headers["Upload-Offset"])


def _cut_off(url: str, headers: dict[str, str], offset: int, body: bytes, sent: int) -> None:
    """A PATCH whose connection drops after ``sent`` of the body's bytes went out."""

    def stream() -> Iterator[bytes]:
        yield body[:sent]
        time.sleep(0.5)  # the server reads what came, then the connection drops
        raise ConnectionResetError("the network went away")

    request_headers = {**headers, **TUS, "Upload-Offset": str(offset),
                       "Content-Type": "application/offset+octet-stream",
                       "Content-Length": str(len(body))}  # fmt: skip
    with pytest.raises((ConnectionResetError, httpx.TransportError)):
        httpx.patch(url, headers=request_headers, content=stream(), timeout=30)


def test_an_upload_cut_off_mid_chunk_resumes_and_becomes_one_job(pg_url, redis_url, tmp_path):
    photos = {f"intake/{i:02d}.jpg": jpeg_bytes(400, 300, seed=700 + i) for i in range(6)}
    source = make_zip(tmp_path / "intake.zip", photos).read_bytes()
    chunk = len(source) // 5 + 1
    env = migrated_production_env(tmp_path / "data", pg_url, redis_url)
    with (
        running_stack(env, tmp_path / "logs", embedded=False, workers=WORKERS) as stack,
        httpx.Client(base_url=stack.url, headers=stack.headers, timeout=60) as client,
    ):
        created = client.post("/v1/uploads", headers={
            **TUS, "Upload-Length": str(len(source)),
            "Upload-Metadata": _metadata(filename="intake.zip", filetype="application/zip"),
        })  # fmt: skip
        assert created.status_code == 201, created.text
        url = created.headers["Location"]
        upload_id = url.rsplit("/", 1)[-1]
        for start in range(0, 2 * chunk, chunk):
            sent = _patch(client, url, start, source[start : start + chunk])
            assert sent.status_code == 204, sent.text
            assert int(sent.headers["Upload-Offset"]) == start + chunk

        _cut_off(url, stack.headers, 2 * chunk, source[2 * chunk : 3 * chunk], sent=chunk // 2)
        offset = _offset(client, url)
        assert 2 * chunk <= offset <= 2 * chunk + chunk // 2  # what arrived is kept
        early = client.post(f"/v1/uploads/{upload_id}/job")
        assert early.status_code == 409 and "send the rest" in early.json()["detail"]

        while offset < len(source):  # resumed where the server says it stopped
            sent = _patch(client, url, offset, source[offset : offset + chunk])
            if sent.status_code == 409:  # it was still recording the cut-off request's bytes
                offset = _offset(client, url)
                continue
            assert sent.status_code == 204, sent.text
            offset = int(sent.headers["Upload-Offset"])
        assembled = Path(env["PAWDEX_DATA_DIR"]) / "resumable" / upload_id
        assert hashlib.sha256(assembled.read_bytes()).digest() == hashlib.sha256(source).digest()

        first = client.post(f"/v1/uploads/{upload_id}/job", json={"name": "Intake week 12"})
        again = client.post(f"/v1/uploads/{upload_id}/job")  # its answer was lost, say
        assert first.status_code == again.status_code == 202, first.text
        assert again.json()["job_id"] == first.json()["job_id"]
        job = wait_job(client, first.json()["job_id"], timeout=300)
        animals = client.get("/v1/photos", params={"job_id": job["id"], "limit": 100}).json()
        jobs = client.get("/v1/jobs").json()["items"]
        assert client.head(url, headers=TUS).status_code == 404  # now the job's, not tus's
    assert job["status"] == "succeeded" and job["kind"] == "archive", job
    assert (job["name"], job["origin"], job["total"], job["done"]) == (
        "Intake week 12", "upload", 6, 6,
    )  # fmt: skip
    assert sorted(a["path"] for a in animals["items"]) == sorted(photos)
    assert [j["id"] for j in jobs] == [job["id"]]  # one job, however often it was asked for


class Relay:
    """A TCP relay in front of the API: it counts the bytes clients send through it and,
    once ``hold_after`` of them have gone through, holds the rest back (the connection
    stalls, as when the network goes away) until :meth:`cut` drops every connection."""

    def __init__(self, port: int) -> None:
        self.upstream = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.sent = 0
        self.hold_after: int | None = None
        self.holding = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, to: socket.socket, counted: bool) -> None:
        try:
            while data := source.recv(64 * 1024):
                held = False
                if counted:
                    with self._lock:
                        if self.hold_after is not None and self.sent + len(data) > self.hold_after:
                            data, held = data[: self.hold_after - self.sent], True
                        self.sent += len(data)
                to.sendall(data)
                if held:
                    self.holding.set()
                    return  # nothing more goes through: cut() closes the connection
        except OSError:
            return

    def cut(self) -> None:
        """Drop every connection (the server sees its clients gone); new ones go through."""
        with self._lock:
            self.hold_after = None
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()
        self.cut()


def test_pawdex_index_sends_an_archive_over_the_upload_limit_in_chunks_and_a_killed_run_resumes(
    pg_url, redis_url, tmp_path
):
    photos = {
        f"2019/{i:02d}.jpg": jpeg_bytes(2000, 1500, seed=800 + i, quality=95) for i in range(12)
    }
    archive = make_zip(tmp_path / "shelter-2019.zip", photos)
    size = archive.stat().st_size
    assert size > 3 * 8 * MiB  # more than three of the CLI's chunks
    env = migrated_production_env(
        tmp_path / "data", pg_url, redis_url, PAWDEX_MAX_UPLOAD_BYTES=str(MiB)
    )
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # where the CLI keeps its upload URLs
    with (
        running_stack(env, tmp_path / "logs", embedded=False, workers=WORKERS) as stack,
        httpx.Client(base_url=stack.url, headers=stack.headers, timeout=60) as client,
    ):
        with archive.open("rb") as fh:
            plain = client.post("/v1/archives", files={"file": (archive.name, fh)})
        assert plain.status_code == 413  # over the plain upload limit

        relay = Relay(int(stack.url.rsplit(":", 1)[1]))
        try:
            relay.hold_after = 10 * MiB  # the connection stalls in the CLI's second chunk
            first = subprocess.Popen(
                [sys.executable, "-m", "pawdex", "index", str(archive), "--server", relay.url],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                assert relay.holding.wait(timeout=120), "the CLI never sent 10 MiB"
            finally:
                first.kill()
                first.wait()
            relay.cut()
            sent_by_the_killed_run = relay.sent
            rerun = pawdex("index", str(archive), "--server", relay.url, env=env, timeout=600)
            sent_in_all = relay.sent
        finally:
            relay.close()
        jobs = client.get("/v1/jobs").json()["items"]
        animals = client.get("/v1/photos", params={"limit": 100}).json()["items"]
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "Traceback" not in rerun.stderr
    assert sent_in_all - sent_by_the_killed_run < size  # the rerun carried on
    assert sent_in_all < 2 * size
    assert [(j["name"], j["origin"], j["status"], j["done"]) for j in jobs] == [
        ("shelter-2019.zip", "cli", "succeeded", 12)
    ]
    assert sorted(a["path"] for a in animals) == sorted(photos)
