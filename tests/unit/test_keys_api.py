"""API keys managed over HTTP (the dashboard's Keys section): admins only, the secret shown
once, revocation that cannot lock everyone out."""

from __future__ import annotations

import pytest

from tests.conftest import make_key


@pytest.fixture
def client(eager_client_before_any_worker):
    """An admin's client (its key is ``client.headers["X-API-Key"]``)."""
    return eager_client_before_any_worker


def _as(client, key: str, method: str, url: str, **kwargs):
    return client.request(method, url, headers={"X-API-Key": key}, **kwargs)


def test_an_admin_creates_a_key_whose_secret_is_shown_once_and_works(client):
    created = client.post("/v1/keys", json={"name": "  Front desk  ", "role": "archivist"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["key"].startswith("pdx_") and body["key"].startswith(body["prefix"])
    assert (body["name"], body["role"], body["revoked_at"], body["last_used_at"]) == (
        "Front desk", "archivist", None, None,
    )  # fmt: skip

    me = _as(client, body["key"], "GET", "/v1/me")
    assert me.json() == {"name": "Front desk", "role": "archivist", "prefix": body["prefix"]}

    listed = client.get("/v1/keys")
    assert listed.status_code == 200
    record = next(k for k in listed.json() if k["id"] == body["id"])
    assert set(record) == {
        "id", "name", "role", "prefix", "created_at", "last_used_at", "revoked_at",
    }  # fmt: skip
    assert record["last_used_at"] is not None  # it signed in above
    assert body["key"] not in listed.text  # never the key again, nor its hash
    assert all("hash" not in field for k in listed.json() for field in k)


def test_a_revoked_key_is_refused_and_revoking_again_is_harmless(client):
    created = client.post("/v1/keys", json={"name": "laptop", "role": "viewer"}).json()
    assert _as(client, created["key"], "GET", "/v1/photos").status_code == 200

    revoked = client.delete(f"/v1/keys/{created['id']}")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    assert _as(client, created["key"], "GET", "/v1/photos").status_code == 401

    again = client.delete(f"/v1/keys/{created['id']}")
    assert again.status_code == 200
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    assert client.delete("/v1/keys/999999").status_code == 404


@pytest.mark.parametrize("role", ["viewer", "archivist"])
def test_only_admins_manage_keys(client, embedded_settings, role):
    key = make_key(embedded_settings, role)
    other = client.post("/v1/keys", json={"name": "x", "role": "viewer"}).json()
    assert _as(client, key, "GET", "/v1/keys").status_code == 403
    new_admin = {"name": "y", "role": "admin"}
    assert _as(client, key, "POST", "/v1/keys", json=new_admin).status_code == 403
    assert _as(client, key, "DELETE", f"/v1/keys/{other['id']}").status_code == 403
    assert client.get("/v1/keys").status_code == 200
    assert _as(client, "pdx_not-a-key", "GET", "/v1/keys").status_code == 401


def test_no_admin_can_lock_everyone_out(client):
    me = client.get("/v1/me").json()
    mine = next(k for k in client.get("/v1/keys").json() if k["prefix"] == me["prefix"])
    refused = client.delete(f"/v1/keys/{mine['id']}")
    assert refused.status_code == 409, refused.text
    assert "itself" in refused.json()["detail"]

    second = client.post("/v1/keys", json={"name": "deputy", "role": "admin"}).json()
    # The deputy may revoke the first admin key; then the deputy's is the last one.
    assert _as(client, second["key"], "DELETE", f"/v1/keys/{mine['id']}").status_code == 200
    last = _as(client, second["key"], "DELETE", f"/v1/keys/{second['id']}")
    assert last.status_code == 409
    assert _as(client, second["key"], "GET", "/v1/keys").status_code == 200


def test_revoking_the_last_active_admin_key_is_refused(client, embedded_settings):
    from pawdex.core.db import session_scope
    from pawdex.core.keys import KeyRevocationRefused, find_active_key, revoke

    deputy = make_key(embedded_settings, "admin")
    with session_scope(embedded_settings) as session:
        first = find_active_key(session, client.headers["X-API-Key"])
        other = find_active_key(session, deputy)
        revoke(session, other, by=first)
    with session_scope(embedded_settings) as session:
        first = find_active_key(session, client.headers["X-API-Key"])
        archivist = find_active_key(session, make_key(embedded_settings, "archivist"))
        # Even on behalf of another key (the database has no other active admin key).
        with pytest.raises(KeyRevocationRefused, match="last active admin"):
            revoke(session, first, by=archivist)


@pytest.mark.parametrize(
    "body",
    [{"name": "", "role": "viewer"}, {"name": "x", "role": "root"}, {"role": "viewer"},
     {"name": "x" * 129, "role": "admin"}, {"name": "a\x00b", "role": "viewer"}],
)  # fmt: skip
def test_bad_key_requests_are_422_in_fastapis_list_shape(client, body):
    response = client.post("/v1/keys", json=body)
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)
