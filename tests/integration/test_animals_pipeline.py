"""Animals on the production stack: two shelter archives laid out as ``{year}/{animal_id}/…``
uploaded at once to two worker processes on PostgreSQL + Redis (their ingests may overlap).
An animal whose photos come in both archives is one animal (each ingest may create it: the
insert that loses a race must find the other's row), its breed pooled from every photo by
the real model; an animal goes to the trash and comes back with all its photos."""

from __future__ import annotations

import zipfile
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from tests.conftest import LabelledPhoto
from tests.stack import admin_headers, migrated_production_env, running_server, wait_job

pytestmark = [pytest.mark.integration, pytest.mark.realphotos]

GROUPING = "{year}/{animal_id}/*"
ANIMALS = 6


def intake_archives(
    tmp_path: Path, photos: list[LabelledPhoto]
) -> tuple[list[Path], dict[str, set[str]], dict[str, str]]:
    """Two archives: each animal (photos of one breed) has two photos in the 2021 intake and
    a third in 2022; the 2022 archive also holds a photo outside any animal's folder.

    Returns the archives, the paths expected per shelter id and the breed per shelter id."""
    by_breed: dict[str, list[LabelledPhoto]] = defaultdict(list)
    for photo in photos:
        if photo.is_dog:
            by_breed[photo.breed].append(photo)
    breeds = sorted(b for b, ps in by_breed.items() if len(ps) >= 3)[:ANIMALS]
    assert len(breeds) == ANIMALS, "the real photos hold too few breeds with 3 photos"
    paths: dict[str, set[str]] = defaultdict(set)
    archives = [tmp_path / "intake-2021.zip", tmp_path / "intake-2022.zip"]
    with zipfile.ZipFile(archives[0], "w") as first, zipfile.ZipFile(archives[1], "w") as second:
        for i, breed in enumerate(breeds):
            shelter_id = f"A{1001 + i}"
            for year, archive, photo in zip(
                (2021, 2021, 2022), (first, first, second), by_breed[breed][:3], strict=True
            ):
                name = f"{year}/{shelter_id}/{photo.path.name}"
                archive.write(photo.path, name)
                paths[shelter_id].add(name)
        loose = next(p for p in photos if not p.is_dog)
        second.write(loose.path, f"2022/{loose.path.name}")  # no animal folder: its own animal
    return archives, dict(paths), {f"A{1001 + i}": b for i, b in enumerate(breeds)}


def test_archives_ingested_side_by_side_become_animals_on_postgres(
    pg_url, redis_url, labelled_photos, tmp_path
):
    archives, expected, breeds = intake_archives(tmp_path, labelled_photos)
    env = migrated_production_env(tmp_path / "data", pg_url, redis_url, PAWDEX_BATCH_SIZE="4")
    workers = [["--queues", "ingest,inference", "--name", f"w{i}@%h"] for i in (1, 2)]
    with (
        running_server(env, tmp_path / "logs", embedded=False, workers=workers) as url,
        httpx.Client(base_url=url, timeout=60, headers=admin_headers(env)) as client,
    ):
        job_ids = []
        for archive in archives:
            with archive.open("rb") as fh:
                accepted = client.post(
                    "/v1/archives", files={"file": (archive.name, fh)}, data={"grouping": GROUPING}
                )
            assert accepted.status_code == 202, accepted.text
            job_ids.append(accepted.json()["job_id"])
        jobs = [wait_job(client, job_id, timeout=600) for job_id in job_ids]
        assert [j["status"] for j in jobs] == ["succeeded", "succeeded"], jobs
        assert sum(j["done"] for j in jobs) == 3 * ANIMALS + 1

        page = client.get("/v1/animals", params={"limit": 200}).json()
        assert page["total"] == ANIMALS + 1  # the loose photo is an animal of its own
        by_id = {a["external_id"]: a for a in page["items"]}
        assert set(by_id) == {*expected, None}
        correct = 0
        for shelter_id, paths in expected.items():
            animal = client.get(f"/v1/animals/{by_id[shelter_id]['id']}").json()
            assert animal["photo_count"] == 3
            assert {p["path"] for p in animal["photos"]} == paths
            correct += animal["breed"] == breeds[shelter_id]
        # The pooled breed of three photos of one breed: the real model, not a stand-in.
        assert correct >= ANIMALS - 2, f"pooled breed right for {correct} of {ANIMALS}"

        found = client.get("/v1/animals", params={"external_id": "a1001"}).json()["items"]
        assert [a["external_id"] for a in found] == ["A1001"]
        animal_id = found[0]["id"]
        photo_ids = {p["id"] for p in client.get(f"/v1/animals/{animal_id}").json()["photos"]}

        deletion = client.delete(f"/v1/animals/{animal_id}")
        assert deletion.status_code == 200, deletion.text
        assert deletion.json()["photos"] == 3
        assert client.get("/v1/animals", params={"external_id": "A1001"}).json()["items"] == []
        listed = client.get("/v1/photos", params={"limit": 200}).json()
        assert listed["total"] == 3 * ANIMALS + 1 - 3
        assert not photo_ids & {p["id"] for p in listed["items"]}

        restored = client.post(f"/v1/trash/{deletion.json()['id']}/restore")
        assert restored.status_code == 200, restored.text
        back = client.get(f"/v1/animals/{animal_id}").json()
        assert {p["id"] for p in back["photos"]} == photo_ids
        assert back["external_id"] == "A1001"
