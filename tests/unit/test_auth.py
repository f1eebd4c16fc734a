"""Access control: every endpoint but health and docs needs a key; each role is refused
what it must not do."""

from __future__ import annotations

import os
import stat

import pytest
from typer.testing import CliRunner

from tests.conftest import make_key
from tests.factories import jpeg_bytes, make_zip

READ = [
    ("GET", "/v1/photos"), ("GET", "/v1/breeds"), ("GET", "/v1/photos/1"), ("GET", "/v1/jobs"),
]  # fmt: skip
UPLOAD = [("POST", "/v1/images"), ("POST", "/v1/archives")]
ADMIN = [("GET", "/v1/admin/overview")]
OPEN = ["/healthz", "/readyz", "/docs", "/openapi.json"]


def _call(client, method, url, key=None, **kwargs):
    headers = {"X-API-Key": key} if key is not None else {}
    if method == "POST":
        kwargs.setdefault("files", {"file": ("x.jpg", jpeg_bytes(seed=700), "image/jpeg")})
    return client.request(method, url, headers=headers, **kwargs)


@pytest.fixture
def anonymous(eager_client):
    eager_client.headers.pop("X-API-Key")
    return eager_client


@pytest.mark.parametrize(("method", "url"), READ + UPLOAD + ADMIN + [("GET", "/v1/jobs/x")])
def test_no_key_or_a_wrong_key_is_401(anonymous, method, url):
    for key in (None, "", "pdx_not-a-real-key"):
        response = _call(anonymous, method, url, key)
        assert response.status_code == 401, (key, response.text)
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("url", OPEN)
def test_health_and_docs_need_no_key(anonymous, url):
    assert anonymous.get(url).status_code == 200


def test_each_role_gets_exactly_its_rights(anonymous, embedded_settings):
    keys = {role: make_key(embedded_settings, role) for role in ("viewer", "archivist", "admin")}
    allowed = {
        "viewer": set(READ),
        "archivist": set(READ + UPLOAD),
        "admin": set(READ + UPLOAD + ADMIN),
    }
    for role, key in keys.items():
        for method, url in READ + UPLOAD + ADMIN:
            status = _call(anonymous, method, url, key).status_code
            if (method, url) in allowed[role]:
                assert status not in {401, 403}, (role, method, url, status)
            else:
                assert status == 403, (role, method, url, status)


def test_bearer_header_works_too(anonymous, embedded_settings):
    key = make_key(embedded_settings, "viewer")
    response = anonymous.get("/v1/photos", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200


def test_revoked_key_is_refused(anonymous, embedded_settings):
    from pawdex.core.db import session_scope
    from pawdex.core.keys import find_active_key, revoke_key

    key = make_key(embedded_settings, "admin")
    assert _call(anonymous, "GET", "/v1/jobs", key).status_code == 200
    with session_scope(embedded_settings) as session:
        assert revoke_key(session, find_active_key(session, key).id)
    assert _call(anonymous, "GET", "/v1/jobs", key).status_code == 401


def test_keys_are_stored_hashed(embedded_settings):
    from sqlalchemy import select

    from pawdex.core.db import session_scope
    from pawdex.core.models import ApiKey

    key = make_key(embedded_settings, "viewer")
    with session_scope(embedded_settings) as session:
        row = session.scalar(select(ApiKey))
        assert key not in (row.key_hash, row.prefix, row.name)
        assert len(row.key_hash) == 64


def test_first_admin_key_is_written_once_with_mode_0600(embedded_settings):
    from pawdex.core.db import session_scope
    from pawdex.core.keys import bootstrap_admin_key, find_active_key

    path = embedded_settings.admin_key_file
    with session_scope(embedded_settings) as session:
        plain = bootstrap_admin_key(session, path)
    assert plain and path.read_text().strip() == plain
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with session_scope(embedded_settings) as session:
        assert find_active_key(session, plain).role == "admin"
        assert bootstrap_admin_key(session, path) is None  # keys exist: nothing new


def test_keys_cli_create_list_revoke(embedded_settings):
    from pawdex.cli import app

    runner = CliRunner()
    created = runner.invoke(app, ["keys", "create", "--role", "archivist", "--name", "front desk"])
    assert created.exit_code == 0, created.output
    plain = created.output.strip().splitlines()[-1]
    assert plain.startswith("pdx_")
    listed = runner.invoke(app, ["keys", "list"])
    assert "archivist" in listed.output and "front desk" in listed.output
    assert plain not in listed.output
    assert runner.invoke(app, ["keys", "revoke", "1"]).exit_code == 0
    assert "revoked" in runner.invoke(app, ["keys", "list"]).output
    assert runner.invoke(app, ["keys", "revoke", "1"]).exit_code == 1
    assert runner.invoke(app, ["keys", "create", "--role", "root"]).exit_code != 0


def test_an_archivist_uploads_and_a_viewer_reads_the_result(anonymous, embedded_settings, tmp_path):
    archivist = make_key(embedded_settings, "archivist")
    viewer = make_key(embedded_settings, "viewer")
    archive = make_zip(tmp_path / "a.zip", {"rex.jpg": jpeg_bytes(seed=701)})
    with archive.open("rb") as fh:
        job = _call(anonymous, "POST", "/v1/archives", archivist, files={"file": ("a.zip", fh)})
    assert job.status_code == 202
    status = _call(anonymous, "GET", f"/v1/jobs/{job.json()['job_id']}", viewer).json()
    assert status["status"] == "succeeded"
    items = _call(anonymous, "GET", "/v1/photos", viewer).json()["items"]
    assert [a["filename"] for a in items] == ["rex.jpg"]
    thumb = _call(anonymous, "GET", items[0]["thumbnail_url"], viewer)
    assert thumb.status_code == 200
