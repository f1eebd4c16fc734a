"""Request limits: per-key rate (429 with Retry-After) and upload size (413), as a client sees
them; and the token bucket itself."""

from __future__ import annotations

import asyncio
import io

import pytest

from pawdex.api.ratelimit import MemoryRateLimiter, RedisRateLimiter
from pawdex.core.models import Job, JobKind
from tests.conftest import make_key
from tests.factories import jpeg_bytes


def _limit(client, settings, **update):
    client.app.state.settings = settings.model_copy(update=update)


def _job_count(settings) -> int:
    from sqlalchemy import func, select

    from pawdex.core.db import session_scope

    with session_scope(settings) as session:
        return session.scalar(select(func.count()).select_from(Job))


def test_a_key_over_its_rate_gets_429_with_retry_after(eager_client, embedded_settings):
    _limit(eager_client, embedded_settings, rate_limit_per_minute=6, rate_limit_burst=3)
    assert [eager_client.get("/v1/breeds").status_code for _ in range(3)] == [200] * 3

    refused = eager_client.get("/v1/breeds")
    assert refused.status_code == 429
    assert "rate limit" in refused.json()["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 10  # one token every 10 s

    # An upload over the limit is refused before its body is read: no job is created.
    jobs_before = _job_count(embedded_settings)
    upload = eager_client.post("/v1/images", files={"file": ("a.jpg", jpeg_bytes(seed=40))})
    assert upload.status_code == 429 and "detail" in upload.json()
    assert _job_count(embedded_settings) == jobs_before

    # The bucket is per key: another key, even of the same role, still has its own.
    other = make_key(embedded_settings, "viewer")
    assert eager_client.get("/v1/breeds", headers={"X-API-Key": other}).status_code == 200
    # Health checks carry no key and are never limited.
    assert eager_client.get("/healthz").status_code == 200


def test_bearer_and_header_share_the_key_bucket(eager_client, embedded_settings):
    _limit(eager_client, embedded_settings, rate_limit_per_minute=6, rate_limit_burst=2)
    key = eager_client.headers["X-API-Key"]
    assert eager_client.get("/v1/breeds").status_code == 200
    bearer = {"X-API-Key": "", "Authorization": f"Bearer {key}"}
    assert eager_client.get("/v1/breeds", headers=bearer).status_code == 200
    assert eager_client.get("/v1/breeds", headers=bearer).status_code == 429


def test_exempt_keys_and_a_zero_rate_are_never_limited(eager_client, embedded_settings):
    key = eager_client.headers["X-API-Key"]
    _limit(
        eager_client,
        embedded_settings,
        rate_limit_per_minute=1,
        rate_limit_burst=1,
        rate_limit_exempt_keys=f"pdx_nothing, {key[:10]}",
    )
    assert {eager_client.get("/v1/breeds").status_code for _ in range(5)} == {200}

    _limit(eager_client, embedded_settings, rate_limit_per_minute=0, rate_limit_burst=1)
    assert {eager_client.get("/v1/breeds").status_code for _ in range(5)} == {200}


def test_token_bucket_refills_at_the_rate(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("pawdex.api.ratelimit.time.monotonic", lambda: clock[0])
    limiter = MemoryRateLimiter()

    def take() -> float:
        return asyncio.run(limiter.take("k", per_minute=60, burst=2))

    assert (take(), take()) == (0.0, 0.0)
    assert take() == pytest.approx(1.0)  # empty: one token a second
    clock[0] += 0.5
    assert take() == pytest.approx(0.5)
    clock[0] += 0.5
    assert take() == 0.0
    clock[0] += 3600  # refills up to the burst, never above
    assert (take(), take()) == (0.0, 0.0)
    assert take() > 0


def test_redis_limiter_fails_open_when_redis_is_down():
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0")
    assert asyncio.run(limiter.take("k", per_minute=1, burst=1)) == 0.0


def test_upload_announced_over_the_limit_is_413_before_reading(eager_client, embedded_settings):
    _limit(eager_client, embedded_settings, max_upload_bytes=1000)
    response = eager_client.post("/v1/images", files={"file": ("big.jpg", jpeg_bytes(seed=8))})
    assert response.status_code == 413
    assert "1000 bytes" in response.json()["detail"]


def _chunked_multipart(payload: bytes, chunk: int = 4096):
    """A multipart body sent chunked: no Content-Length, the server learns the size late."""
    boundary = "pawdexboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()

    def body():
        yield head
        for start in range(0, len(payload), chunk):
            yield payload[start : start + chunk]
        yield f"\r\n--{boundary}--\r\n".encode()

    return body(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_chunked_upload_over_the_limit_is_413(eager_client, embedded_settings):
    _limit(eager_client, embedded_settings, max_upload_bytes=50_000)
    jobs_before = _job_count(embedded_settings)
    body, headers = _chunked_multipart(jpeg_bytes(seed=9) + b"\0" * 100_000)
    response = eager_client.post("/v1/images", content=body, headers=headers)
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert response.status_code == 413
    assert "50000 bytes" in response.json()["detail"]
    assert _job_count(embedded_settings) == jobs_before
    assert not any(embedded_settings.spool_dir.iterdir())


def test_chunked_upload_under_the_limit_is_accepted(eager_client, embedded_settings):
    _limit(eager_client, embedded_settings, max_upload_bytes=200_000)
    body, headers = _chunked_multipart(jpeg_bytes(seed=10))
    response = eager_client.post("/v1/images", content=body, headers=headers)
    assert response.status_code == 202, response.text
    job = eager_client.get(f"/v1/jobs/{response.json()['job_id']}").json()
    assert (job["status"], job["done"]) == ("succeeded", 1)


def test_spooling_stops_at_the_limit_and_leaves_nothing(embedded_settings):
    """The upload's own streaming check (behind the middleware's), for callers in-process."""
    from pawdex.core.uploads import IncomingFile, UploadTooLarge, submit

    settings = embedded_settings.model_copy(update={"max_upload_bytes": 1000})
    files = [
        IncomingFile("a.jpg", io.BytesIO(b"x" * 600)),
        IncomingFile("b.jpg", io.BytesIO(b"y" * 600)),  # the two together pass the limit
    ]
    with pytest.raises(UploadTooLarge, match="1000 bytes"):
        submit(JobKind.images, files, settings, enqueue=False)
    assert not any(settings.spool_dir.iterdir())
    assert _job_count(settings) == 0


def test_pawdex_index_waits_out_a_429_and_resends(monkeypatch):
    import httpx

    from pawdex.cli import client as cli_client

    answers = iter([429, 429, 202])
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.read())
        status = next(answers)
        headers = {"Retry-After": "2"} if status == 429 else {}
        return httpx.Response(status, headers=headers, json={"job_id": "j1", "status": "queued"})

    waits: list[float] = []
    monkeypatch.setattr(cli_client.time, "sleep", waits.append)
    client = httpx.Client(transport=httpx.MockTransport(handler), base_url="http://pawdex")
    data = jpeg_bytes(seed=11)
    files = {"file": ("a.jpg", io.BytesIO(data))}
    response = cli_client.request(client, "POST", "/v1/images", files=files)
    assert response.status_code == 202
    assert waits == [2.0, 2.0]
    assert len(seen) == 3 and all(data in body for body in seen)  # the file whole each time
