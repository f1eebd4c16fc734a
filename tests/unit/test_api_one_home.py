"""Each domain word has one home on the API side: the key a request carries is read once,
the UI takes roles and statuses from the server, CSV is written once, 404 is said once."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.datastructures import Headers

from pawdex.api.deps import SESSION_COOKIE, PresentedKey, presented_key
from pawdex.core.labels import csv_chunks
from pawdex.core.models import FINISHED_STATUSES, JobStatus, Role
from tests.conftest import make_key

API = Path(__file__).resolve().parents[2] / "src" / "pawdex" / "api"


@pytest.fixture
def client(embedded_settings) -> Iterator[TestClient]:
    """The API as an admin sees it; nothing here needs a model or a worker."""
    from pawdex.api.main import create_app

    with TestClient(create_app(embedded_settings)) as client:
        client.headers["X-API-Key"] = make_key(embedded_settings, "admin")
        yield client


def test_the_key_is_the_header_else_the_bearer_token_else_the_session_cookie():
    def read(**headers: str) -> PresentedKey | None:
        return presented_key(Headers(headers))

    cookie = f"other=1; {SESSION_COOKIE}=pdx_c"
    assert read(**{"x-api-key": "pdx_h", "authorization": "Bearer pdx_b", "cookie": cookie}) == (
        PresentedKey("pdx_h", by_cookie=False)
    )
    assert read(**{"x-api-key": "", "authorization": "bearer  pdx_b ", "cookie": cookie}) == (
        PresentedKey("pdx_b", by_cookie=False)
    )
    assert read(authorization="Basic pdx_b", cookie=cookie) == PresentedKey("pdx_c", True)
    assert read(authorization="Bearer ", cookie="broken; =;;") is None
    assert read() is None


def test_the_rate_limit_counts_a_cookie_as_its_key(client, embedded_settings):
    client.app.state.settings = embedded_settings.model_copy(
        update={"rate_limit_per_minute": 6, "rate_limit_burst": 2}
    )
    key = client.headers.pop("X-API-Key")
    client.cookies.set(SESSION_COOKIE, key)
    assert [client.get("/v1/me").status_code for _ in range(2)] == [200, 200]
    assert client.get("/v1/me", headers={"X-API-Key": key}).status_code == 429  # same bucket


def test_the_pages_take_roles_and_job_statuses_from_the_server(client):
    html = client.get("/ui/jobs").text
    block = re.search(r'<script type="application/json" id="vocabulary">(.*?)</script>', html)
    assert block is not None
    vocabulary = json.loads(block.group(1))
    assert vocabulary["roles"] == [r.value for r in Role]
    assert set(vocabulary["finished_statuses"]) == {s.value for s in FINISHED_STATUSES}
    options = re.findall(r'<option value="(\w+)">', html)
    assert options == [s.value for s in JobStatus]


def test_no_role_or_list_of_statuses_is_spelled_out_in_the_ui():
    roles, statuses = "|".join(Role), "|".join(JobStatus)
    status_list = re.compile(rf"""\[\s*["']({statuses})["']""")  # a list or Set literal
    script = (API / "static" / "app.js").read_text()
    assert not re.findall(rf"""["']({roles})["']""", script)
    assert not status_list.findall(script)
    for path in (API / "templates").glob("*.html"):
        text = path.read_text()
        assert not re.findall(rf"""data-min-role=["']({roles})""", text), path.name
        assert not status_list.findall(text), path.name


def test_csv_streams_the_header_first_even_without_rows():
    assert "".join(csv_chunks(["a", "b"], [])) == "a,b\r\n"
    chunks = list(csv_chunks(["a", "b"], [[1, "x,y"], [2, ""]]))
    assert chunks == ["a,b\r\n", '1,"x,y"\r\n', "2,\r\n"]


def test_an_empty_labels_export_still_has_its_header(client):
    response = client.get("/v1/labels")
    assert response.headers["content-type"].startswith("text/csv")
    assert next(csv.reader(io.StringIO(response.text)))[0] == "image_id"


def test_a_missing_job_is_404_for_an_admin_and_403_for_others(client, embedded_settings):
    viewer = {"X-API-Key": make_key(embedded_settings, "viewer")}
    for action in ("cancel", "retry"):
        missing = client.post(f"/v1/jobs/nope/{action}")
        assert missing.status_code == 404
        assert missing.json() == {"detail": "job nope not found"}
        assert client.post(f"/v1/jobs/nope/{action}", headers=viewer).status_code == 403
    assert client.get("/v1/images/2147483647/thumbnail").json() == {
        "detail": "image 2147483647 not found"
    }
