"""Which model is served: activation switches the workers, reindex fills the new model's
predictions as an ordinary job, old predictions stay."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from pawdex.cli import app
from pawdex.core.db import session_scope
from pawdex.core.models import Prediction
from tests.factories import jpeg_bytes

pytestmark = pytest.mark.slow  # loads a second model (Lite1)


def test_activate_then_reindex_then_reindex_everything(eager_client, embedded_settings):
    files = [("file", (f"a{i}.jpg", jpeg_bytes(seed=90 + i), "image/jpeg")) for i in range(3)]
    first = eager_client.post("/v1/images", files=files).json()["job_id"]
    before = eager_client.get("/v1/photos").json()["items"]
    assert len(before) == 3 and before[0]["model_version"].startswith("lite0-imagenet-dogs@")

    runner = CliRunner()
    activated = runner.invoke(app, ["models", "activate", "lite1-imagenet-dogs"])
    assert activated.exit_code == 0, activated.output
    version = activated.output.split("active: ")[1].strip()
    listed = runner.invoke(app, ["models", "list"]).output
    assert "* lite1-imagenet-dogs" in listed and version in listed
    assert eager_client.get("/v1/photos").json()["items"] == []  # nothing from Lite1 yet

    job = eager_client.post("/v1/admin/reindex", json={}).json()
    assert (job["kind"], job["total"]) == ("reindex", 3)
    job = eager_client.get(f"/v1/jobs/{job['id']}").json()  # eager: already run
    assert (job["status"], job["done"]) == ("succeeded", 3)
    after = eager_client.get("/v1/photos").json()["items"]
    assert {a["model_version"] for a in after} == {version}
    old = eager_client.get("/v1/photos", params={"model_version": before[0]["model_version"]})
    assert len(old.json()["items"]) == 3  # the earlier model's predictions stay

    nothing = eager_client.post("/v1/admin/reindex", json={}).json()
    assert (nothing["status"], nothing["total"]) == ("succeeded", 0)
    again = eager_client.post("/v1/admin/reindex", json={"all": True}).json()
    again = eager_client.get(f"/v1/jobs/{again['id']}").json()
    assert (again["status"], again["done"], again["total"]) == ("succeeded", 3, 3)
    with session_scope(embedded_settings) as session:
        rows = session.execute(
            select(Prediction.job_id, func.count()).group_by(Prediction.job_id)
        ).all()
    assert dict(rows) == {first: 3, again["id"]: 3}  # replaced, not added

    viewer_key = {"X-API-Key": _viewer(embedded_settings)}
    assert eager_client.post("/v1/admin/reindex", json={}, headers=viewer_key).status_code == 403


def _viewer(settings) -> str:
    from tests.conftest import make_key

    return make_key(settings, "viewer")


def test_reindex_without_any_model_is_a_clear_409(eager_client_before_any_worker):
    response = eager_client_before_any_worker.post("/v1/admin/reindex", json={"all": True})
    assert response.status_code == 409 and "no active model" in response.json()["detail"]
