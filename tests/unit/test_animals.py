"""Animals through the HTTP API (embedded, Celery eager): photos grouped at ingest by the
upload's rule, the breed pooled from an animal's photos, merge / split / move."""

from __future__ import annotations

import io
import zipfile

import pytest

from pawdex.core.animals import Grouping, InvalidGrouping, pool
from tests.factories import jpeg_bytes

PHOTOS = [jpeg_bytes(seed=40 + i) for i in range(8)]  # noise: each call gives new bytes


def _archive(paths: list[str], first: int = 0) -> bytes:
    """The n-th path holds PHOTOS[first + n] (the same bytes in every archive)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for photo, path in zip(PHOTOS[first:], paths, strict=False):
            zf.writestr(path, photo)
    return buf.getvalue()


def _upload(client, paths: list[str], grouping: str | None, first: int = 0) -> dict:
    form = {"grouping": grouping} if grouping is not None else {}
    archive = _archive(paths, first)
    accepted = client.post(
        "/v1/archives", files={"file": ("a.zip", archive, "application/zip")}, data=form
    )
    assert accepted.status_code == 202, accepted.text
    return client.get(f"/v1/jobs/{accepted.json()['job_id']}").json()


def _animals(client, **params) -> list[dict]:
    answer = client.get("/v1/animals", params={"limit": 200, **params})
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def _paths(client, animal: dict) -> set[str]:
    return {p["path"] for p in client.get(f"/v1/animals/{animal['id']}").json()["photos"]}


@pytest.mark.parametrize(
    ("rule", "path", "key"),
    [
        ("folder", "2021/A1001/rex.jpg", "A1001"),
        ("folder", "rex.jpg", None),
        ("{year}/{animal_id}/*", "kennel/2021/A1001/rex.jpg", "A1001"),
        ("{year}/{animal_id}/*", "A1001/rex.jpg", None),
        (r"re:(?P<animal_id>A\d{6})", "2021/A123456-2.jpg", "A123456"),
        (r"re:(?P<animal_id>A\d{6})", "2021/rex.jpg", None),
        ("photo", "2021/A1001/rex.jpg", None),
    ],
)
def test_a_grouping_rule_finds_the_animal_in_a_path(rule, path, key):
    assert Grouping.parse(rule).key(path) == key


@pytest.mark.parametrize("rule", ["{year}/*", "re:(A\\d+)", "re:(?P<animal_id>[", "kennels"])
def test_a_rule_that_cannot_find_an_animal_is_refused(rule):
    with pytest.raises(InvalidGrouping):
        Grouping.parse(rule)


def test_an_archive_laid_out_by_year_and_animal_becomes_animals(eager_client):
    paths = [
        "2021/A1001/front.jpg", "2021/A1001/side.jpg", "2021/A1001/play.jpg",
        "2021/A1002/front.jpg", "2022/A1003/one.jpg", "loose.jpg",
    ]  # fmt: skip
    job = _upload(eager_client, paths, "{year}/{animal_id}/*")
    assert job["status"] == "succeeded", job
    by_id = {a["external_id"]: a for a in _animals(eager_client)}
    assert set(by_id) == {"A1001", "A1002", "A1003", None}
    assert by_id["A1001"]["photo_count"] == 3
    assert _paths(eager_client, by_id["A1001"]) == {p for p in paths if "A1001" in p}
    assert _paths(eager_client, by_id[None]) == {"loose.jpg"}  # its own animal
    one = eager_client.get(f"/v1/animals/{by_id['A1001']['id']}").json()
    assert one["breed"] is not None and 0 < one["confidence"] <= 1
    assert {p["agrees"] for p in one["photos"]} >= {True}
    assert one["cover_url"] == f"/v1/images/{one['photos'][0]['id']}/thumbnail"
    # A later upload with the same animal id adds to the same animal.
    _upload(eager_client, ["2023/A1001/again.jpg"], "folder", first=7)
    assert _animals(eager_client, external_id="a1001")[0]["photo_count"] == 4


def test_without_a_rule_every_photo_is_its_own_animal(eager_client):
    _upload(eager_client, ["a/1.jpg", "a/2.jpg"], None)
    animals = _animals(eager_client)
    assert len(animals) == 2 and all(a["photo_count"] == 1 for a in animals)


def test_a_bad_rule_is_refused_before_anything_is_queued(eager_client):
    answer = eager_client.post(
        "/v1/archives",
        files={"file": ("a.zip", _archive(["x/1.jpg"]), "application/zip")},
        data={"grouping": "{year}/*"},
    )
    assert answer.status_code == 400 and "{animal_id}" in answer.json()["detail"]
    assert eager_client.get("/v1/jobs").json()["items"] == []


def test_merge_split_move_and_rename(eager_client):
    _upload(eager_client, ["A1/1.jpg", "A1/2.jpg", "A2/1.jpg", "A3/1.jpg"], "folder")
    by_id = {a["external_id"]: a for a in _animals(eager_client)}
    a1, a2, a3 = by_id["A1"], by_id["A2"], by_id["A3"]

    merged = eager_client.post(f"/v1/animals/{a1['id']}/merge", json={"animal_ids": [a2["id"]]})
    assert merged.status_code == 200 and merged.json()["photo_count"] == 3
    assert eager_client.get(f"/v1/animals/{a2['id']}").status_code == 404

    photo = next(p for p in merged.json()["photos"] if p["path"] == "A2/1.jpg")
    split = eager_client.post(
        "/v1/animals", json={"photo_ids": [photo["id"]], "external_id": "A2", "name": "Rex"}
    )
    assert split.status_code == 201, split.text
    assert (split.json()["external_id"], split.json()["name"], split.json()["photo_count"]) == (
        "A2", "Rex", 1,
    )  # fmt: skip

    moved = eager_client.post(f"/v1/animals/{split.json()['id']}/photos",
                              json={"photo_ids": [a3_photo(eager_client, a3)]})  # fmt: skip
    assert moved.json()["photo_count"] == 2
    assert eager_client.get(f"/v1/animals/{a3['id']}").status_code == 404  # left empty: gone

    taken = eager_client.patch(f"/v1/animals/{a1['id']}", json={"external_id": "A2"})
    assert taken.status_code == 409
    renamed = eager_client.patch(f"/v1/animals/{a1['id']}", json={"name": "Bella"})
    assert renamed.json()["name"] == "Bella"
    assert [a["id"] for a in _animals(eager_client, name="bell")] == [a1["id"]]


def a3_photo(client, animal: dict) -> int:
    return client.get(f"/v1/animals/{animal['id']}").json()["photos"][0]["id"]


def test_pooling_takes_the_mean_of_the_photos_probabilities():
    from types import SimpleNamespace as Row

    dog = {"species": "dog", "species_confidence": 0.9}
    photos = [
        Row(id=1, breed="beagle", top_k=[{"breed": "beagle", "confidence": 0.5},
                                         {"breed": "basset", "confidence": 0.4}], **dog),
        Row(id=2, breed="basset", top_k=[{"breed": "basset", "confidence": 0.45},
                                         {"breed": "beagle", "confidence": 0.1}], **dog),
        Row(id=3, breed="basset", top_k=[{"breed": "basset", "confidence": 0.6}], **dog),
    ]  # fmt: skip
    pooled = pool(photos)
    assert (pooled.species, pooled.species_confidence) == ("dog", 0.9)
    assert pooled.breed == "basset" and pooled.agreeing == [2, 3]
    assert pooled.confidence == round((0.4 + 0.45 + 0.6) / 3, 4)


def test_an_animal_most_photos_say_is_a_cat_has_no_dog_breed():
    from types import SimpleNamespace as Row

    top = [{"breed": "chihuahua", "confidence": 0.2}]
    photos = [
        Row(id=1, species="cat", species_confidence=0.96, breed=None, top_k=top),
        Row(id=2, species="cat", species_confidence=0.9, breed=None, top_k=top),
        Row(id=3, species="dog", species_confidence=0.6, breed="chihuahua", top_k=top),
    ]
    pooled = pool(photos)
    assert (pooled.species, pooled.breed, pooled.top_k) == ("cat", None, [])
    assert pooled.species_confidence == round((0.96 + 0.9) / 3, 4)
    assert pooled.agreeing == [1, 2]


def test_a_photo_indexed_alone_joins_its_animal_when_a_grouped_upload_repeats_it(eager_client):
    _upload(eager_client, ["old/1.jpg"], None)  # alone: its own animal, no shelter id
    (alone,) = _animals(eager_client)
    _upload(eager_client, ["A9/1.jpg", "A9/2.jpg"], "folder")  # 1.jpg again, now under A9
    animals = _animals(eager_client)
    assert [(a["external_id"], a["photo_count"]) for a in animals] == [("A9", 2)]
    assert eager_client.get(f"/v1/animals/{alone['id']}").status_code == 404
    # Placed by people (a shelter id): a later upload does not move it.
    _upload(eager_client, ["B1/1.jpg"], "folder")
    assert _animals(eager_client, external_id="A9")[0]["photo_count"] == 2
    assert _animals(eager_client, external_id="B1") == []


def test_text_with_a_nul_byte_is_refused_as_invalid(eager_client):
    """PostgreSQL text cannot hold NUL: it is invalid input (422), never a 500."""
    _upload(eager_client, ["A5/1.jpg"], "folder")
    (animal,) = _animals(eager_client)
    answer = eager_client.patch(f"/v1/animals/{animal['id']}", json={"name": "Rex\x00"})
    assert answer.status_code == 422
    upload = eager_client.post(
        "/v1/archives",
        files={"file": ("a.zip", _archive(["x/1.jpg"]), "application/zip")},
        data={"grouping": "{animal_id}/*\x00", "name": "week\x00"},
    )
    assert upload.status_code == 422


def test_an_animal_of_photos_that_do_not_exist_is_not_made(eager_client):
    answer = eager_client.post("/v1/animals", json={"photo_ids": [987654]})
    assert answer.status_code == 404 and "987654" in answer.json()["detail"]
    assert _animals(eager_client) == []
