"""Finding photos and animals through the HTTP API: "might be" a breed (the model's top 5),
dates, folders, intake dates, totals, and a review queue without confident not-dogs."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, select, update

from pawdex.core.db import session_scope
from pawdex.core.models import BreedCandidate, Image, Prediction
from tests.conftest import make_key
from tests.factories import jpeg_bytes

PATHS = ["2021/A1001/a.jpg", "2021/A1001/b.jpg", "2022/A2002/c.jpg", "2022/A3003/d.jpg"]
# Per photo: species, species confidence, top 5 (as the model writes it), indexed at.
MODEL = [
    ("dog", 0.99, [("Labrador_retriever", 0.80), ("golden_retriever", 0.10)], "2024-01-10"),
    ("dog", 0.95, [("golden_retriever", 0.55), ("Labrador_retriever", 0.30)], "2024-02-10"),
    ("dog", 0.90, [("beagle", 0.40), ("Labrador_retriever", 0.05)], "2024-03-10"),
    ("cat", 0.97, [("Labrador_retriever", 0.30), ("pug", 0.20)], "2024-04-10"),
]


@pytest.fixture
def photos(eager_client, embedded_settings) -> dict[str, int]:
    """Four photos in three animals (one per folder), with known predictions: path → id."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n, path in enumerate(PATHS):
            zf.writestr(path, jpeg_bytes(seed=70 + n))
    accepted = eager_client.post(
        "/v1/archives",
        files={"file": ("a.zip", buf.getvalue(), "application/zip")},
        data={"grouping": "{year}/{animal_id}/*"},
    )
    assert accepted.status_code == 202, accepted.text
    items = eager_client.get("/v1/photos", params={"limit": 50}).json()["items"]
    ids = {item["path"]: item["id"] for item in items}
    assert set(ids) == set(PATHS)
    with session_scope(embedded_settings) as session:
        for path, (species, sure, top, day) in zip(PATHS, MODEL, strict=True):
            breed = top[0][0] if species == "dog" else None
            session.execute(
                update(Prediction)
                .where(Prediction.image_id == ids[path])
                .values(
                    species=species, species_confidence=sure, breed=breed, catalog_breed=breed,
                    catalog_species=species, confidence=top[0][1],
                    top_k=[{"breed": b, "confidence": c} for b, c in top],
                    created_at=datetime.fromisoformat(day).replace(tzinfo=UTC),
                )
            )  # fmt: skip
            session.execute(
                update(Image)
                .where(Image.id == ids[path])
                .values(created_at=datetime.fromisoformat(day).replace(tzinfo=UTC))
            )
    return ids


def _get(client, url: str, **params) -> dict:
    answer = client.get(url, params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _paths(page: dict) -> list[str]:
    return [item["path"] for item in page["items"]]


def test_might_be_finds_a_breed_anywhere_in_the_top_5_most_probable_first(eager_client, photos):
    page = _get(eager_client, "/v1/photos", might_be="Lab", sort="-indexed_at")
    assert _paths(page) == ["2021/A1001/a.jpg", "2022/A3003/d.jpg", "2021/A1001/b.jpg"]
    assert (page["total"], page["total_capped"]) == (3, False)
    # The threshold, the other filters, and pages of one through the cursor.
    assert _paths(_get(eager_client, "/v1/photos", might_be="Lab", might_be_min=0.3)) == [
        "2021/A1001/a.jpg", "2022/A3003/d.jpg", "2021/A1001/b.jpg",
    ]  # fmt: skip
    dogs = _get(eager_client, "/v1/photos", might_be="Labrador", species="dog", might_be_min=0)
    assert _paths(dogs) == ["2021/A1001/a.jpg", "2021/A1001/b.jpg", "2022/A2002/c.jpg"]
    seen, cursor = [], ""
    while cursor is not None:
        params = {"might_be": "labrador_retriever", "limit": 1, "cursor": cursor}
        page = _get(eager_client, "/v1/photos", **params)
        seen, cursor = seen + _paths(page), page["next_cursor"]
    assert seen == ["2021/A1001/a.jpg", "2022/A3003/d.jpg", "2021/A1001/b.jpg"]
    assert page["total"] == 3


def test_might_be_an_unknown_breed_is_a_422_that_lists_close_matches(eager_client, photos):
    answer = eager_client.get("/v1/photos", params={"might_be": "Labradoodle"})
    assert answer.status_code == 422
    (problem,) = answer.json()["detail"]
    assert problem["loc"] == ["query", "might_be"] and "Labrador" in problem["msg"]


def test_a_cursor_of_another_order_is_refused(eager_client, photos):
    page = _get(eager_client, "/v1/photos", might_be="Lab", limit=1)
    answer = eager_client.get("/v1/photos", params={"cursor": page["next_cursor"], "limit": 1})
    assert answer.status_code == 400


def test_deleting_a_prediction_takes_its_candidates(eager_client, embedded_settings, photos):
    with session_scope(embedded_settings) as session:
        session.execute(delete(Prediction).where(Prediction.image_id == photos[PATHS[0]]))
    with session_scope(embedded_settings) as session:
        left = session.scalars(select(BreedCandidate.image_id).distinct()).all()
        assert photos[PATHS[0]] not in left and len(left) == 3
    assert _paths(_get(eager_client, "/v1/photos", might_be="Lab"))[0] == "2022/A3003/d.jpg"


def test_photos_by_date_indexed_with_totals(eager_client, photos):
    page = _get(eager_client, "/v1/photos", indexed_after="2024-02-10", indexed_before="2024-04-01")
    assert sorted(_paths(page)) == ["2021/A1001/b.jpg", "2022/A2002/c.jpg"]
    assert page["total"] == 2
    zoned = _get(eager_client, "/v1/photos", indexed_after="2024-04-10T01:00:00+02:00")
    assert _paths(zoned) == ["2022/A3003/d.jpg"]
    dawn = _get(eager_client, "/v1/photos", indexed_before="0001-01-01T00:00:00+14:00")
    assert dawn["total"] == 0


def test_totals_stop_at_the_cap(eager_client, photos, monkeypatch):
    monkeypatch.setattr("pawdex.core.db.COUNT_CAP", 2)
    page = _get(eager_client, "/v1/photos", limit=1)
    assert (page["total"], page["total_capped"]) == (2, True)
    jobs = _get(eager_client, "/v1/jobs")
    assert (jobs["total"], jobs["total_capped"]) == (1, False)
    animals = _get(eager_client, "/v1/animals")
    assert (animals["total"], animals["total_capped"]) == (2, True)


def test_the_review_queue_leaves_out_confident_not_dogs_unless_asked(eager_client, photos):
    queue = _get(eager_client, "/v1/review", threshold=0.6)
    assert sorted(_paths(queue)) == ["2021/A1001/b.jpg", "2022/A2002/c.jpg"]
    assert queue["total"] == 2
    everything = _get(eager_client, "/v1/review", threshold=0.6, include_not_dogs="true")
    assert _paths(everything) == ["2022/A3003/d.jpg", "2022/A2002/c.jpg", "2021/A1001/b.jpg"]


def test_animals_by_folder_breed_dates_and_intake(eager_client, embedded_settings, photos):
    animals = {a["external_id"]: a for a in _get(eager_client, "/v1/animals")["items"]}
    assert set(animals) == {"A1001", "A2002", "A3003"}

    def ids(**params) -> set[str]:
        page = _get(eager_client, "/v1/animals", **params)
        assert page["total"] == len(page["items"])
        return {a["external_id"] for a in page["items"]}

    assert ids(folder="2022/") == {"A2002", "A3003"}
    assert ids(folder="2021/A1001/") == {"A1001"}
    assert ids(folder="2021_") == set()  # a LIKE wildcard is a plain character
    assert ids(breed="Golden") == {"A1001"}
    assert ids(breed="beagle", folder="2021/") == set()
    assert ids(indexed_after="2024-03-01") == {"A2002", "A3003"}
    assert ids(indexed_before="2024-02-01", folder="2021") == {"A1001"}
    unknown = eager_client.get("/v1/animals", params={"breed": "Labradoodle"})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["query", "breed"]

    key = {"X-API-Key": make_key(embedded_settings, "archivist")}
    url = f"/v1/animals/{animals['A2002']['id']}"
    answer = eager_client.patch(url, json={"intake_date": "2024-03-01"}, headers=key)
    assert answer.status_code == 200 and answer.json()["intake_date"] == "2024-03-01"
    renamed = eager_client.patch(url, json={"name": "Rex"}, headers=key).json()
    assert renamed["intake_date"] == "2024-03-01"  # left as it was
    assert ids(intake_after="2024-03-01") == {"A2002"}
    assert ids(intake_before="2024-02-28") == set()
    cleared = eager_client.patch(url, json={"intake_date": None}, headers=key).json()
    assert cleared["intake_date"] is None and ids(intake_after="2000-01-01") == set()
