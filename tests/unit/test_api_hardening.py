"""The API's edges (issue 12, item 5): a database outage is a JSON 503, secrets stay out of the
access log, failed authentications are rate-limited per address, repeated single-valued
parameters are refused, upload fields are binary in the OpenAPI document (a generated client
sends files), and /docs works offline."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa_exc
from typer.testing import CliRunner

from pawdex.api import limits
from pawdex.api.accesslog import ACCESS_LOGGER, redact_query
from pawdex.api.deps import get_session
from pawdex.api.main import RETRY_AFTER_SECONDS, create_app, is_outage
from pawdex.core.settings import Settings
from tests.factories import jpeg_bytes
from tests.stack import free_port

# --- a database outage --------------------------------------------------------------------


@pytest.fixture
def no_database(tmp_path):
    """An app whose PostgreSQL is not there (a port nothing listens on)."""
    from pawdex.core.db import engine_for

    url = f"postgresql+psycopg://pawdex@127.0.0.1:{free_port()}/pawdex"
    settings = Settings(data_dir=tmp_path / "var", database_url=url, broker_url=None)
    with TestClient(create_app(settings)) as client:  # a 500 would raise here
        client.headers["X-API-Key"] = "pdx_" + "a" * 40
        yield client
    engine_for.cache_clear()


CATALOGUE = [
    ("GET", "/v1/photos"),
    ("GET", "/v1/photos?format=csv"),
    ("GET", "/v1/photos/1"),
    ("GET", "/v1/breeds"),
    ("GET", "/v1/review"),
    ("GET", "/v1/jobs/abc"),
    ("GET", "/v1/me"),
    ("GET", "/v1/images/1/thumbnail"),
]


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert "database" in response.json()["detail"]


@pytest.mark.parametrize(("method", "url"), CATALOGUE)
def test_a_database_outage_is_a_json_503_with_retry_after(no_database, method, url):
    _assert_unavailable(no_database.request(method, url))


def test_an_upload_during_a_database_outage_is_a_503_and_leaves_no_spool(no_database, tmp_path):
    response = no_database.post("/v1/images", files={"file": ("a.jpg", jpeg_bytes(seed=3))})
    _assert_unavailable(response)
    spooled = [p for p in (tmp_path / "var").rglob("*") if p.is_file() and "spool" in p.parts]
    assert spooled == []


def test_health_says_alive_and_not_ready_during_an_outage(no_database):
    assert no_database.get("/healthz").status_code == 200
    ready = no_database.get("/readyz")
    assert ready.status_code == 503 and ready.json()["database"].startswith("error")


def test_an_exhausted_connection_pool_is_a_503(eager_client):
    def exhausted():
        raise sa_exc.TimeoutError("QueuePool limit of size 10 overflow 20 reached")

    eager_client.app.dependency_overrides[get_session] = exhausted
    response = eager_client.get("/v1/breeds")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert "busy" in response.json()["detail"]


def test_a_broker_outage_outside_an_upload_is_a_503(eager_client, monkeypatch):
    from kombu.exceptions import OperationalError

    def refused(*_args, **_kwargs):
        raise OperationalError("[Errno 111] Connection refused")

    monkeypatch.setattr("pawdex.api.routers.admin.enqueue_classify_batches", refused)
    response = eager_client.post("/v1/admin/reindex", json={"all": True})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert "queue" in response.json()["detail"]


def test_only_an_unreachable_database_counts_as_an_outage():
    cause = Exception("boom")
    assert is_outage(sa_exc.OperationalError("SELECT 1", {}, cause))
    assert is_outage(sa_exc.InterfaceError("SELECT 1", {}, cause))
    assert is_outage(sa_exc.DBAPIError("SELECT 1", {}, cause, connection_invalidated=True))
    # A statement the database refused is a bug: it stays a 500 (and a traceback in the log).
    assert not is_outage(sa_exc.IntegrityError("INSERT", {}, cause))
    assert not is_outage(sa_exc.ProgrammingError("SELEKT", {}, cause))


# --- the access log -----------------------------------------------------------------------


@contextmanager
def serving(app) -> Iterator[str]:
    """``app`` behind a real uvicorn server (its own logging configuration) in a thread."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_a_key_in_the_query_string_is_redacted_in_the_access_log(embedded_settings):
    records = _Records()
    with serving(create_app(embedded_settings)) as url:
        access = logging.getLogger(ACCESS_LOGGER)  # as uvicorn configured it
        access.addHandler(records)
        try:
            secret = "pdx_secret_value_0123456789"
            httpx.get(f"{url}/v1/breeds?api_key={secret}&limit=3")
            httpx.get(f"{url}/healthz?API-Key={secret}")
        finally:
            access.removeHandler(records)
    assert len(records.lines) == 2, records.lines
    assert not any(secret in line for line in records.lines), records.lines
    assert '"GET /v1/breeds?api_key=***&limit=3 HTTP/1.1" 401' in records.lines[0]
    assert "/healthz?API-Key=*** " in records.lines[1]


def test_redaction_keeps_everything_but_the_secret_values():
    assert redact_query("/v1/photos?breed=beagle") == "/v1/photos?breed=beagle"
    assert (
        redact_query("/x?a=1&token=t&api%5Fkey=k&key=&b") == "/x?a=1&token=***&api%5Fkey=***&key=&b"
    )
    assert redact_query("/x") == "/x"


# --- the bootstrap admin key --------------------------------------------------------------


def test_serve_says_where_the_first_admin_key_is_never_the_key(embedded_settings, monkeypatch):
    from pawdex.cli import app

    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)
    result = CliRunner().invoke(app, ["serve", "--no-embedded-worker", "--no-migrate"])
    assert result.exit_code == 0, result.output
    key = embedded_settings.admin_key_file.read_text().strip()
    assert key.startswith("pdx_") and key not in result.output
    lines = result.output.strip().splitlines()
    assert str(embedded_settings.admin_key_file) in lines[-1]  # the last word before uvicorn's
    assert "pawdex is running" in lines[-2]

    again = CliRunner().invoke(app, ["serve", "--no-embedded-worker", "--no-migrate"])
    assert "admin API key" not in again.output  # only when created


# --- failed authentications ---------------------------------------------------------------


def test_failed_authentications_are_rate_limited_per_address(eager_client, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("pawdex.api.ratelimit.time.monotonic", lambda: clock[0])
    admin = {"X-API-Key": eager_client.headers["X-API-Key"]}
    attacker = TestClient(eager_client.app, client=("203.0.113.9", 40000))
    neighbour = TestClient(eager_client.app, client=("198.51.100.4", 40000))

    guesses = [{"X-API-Key": f"pdx_guess{i}"} for i in range(limits.AUTH_FAILURE_BURST - 1)]
    statuses = [attacker.get("/v1/breeds", headers=h).status_code for h in guesses]
    assert statuses == [401] * len(guesses)
    assert attacker.get("/v1/breeds").status_code == 401  # no key at all counts too

    refused = attacker.get("/v1/breeds", headers={"X-API-Key": "pdx_guess_again"})
    assert refused.status_code == 429
    assert "failed authentications" in refused.json()["detail"]
    per_failure = 60 / limits.AUTH_FAILURES_PER_MINUTE
    assert 1 <= int(refused.headers["Retry-After"]) <= per_failure
    # While it lasts, the address learns nothing: a right key is refused the same way.
    assert attacker.get("/v1/breeds", headers=admin).status_code == 429
    assert attacker.get("/healthz").status_code == 200  # outside /v1/: never limited
    # Other addresses are not affected.
    assert neighbour.get("/v1/breeds", headers=admin).status_code == 200

    clock[0] += per_failure  # one failure's worth of time later
    assert attacker.get("/v1/breeds", headers=admin).status_code == 200
    assert attacker.get("/v1/breeds", headers={"X-API-Key": "pdx_x"}).status_code == 401
    assert attacker.get("/v1/breeds", headers=admin).status_code == 429


def test_a_zero_rate_turns_the_failure_limit_off_too(eager_client, embedded_settings):
    eager_client.app.state.settings = embedded_settings.model_copy(
        update={"rate_limit_per_minute": 0}
    )
    wrong = {"X-API-Key": "pdx_wrong"}
    statuses = {
        eager_client.get("/v1/breeds", headers=wrong).status_code
        for _ in range(limits.AUTH_FAILURE_BURST + 5)
    }
    assert statuses == {401}


# --- repeated parameters ------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    ["cursor=a&cursor=b", "cursor=&cursor=", "limit=1&limit=2", "threshold=0.5&threshold=0.7"],
)
def test_a_repeated_single_valued_parameter_is_a_422(eager_client, query):
    response = eager_client.get(f"/v1/review?{query}")
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", query.split("=")[0]]
    assert error["type"] == "repeated_parameter"


def test_repeated_parameters_are_refused_on_every_route(eager_client):
    for url in (
        "/v1/photos?breed=beagle&breed=pug",
        "/v1/photos/1?model_version=a&model_version=b",
        "/v1/breeds?model_version=&model_version=",
        "/v1/jobs?status=queued&status=failed",
    ):
        assert eager_client.get(url).status_code == 422, url
    # Parameters the operation does not declare are ignored, repeated or not.
    assert eager_client.get("/v1/review?utm=a&utm=b").status_code == 200
    assert eager_client.get("/v1/review?limit=5").status_code == 200


# --- the OpenAPI document -----------------------------------------------------------------


def test_upload_fields_are_binary_and_every_v1_route_declares_503(eager_client):
    document = eager_client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    for body in ("Body_upload_images_v1_images_post", "Body_upload_archive_v1_archives_post"):
        field = schemas[body]["properties"]["file"]
        assert field["type"] == "array"
        assert field["items"]["type"] == "string" and field["items"]["format"] == "binary"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "400" in responses, (method, path)  # a NUL byte in the URL
            if path.startswith("/v1/"):
                assert "503" in responses, (method, path)
                assert "Retry-After" in responses["503"]["headers"], (method, path)
    session = document["paths"]["/v1/session"]["post"]["responses"]
    assert "403" in session  # a cookie without the X-Requested-With header


def test_the_label_schema_declares_what_validation_accepts(eager_client):
    label = eager_client.get("/openapi.json").json()["components"]["schemas"]["LabelIn"]
    dog, other = label["oneOf"]
    assert dog["properties"]["species"] == {"const": "dog"}
    assert "beagle" in dog["properties"]["breed"]["enum"]
    assert len(dog["properties"]["breed"]["enum"]) == 121  # the 120, or none: "unknown"
    assert other["properties"]["breed"] == {"type": "null"}
    assert other["properties"]["breeds"] == {"maxItems": 0}
    assert label["properties"]["breeds"]["maxItems"] == 3


# --- offline /docs ------------------------------------------------------------------------


@pytest.mark.parametrize(("page", "assets"), [("/docs", 3), ("/redoc", 2)])
def test_the_docs_pages_load_only_local_assets(eager_client, page, assets):
    response = eager_client.get(page)
    assert response.status_code == 200
    html = response.text
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(urls) == assets, urls
    assert not re.search(r"https?://", html), re.findall(r"https?://[^\s\"']+", html)
    if page == "/docs":  # no badge fetched from validator.swagger.io either
        assert '"validatorUrl": null' in html
    for url in urls:
        asset = eager_client.get(url)
        assert asset.status_code == 200, url
        kind = asset.headers["content-type"]
        if url.endswith(".js"):
            assert "javascript" in kind and len(asset.content) > 100_000
        elif url.endswith(".css"):
            assert kind.startswith("text/css") and len(asset.content) > 10_000
        else:
            assert kind == "image/png"


# --- a generated client -------------------------------------------------------------------


def _generator() -> tuple[Path, Path] | None:
    """openapi-python-client on PATH, and the Python it runs on (the generated client needs
    httpx, attrs and python-dateutil there)."""
    exe = shutil.which("openapi-python-client")
    if exe is None:
        return None
    shebang = Path(exe).read_text(errors="replace").splitlines()[0]
    python = Path(shebang.removeprefix("#!").strip())
    probe = subprocess.run([python, "-c", "import httpx, attrs, dateutil"], capture_output=True)
    return (Path(exe), python) if probe.returncode == 0 else None


_CLIENT_SCRIPT = """
import sys
from pathlib import Path

from pawdex_client import AuthenticatedClient
from pawdex_client.api.jobs import get_job_v1_jobs_job_id_get as get_job
from pawdex_client.api.uploads import upload_images_v1_images_post as upload
from pawdex_client.models import BodyUploadImagesV1ImagesPost
from pawdex_client.types import File

url, key, photo = sys.argv[1:]
client = AuthenticatedClient(base_url=url, token=key, prefix="", auth_header_name="X-API-Key")
body = BodyUploadImagesV1ImagesPost(
    file=[File(payload=Path(photo).read_bytes(), file_name="rex.jpg", mime_type="image/jpeg")]
)
accepted = upload.sync_detailed(client=client, body=body)
assert accepted.status_code == 202, (accepted.status_code, accepted.content)
job = get_job.sync(accepted.parsed.job_id, client=client)
print(job.status.value, job.total, job.done, job.failed)
"""


@pytest.mark.slow
def test_a_generated_python_client_uploads_a_photo(eager_client, embedded_settings, tmp_path):
    found = _generator()
    if found is None:
        pytest.skip("openapi-python-client (with httpx, attrs, python-dateutil) is not on PATH")
    generator, python = found
    spec = tmp_path / "openapi.json"
    spec.write_text(eager_client.get("/openapi.json").text)
    generated = subprocess.run(
        [generator, "generate", "--path", str(spec), "--output-path", str(tmp_path / "pkg"),
         "--meta", "none"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert (tmp_path / "pkg" / "client.py").is_file(), generated.stdout + generated.stderr
    (tmp_path / "pkg").rename(tmp_path / "pawdex_client")
    photo = tmp_path / "rex.jpg"
    photo.write_bytes(jpeg_bytes(seed=901))

    key = eager_client.headers["X-API-Key"]
    with serving(eager_client.app) as url:  # Celery eager: indexed before the 202
        run = subprocess.run(
            [python, "-c", _CLIENT_SCRIPT, url, key, str(photo)],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.split() == ["succeeded", "1", "1", "0"]


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/v1/photos", {"params": {"indexed_before": "0.5"}}),
        ("GET", "/v1/animals", {"params": {"intake_before": "0"}}),
        ("POST", "/v1/animals", {"json": {"photo_ids": [1], "intake_date": 0}}),
    ],
)
def test_a_number_is_not_a_date(eager_client_before_any_worker, method, path, kwargs):
    """The document says ISO text; pydantic alone would read 0 as 1970-01-01."""
    answer = eager_client_before_any_worker.request(method, path, **kwargs)
    assert answer.status_code == 422, answer.text
    assert "ISO date" in answer.json()["detail"][0]["msg"]
