"""A library of real photos indexed in place by a real worker (PostgreSQL, Redis), then one
file added, one changed, one removed, and the library re-scanned."""

from __future__ import annotations

import json
import shutil

import httpx
import pytest

from tests.stack import admin_headers, migrated_production_env, running_server, wait_job

pytestmark = [pytest.mark.integration, pytest.mark.realphotos]


def _catalogue(client: httpx.Client) -> dict[str, dict]:
    items = client.get("/v1/photos", params={"limit": 500}).json()["items"]
    return {a["path"]: a for a in items}


def _scan(client: httpx.Client, library_id: int) -> dict:
    accepted = client.post(f"/v1/libraries/{library_id}/scan")
    assert accepted.status_code == 202, accepted.text
    return wait_job(client, accepted.json()["id"], timeout=300)


def test_a_library_of_real_photos_is_indexed_in_place_and_rescanned(
    pg_url, redis_url, labelled_photos, tmp_path
):
    dogs = [p for p in labelled_photos if p.is_dog][::20][:7]
    nas = tmp_path / "nas"
    shelf = nas / "shelter-2021"
    for i, photo in enumerate(dogs[:6]):
        target = shelf / f"A10{i:02d}" / photo.path.name
        target.parent.mkdir(parents=True)
        shutil.copyfile(photo.path, target)
    (shelf / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0 thumbnail cache")
    env = migrated_production_env(
        tmp_path / "data", pg_url, redis_url,
        PAWDEX_BATCH_SIZE="4", PAWDEX_LIBRARY_ROOTS=json.dumps([str(nas)]),
    )  # fmt: skip

    with (
        running_server(
            env, tmp_path / "logs", embedded=False, workers=[["--queues", "ingest,inference"]]
        ) as url,
        httpx.Client(base_url=url, timeout=60, headers=admin_headers(env)) as client,
    ):
        library = client.post("/v1/libraries", json={"path": str(shelf)}).json()
        job = _scan(client, library["id"])
        assert job["status"] == "succeeded", job
        assert (job["done"], job["skipped"], job["origin"]) == (6, 1, "library")
        before = _catalogue(client)
        assert set(before) == {
            f"shelter-2021/{p.relative_to(shelf).as_posix()}" for p in shelf.rglob("*.jpg")
        }
        correct = sum(
            before[f"shelter-2021/A10{i:02d}/{p.path.name}"]["breed"] == p.breed
            for i, p in enumerate(dogs[:6])
        )
        assert correct >= 3, f"top-1 {correct}/6"
        served = client.get(f"/v1/images/{next(iter(before.values()))['id']}/file")
        assert served.status_code == 200
        assert not (tmp_path / "data" / "storage" / "images").exists()  # no original copied

        added = shelf / "A1099" / dogs[6].path.name
        added.parent.mkdir()
        shutil.copyfile(dogs[6].path, added)
        changed = next((shelf / "A1000").iterdir())
        shutil.copyfile(dogs[6].path, changed)  # another photo under the same name
        removed = next((shelf / "A1001").iterdir())
        removed.unlink()

        job = _scan(client, library["id"])
        assert job["status"] == "succeeded", job
        # The added and the changed file hold the same photo: indexed once, one duplicate.
        assert (job["total"], job["done"], job["duplicates"]) == (2, 1, 1)
        assert job["message"].startswith("5 files unchanged since the last scan, 1 removed")
        after = _catalogue(client)
        changed_path = f"shelter-2021/{changed.relative_to(shelf).as_posix()}"
        added_path = f"shelter-2021/{added.relative_to(shelf).as_posix()}"
        removed_path = f"shelter-2021/{removed.relative_to(shelf).as_posix()}"
        assert removed_path not in after
        assert after[changed_path]["id"] != before[changed_path]["id"]
        # The added file repeats the changed one (read first, in path order): a duplicate that
        # names the photo it repeats.
        assert added_path not in after
        (duplicate,) = client.get(f"/v1/jobs/{job['id']}/duplicates").json()["items"]
        assert (duplicate["name"], duplicate["image_id"]) == (added_path, after[changed_path]["id"])
        assert len(after) == len(before) - 1
        described = client.get(f"/v1/libraries/{library['id']}").json()
        assert (described["files"], described["photos"]) == (7, 6)


def test_two_sweepers_never_queue_the_same_library_twice(pg_url, tmp_path):
    from sqlalchemy.orm import sessionmaker

    from pawdex.core.db import make_engine
    from pawdex.core.libraries import due_scans
    from pawdex.core.migrate import upgrade_to_head
    from pawdex.core.models import Library
    from pawdex.core.settings import Settings

    upgrade_to_head(Settings(database_url=pg_url, data_dir=tmp_path))
    sessions = sessionmaker(make_engine(pg_url))
    with sessions.begin() as session:
        session.add_all([Library(name=n, root=str(tmp_path / n)) for n in ("a", "b")])
    with sessions.begin() as first:
        picked = sorted(job.name for job in due_scans(first, 3600))
        with sessions.begin() as second:  # while the first sweeper holds its rows
            assert due_scans(second, 3600) == []
    assert picked == ["a", "b"]
    with sessions.begin() as session:  # their scans are queued, not finished: not due
        assert due_scans(session, 0) == []
