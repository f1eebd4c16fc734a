"""Pagination cursors are opaque to clients, so a schema fuzzer never builds a well-formed one:
these are crafted by hand (valid base64 JSON with wrong types and ranges) and sent to the API on
PostgreSQL, whose types are stricter than SQLite's. Each must be a 400, never a database error."""

from __future__ import annotations

import base64
import json

import pytest
from fastapi.testclient import TestClient

from pawdex.api.main import create_app
from pawdex.core.db import session_scope
from pawdex.core.migrate import upgrade_to_head
from pawdex.core.models import ModelVersion
from pawdex.core.settings import Settings
from tests.conftest import make_key

pytestmark = pytest.mark.integration

EDGES_OF_TIME = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]


def _cursor(data) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@pytest.fixture
def client(pg_url, tmp_path):
    settings = Settings(
        data_dir=tmp_path / "var", database_url=pg_url, broker_url=None, rate_limit_per_minute=0
    )
    upgrade_to_head(settings)
    with session_scope(settings) as session:  # queries only reach the cursor with a model
        session.add(ModelVersion(version="test-v1", name="test", active=True))
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        test_client.headers["X-API-Key"] = make_key(settings, "admin")
        yield test_client


@pytest.mark.parametrize(
    "cursor",
    [
        *({"s": "-confidence", "v": 0.5, "id": bad} for bad in
          [0, 2**31, 10**30, 1e30, True, None, "1", 1.5, [1]]),
        *({"s": "-indexed_at", "v": edge, "id": 1} for edge in EDGES_OF_TIME),
        {"s": "-confidence", "v": {"a": 1}, "id": 1},
        {"s": "-confidence", "v": None, "id": 1},
        {"s": "-indexed_at", "v": 5, "id": 1},
    ],
)  # fmt: skip
def test_a_crafted_animals_cursor_is_a_400(client, cursor):
    response = client.get("/v1/photos", params={"sort": cursor["s"], "cursor": _cursor(cursor)})
    assert response.status_code == 400, response.text
    assert response.json() == {"detail": "invalid cursor"}


def test_a_well_formed_animals_cursor_is_honoured(client):
    for cursor in (
        {"s": "-confidence", "v": 0.5, "id": 7},
        {"s": "-indexed_at", "v": "2024-05-01T12:00:00+02:00", "id": 7},
        {"s": "-indexed_at", "v": "2024-05-01T12:00:00", "id": 2**31 - 1},
    ):
        response = client.get("/v1/photos", params={"sort": cursor["s"], "cursor": _cursor(cursor)})
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "cursor",
    [
        *(["2024-01-01T00:00:00+00:00", bad] for bad in [5, None, True, 1.5, {"a": 1}, "a\0b"]),
        *([edge, "abc"] for edge in EDGES_OF_TIME),
    ],
)
def test_a_crafted_jobs_cursor_is_a_400(client, cursor):
    response = client.get("/v1/jobs", params={"cursor": _cursor(cursor)})
    assert response.status_code == 400, response.text
