"""Libraries through the HTTP API (embedded, Celery eager): a server folder indexed in place,
re-scanned after files were added, changed and removed; paths confined to the allowed roots."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import _eager_client, embedded_settings_at, make_key
from tests.factories import jpeg_bytes, png_bytes


@pytest.fixture
def roots(tmp_path):
    allowed = tmp_path / "nas"
    allowed.mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    return allowed, outside


@pytest.fixture
def client(tmp_path, monkeypatch, roots, classifier):
    from pawdex.worker.model_cache import preload

    env = {"PAWDEX_BATCH_SIZE": "2", "PAWDEX_LIBRARY_ROOTS": json.dumps([str(roots[0])])}
    with embedded_settings_at(monkeypatch, tmp_path / "var", **env) as settings:
        preload(settings)
        with _eager_client(settings) as client:
            client.settings = settings
            yield client


def _write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _photos(client, library_name: str) -> dict[str, dict]:
    items = client.get("/v1/photos", params={"limit": 100}).json()["items"]
    return {a["path"]: a for a in items if a["path"].startswith(f"{library_name}/")}


def _scan(client, library_id: int) -> dict:
    accepted = client.post(f"/v1/libraries/{library_id}/scan")
    assert accepted.status_code == 202, accepted.text
    job = client.get(f"/v1/jobs/{accepted.json()['id']}").json()
    assert (job["kind"], job["origin"]) == ("scan", "library")
    return job


def test_a_library_is_indexed_in_place_and_a_rescan_follows_its_changes(client, roots):
    nas, outside = roots
    kennel = nas / "kennel"
    _write(kennel / "a.jpg", jpeg_bytes(seed=1))
    _write(kennel / "b.jpg", jpeg_bytes(seed=2))
    _write(kennel / "run-2" / "c.png", png_bytes(color=(200, 40, 40)))
    _write(kennel / ".DS_Store", b"\0\0\0\1Bud1")
    secret = _write(outside / "secret.jpg", jpeg_bytes(seed=3))
    (kennel / "link.jpg").symlink_to(secret)  # a link out of the library: never read

    added = client.post("/v1/libraries", json={"path": str(kennel), "name": "Kennel NAS"})
    assert added.status_code == 201, added.text
    library = added.json()
    assert (library["name"], library["root"], library["files"]) == (
        "Kennel NAS", str(kennel.resolve()), 0,
    )  # fmt: skip

    job = _scan(client, library["id"])
    assert job["status"] == "succeeded", job
    assert (job["total"], job["done"], job["skipped"], job["failed"]) == (4, 3, 1, 0)
    photos = _photos(client, "kennel")
    assert set(photos) == {"kennel/a.jpg", "kennel/b.jpg", "kennel/run-2/c.png"}

    # Originals are read where they are: nothing copied into the storage, served from there.
    storage = client.settings.storage_dir
    assert not list((storage / "images").rglob("*.*")) if (storage / "images").exists() else True
    original = client.get(f"/v1/images/{photos['kennel/a.jpg']['id']}/file")
    assert original.status_code == 200
    assert original.content == (kennel / "a.jpg").read_bytes()
    assert "immutable" not in original.headers["cache-control"]
    thumb = client.get(f"/v1/images/{photos['kennel/b.jpg']['id']}/thumbnail")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"

    listed = client.get(f"/v1/libraries/{library['id']}").json()
    assert (listed["files"], listed["photos"]) == (4, 3)  # .DS_Store is a file, not a photo
    assert listed["last_job"]["id"] == job["id"]

    # One file added, one changed, one removed.
    old_a, old_b = photos["kennel/a.jpg"]["id"], photos["kennel/b.jpg"]["id"]
    _write(kennel / "d.jpg", jpeg_bytes(seed=4))
    _write(kennel / "a.jpg", jpeg_bytes(width=400, height=300, seed=5))
    (kennel / "b.jpg").unlink()

    job = _scan(client, library["id"])
    assert job["status"] == "succeeded", job
    assert (job["total"], job["done"], job["skipped"]) == (2, 2, 0)  # a and d
    assert job["message"] == (
        "2 files unchanged since the last scan, 1 removed (2 photos left the catalogue)"
    )
    photos = _photos(client, "kennel")
    assert set(photos) == {"kennel/a.jpg", "kennel/d.jpg", "kennel/run-2/c.png"}
    assert photos["kennel/a.jpg"]["id"] != old_a
    assert photos["kennel/a.jpg"]["width"] == 400
    for gone in (old_a, old_b):
        assert client.get(f"/v1/photos/{gone}").status_code == 404
    assert client.get("/v1/breeds").status_code == 200

    # Nothing changed: nothing read.
    job = _scan(client, library["id"])
    assert (job["status"], job["total"]) == ("succeeded", 0)
    assert job["message"].startswith("4 files unchanged")


def test_an_original_changed_or_swapped_for_a_link_since_the_scan_is_not_served(client, roots):
    nas, outside = roots
    photo = _write(nas / "shelf" / "rex.jpg", jpeg_bytes(seed=7))
    library = client.post("/v1/libraries", json={"path": str(nas / "shelf")}).json()
    assert library["name"] == "shelf"
    _scan(client, library["id"])
    (image,) = _photos(client, "shelf").values()

    photo.write_bytes(jpeg_bytes(seed=8))  # changed, not re-scanned yet
    answer = client.get(f"/v1/images/{image['id']}/file")
    assert answer.status_code == 404
    assert "re-scan the library" in answer.json()["detail"]

    secret = _write(outside / "secret.jpg", jpeg_bytes(seed=7))
    photo.unlink()
    photo.symlink_to(secret)  # same bytes, but out of the library
    assert client.get(f"/v1/images/{image['id']}/file").status_code == 404


def test_an_upload_of_a_library_photo_keeps_its_own_original(client, roots):
    nas, _ = roots
    data = jpeg_bytes(seed=11)
    photo = _write(nas / "box" / "rex.jpg", data)
    _write(nas / "box" / "notes.txt", b"kennel B, week 12")
    library = client.post("/v1/libraries", json={"path": str(nas / "box")}).json()
    _scan(client, library["id"])
    (image,) = _photos(client, "box").values()  # notes.txt: a failure, not a photo

    uploaded = client.post("/v1/images", files={"file": ("rex-again.jpg", data, "image/jpeg")})
    assert uploaded.status_code == 202
    assert client.get(f"/v1/jobs/{uploaded.json()['job_id']}").json()["duplicates"] == 1

    photo.unlink()
    job = _scan(client, library["id"])
    assert job["message"] == "1 files unchanged since the last scan, 1 removed"
    served = client.get(f"/v1/images/{image['id']}/file")
    assert served.status_code == 200 and served.content == data


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("{outside}", "is not inside an allowed library root"),
        ("{nas}/../elsewhere", "is not inside an allowed library root"),
        ("{nas}/escape", "is not inside an allowed library root"),  # a link out of the root
        ("{nas}/missing", "is not a folder on the server"),
        ("{nas}/file.jpg", "is not a folder on the server"),
        ("nas/relative", "absolute path"),
    ],
)
def test_only_folders_inside_the_allowed_roots_become_libraries(client, roots, path, why):
    nas, outside = roots
    (nas / "escape").symlink_to(outside)
    _write(nas / "file.jpg", jpeg_bytes())
    answer = client.post("/v1/libraries", json={"path": path.format(nas=nas, outside=outside)})
    assert answer.status_code == 400
    assert why in answer.json()["detail"]


def test_libraries_do_not_overlap_and_need_an_admin(client, roots):
    nas, _ = roots
    (nas / "a" / "b").mkdir(parents=True)
    assert client.post("/v1/libraries", json={"path": str(nas / "a")}).status_code == 201
    for path in (nas / "a", nas / "a" / "b", nas):
        answer = client.post("/v1/libraries", json={"path": str(path), "name": "other"})
        assert answer.status_code == 400 and "overlaps" in answer.json()["detail"]
    archivist = {"X-API-Key": make_key(client.settings, "archivist")}
    assert client.get("/v1/libraries", headers=archivist).status_code == 403
    (nas / "c").mkdir()
    denied = client.post("/v1/libraries", json={"path": str(nas / "c")}, headers=archivist)
    assert denied.status_code == 403


def test_a_library_scanned_while_a_scan_is_going_answers_409(client, roots):
    from pawdex.core.db import session_scope
    from pawdex.core.libraries import create_scan_job
    from pawdex.core.models import Library

    nas, _ = roots
    (nas / "busy").mkdir()
    library = client.post("/v1/libraries", json={"path": str(nas / "busy")}).json()
    with session_scope(client.settings) as session:
        job = create_scan_job(session, session.get(Library, library["id"]), created_by="test")
        session.commit()
        job_id = job.id
    answer = client.post(f"/v1/libraries/{library['id']}/scan")
    assert answer.status_code == 409 and job_id in answer.json()["detail"]


def test_no_library_without_allowed_roots(tmp_path, monkeypatch):
    with (
        embedded_settings_at(monkeypatch, tmp_path / "var") as settings,
        _eager_client(settings) as client,
    ):
        answer = client.post("/v1/libraries", json={"path": str(tmp_path)})
    assert answer.status_code == 400
    assert "PAWDEX_LIBRARY_ROOTS" in answer.json()["detail"]
    assert os.environ.get("PAWDEX_LIBRARY_ROOTS") in (None, "")


def test_an_unmounted_share_removes_nothing(client, roots):
    nas, _ = roots
    share = nas / "share"
    _write(share / "rex.jpg", jpeg_bytes(seed=21))
    _write(share / "fido.jpg", jpeg_bytes(seed=22))
    library = client.post("/v1/libraries", json={"path": str(share)}).json()
    _scan(client, library["id"])
    assert len(_photos(client, "share")) == 2

    share.rename(nas / "away")  # the NAS went offline: its mount point is gone
    job = _scan(client, library["id"])
    assert job["status"] == "failed"
    assert job["errors"][0]["error"] == "the library's folder is not there (unmounted?)"
    assert "nothing removed" in job["message"]
    share.mkdir()  # an empty mount point, as a share not mounted yet
    job = _scan(client, library["id"])
    assert "nothing removed" in job["message"]
    assert len(_photos(client, "share")) == 2

    share.rmdir()
    (nas / "away").rename(share)
    job = _scan(client, library["id"])
    assert (job["status"], job["total"]) == ("succeeded", 0)
    assert job["message"].startswith("2 files unchanged")


def test_the_sweeper_scans_libraries_on_schedule(client, roots):
    from datetime import timedelta

    from sqlalchemy import update

    from pawdex.core.db import session_scope
    from pawdex.core.models import Job, utcnow
    from pawdex.worker.sweeper import sweep

    nas, _ = roots
    _write(nas / "daily" / "rex.jpg", jpeg_bytes(seed=31))
    library = client.post("/v1/libraries", json={"path": str(nas / "daily")}).json()
    hourly = client.settings.model_copy(update={"library_scan_interval": 3600})
    assert sweep(client.settings).scans == []  # no interval: scans only when asked

    (first,) = sweep(hourly).scans  # never scanned: at once
    job = client.get(f"/v1/jobs/{first}").json()
    assert (job["status"], job["done"], job["created_by"]) == ("succeeded", 1, "scheduled scan")
    assert sweep(hourly).scans == []  # scanned a moment ago

    _write(nas / "daily" / "fido.jpg", jpeg_bytes(seed=32))
    with session_scope(client.settings) as session:
        session.execute(
            update(Job).where(Job.id == first).values(finished_at=utcnow() - timedelta(hours=2))
        )
        session.commit()
    (second,) = sweep(hourly).scans
    assert client.get(f"/v1/jobs/{second}").json()["done"] == 1
    assert len(_photos(client, "daily")) == 2
    assert client.get(f"/v1/libraries/{library['id']}").json()["last_job"]["id"] == second


def test_a_broken_file_and_its_copy_are_read_once_not_at_every_scan(client, roots):
    nas, _ = roots
    broken = jpeg_bytes(seed=41)[:300]  # truncated: not a photo
    _write(nas / "twins" / "a.jpg", broken)
    _write(nas / "twins" / "b.jpg", broken)  # the same bytes: decoded once, failing once
    library = client.post("/v1/libraries", json={"path": str(nas / "twins")}).json()
    job = _scan(client, library["id"])
    assert (job["total"], job["failed"]) == (2, 2)
    job = _scan(client, library["id"])
    assert (job["total"], job["message"]) == (0, "2 files unchanged since the last scan, 0 removed")


def test_a_deleted_library_goes_to_the_trash_with_the_photos_only_it_holds(client, roots):
    nas, _ = roots
    shared = jpeg_bytes(seed=21)
    files = [
        _write(nas / "shelf" / "own.jpg", jpeg_bytes(seed=20)),
        _write(nas / "shelf" / "up.jpg", shared),
    ]
    library = client.post("/v1/libraries", json={"path": str(nas / "shelf")}).json()
    _scan(client, library["id"])
    uploaded = client.post("/v1/images", files={"file": ("up.jpg", shared, "image/jpeg")})
    assert uploaded.status_code == 202
    photos = _photos(client, "shelf")
    thumbnail = client.get(f"/v1/images/{photos['shelf/own.jpg']['id']}/thumbnail")
    assert thumbnail.status_code == 200

    deleted = client.delete(f"/v1/libraries/{library['id']}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["photos"] == 1  # the uploaded one stays: the upload holds it
    assert set(_photos(client, "shelf")) == {"shelf/up.jpg"}
    assert client.get(f"/v1/libraries/{library['id']}").status_code == 404
    assert client.post(f"/v1/libraries/{library['id']}/scan").status_code == 404
    again = client.post("/v1/libraries", json={"path": str(nas / "shelf")})
    assert again.status_code == 400 and "in the trash" in again.json()["detail"]

    assert client.post(f"/v1/trash/{deleted.json()['id']}/restore").status_code == 200
    assert set(_photos(client, "shelf")) == {"shelf/own.jpg", "shelf/up.jpg"}
    assert client.get(f"/v1/libraries/{library['id']}").status_code == 200

    deletion = client.delete(f"/v1/libraries/{library['id']}").json()
    assert client.delete(f"/v1/trash/{deletion['id']}").status_code == 200
    assert set(_photos(client, "shelf")) == {"shelf/up.jpg"}
    assert all(f.exists() for f in files)  # the folder itself is never touched
    registered = client.post("/v1/libraries", json={"path": str(nas / "shelf")})
    assert registered.status_code == 201, registered.text
