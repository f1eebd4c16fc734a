"""People's labels beside the model's predictions: review queue, corrections, export."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import func, select

from pawdex.core.db import session_scope
from pawdex.core.models import Label, Prediction
from tests.conftest import make_key
from tests.factories import jpeg_bytes


@pytest.fixture
def indexed(eager_client, labelled_photos):
    """Six real photos indexed through the API (eager Celery)."""
    files = [
        ("file", (p.path.name, p.path.read_bytes(), "image/jpeg")) for p in labelled_photos[:6]
    ]
    accepted = eager_client.post("/v1/images", files=files)
    assert accepted.status_code == 202, accepted.text
    job = eager_client.get(f"/v1/jobs/{accepted.json()['job_id']}").json()
    assert job["status"] == "succeeded" and job["done"] == 6
    return eager_client.get("/v1/photos", params={"limit": 50}).json()["items"]


def archivist(client, settings) -> dict[str, str]:
    return {"X-API-Key": make_key(settings, "archivist")}


def other_breed(animal) -> str:
    return next(t["breed"] for t in animal["top_k"] if t["breed"] != animal["model_breed"])


def test_a_correction_is_stored_beside_the_prediction_and_shown_as_human(
    eager_client, embedded_settings, indexed
):
    animal = next(a for a in indexed if a["species"] == "dog")
    assert animal["label_source"] == "model" and animal["breed"] == animal["model_breed"]
    new = other_breed(animal)
    response = eager_client.post(
        f"/v1/photos/{animal['id']}/label",
        json={"species": "dog", "breed": new},
        headers=archivist(eager_client, embedded_settings),
    )
    assert response.status_code == 200, response.text
    labelled = response.json()
    assert (labelled["breed"], labelled["label_source"]) == (new, "human")
    assert labelled["model_breed"] == animal["model_breed"]  # the prediction is untouched
    assert labelled["confidence"] == animal["confidence"]
    assert labelled["labeled_by"] == "test archivist" and labelled["labeled_at"]

    # Queries follow the person's label, and can ask for labelled photos only.
    by_new = eager_client.get("/v1/photos", params={"breed": new}).json()["items"]
    assert animal["id"] in [a["id"] for a in by_new]
    by_old = eager_client.get("/v1/photos", params={"breed": animal["model_breed"]}).json()
    assert animal["id"] not in [a["id"] for a in by_old["items"]]
    human = eager_client.get("/v1/photos", params={"label_source": "human"}).json()["items"]
    assert [a["id"] for a in human] == [animal["id"]]
    model = eager_client.get("/v1/photos", params={"label_source": "model"}).json()["items"]
    assert len(model) == len(indexed) - 1
    breeds = {b["breed"]: b["count"] for b in eager_client.get("/v1/breeds").json()}
    assert breeds[new] >= 1
    csv_text = eager_client.get("/v1/photos", params={"format": "csv"}).text
    row = next(r for r in csv.DictReader(io.StringIO(csv_text)) if r["id"] == str(animal["id"]))
    assert (row["breed"], row["label_source"], row["model_breed"]) == (
        new, "human", animal["model_breed"],
    )  # fmt: skip

    with session_scope(embedded_settings) as session:
        prediction = session.scalar(select(Prediction).where(Prediction.image_id == animal["id"]))
        assert prediction.breed == animal["model_breed"]


def test_not_a_dog_then_confirm_keeps_every_verdict_and_shows_the_newest(
    eager_client, embedded_settings, indexed
):
    animal = next(a for a in indexed if a["species"] == "dog")
    headers = archivist(eager_client, embedded_settings)
    url = f"/v1/photos/{animal['id']}/label"
    cat = eager_client.post(url, json={"species": "other"}, headers=headers).json()
    assert (cat["species"], cat["breed"], cat["label_source"]) == ("other", None, "human")
    dogs = eager_client.get("/v1/photos", params={"species": "dog"}).json()["items"]
    assert animal["id"] not in [a["id"] for a in dogs]
    confirmed = eager_client.post(
        url, json={"species": "dog", "breed": animal["model_breed"]}, headers=headers
    ).json()
    assert (confirmed["species"], confirmed["breed"]) == ("dog", animal["model_breed"])
    with session_scope(embedded_settings) as session:
        rows = session.scalars(
            select(Label).where(Label.image_id == animal["id"]).order_by(Label.id)
        ).all()
    assert [(r.species, r.current) for r in rows] == [("other", False), ("dog", True)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"species": "dog", "breed": "unicorn"}, "unknown breed"),
        ({"species": "dog", "breeds": ["unicorn"]}, "unknown breed"),  # {"species": "dog"}: unknown
        ({"species": "dog", "breed": "pug", "breeds": ["beagle"]}, "not the first of breeds"),
        ({"species": "cat", "mix": True}, "a cat has no breed"),
        ({"species": "cat", "breed": "beagle"}, "a cat has no breed"),
        ({"species": "hamster"}, "unknown species"),
    ],
)
def test_invalid_labels_are_refused_clearly(
    eager_client, embedded_settings, indexed, body, message
):
    response = eager_client.post(
        f"/v1/photos/{indexed[0]['id']}/label",
        json=body,
        headers=archivist(eager_client, embedded_settings),
    )
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"][0]["msg"]


def test_labels_need_the_archivist_role_and_an_existing_photo(
    eager_client, embedded_settings, indexed
):
    viewer = {"X-API-Key": make_key(embedded_settings, "viewer")}
    url = f"/v1/photos/{indexed[0]['id']}/label"
    body = {"species": "other"}
    assert eager_client.post(url, json=body, headers=viewer).status_code == 403
    missing = eager_client.post("/v1/photos/999999/label", json=body)
    assert missing.status_code == 404


def test_review_queue_lists_unlabelled_low_confidence_photos_least_confident_first(
    eager_client, embedded_settings, indexed
):
    queue = eager_client.get("/v1/review", params={"threshold": 1.0}).json()
    assert queue["threshold"] == 1.0
    confidences = [a["confidence"] for a in queue["items"]]
    assert len(confidences) == len(indexed) and confidences == sorted(confidences)
    default = eager_client.get("/v1/review").json()
    assert default["threshold"] == embedded_settings.review_threshold
    assert all(a["confidence"] <= default["threshold"] for a in default["items"])

    first = queue["items"][0]
    eager_client.post(
        f"/v1/photos/{first['id']}/label",
        json={"species": "other"},
        headers=archivist(eager_client, embedded_settings),
    )
    after = eager_client.get("/v1/review", params={"threshold": 1.0}).json()["items"]
    assert first["id"] not in [a["id"] for a in after] and len(after) == len(indexed) - 1


def test_labels_export_as_csv_and_as_an_image_folder_for_training(
    eager_client, embedded_settings, indexed, tmp_path
):
    from pawdex.core.labels import export_image_folder
    from pawdex.core.storage import LocalStorage

    headers = archivist(eager_client, embedded_settings)
    dog = next(a for a in indexed if a["species"] == "dog")
    eager_client.post(
        f"/v1/photos/{dog['id']}/label",
        json={"species": "dog", "breed": "beagle"},
        headers=headers,
    )
    eager_client.post(
        f"/v1/photos/{indexed[-1]['id']}/label", json={"species": "cat"}, headers=headers
    )
    rows = list(csv.DictReader(io.StringIO(eager_client.get("/v1/labels").text)))
    assert {(int(r["image_id"]), r["breed"]) for r in rows} == {
        (dog["id"], "beagle"), (indexed[-1]["id"], ""),
    }  # fmt: skip
    with session_scope(embedded_settings) as session:
        counts = export_image_folder(
            session, LocalStorage(embedded_settings.storage_dir), tmp_path / "train"
        )
    assert counts == {"beagle": 1, "_not_a_dog": 1}
    (photo,) = (tmp_path / "train" / "beagle").iterdir()
    assert photo.name.startswith(dog["sha256"]) and photo.stat().st_size > 1000
    assert (tmp_path / "train" / "labels.csv").is_file()

    from typer.testing import CliRunner

    from pawdex.cli import app

    result = CliRunner().invoke(app, ["labels", "export", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    assert "2 labelled photos in 2 folders" in result.output
    assert len(list((tmp_path / "cli" / "_not_a_dog").iterdir())) == 1


def test_breeds_all_lists_the_120_names(eager_client):
    names = eager_client.get("/v1/breeds/all").json()
    assert len(names) == 120 and "golden_retriever" in names
    assert names == sorted(names, key=str.lower)


def test_a_browser_session_cookie_authenticates_reads_and_guarded_changes(
    eager_client, embedded_settings, indexed
):
    key = make_key(embedded_settings, "archivist")
    client = eager_client
    client.headers.pop("X-API-Key")
    signed = client.post("/v1/session", headers={"X-API-Key": key})
    assert signed.status_code == 200 and signed.json()["role"] == "archivist"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert client.get("/v1/me").json()["name"] == "test archivist"
    thumb = client.get(f"/v1/images/{indexed[0]['id']}/thumbnail")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    url = f"/v1/photos/{indexed[0]['id']}/label"
    forged = client.post(url, json={"species": "other"})  # what another site could send
    assert forged.status_code == 403 and "X-Requested-With" in forged.json()["detail"]
    ok = client.post(url, json={"species": "other"}, headers={"X-Requested-With": "pawdex-ui"})
    assert ok.status_code == 200
    assert client.delete("/v1/session").status_code == 204
    assert client.get("/v1/me").status_code == 401
    assert client.post("/v1/session", headers={"X-API-Key": "nope"}).status_code == 401


def test_job_progress_has_rate_and_cancel_retry_follow_the_job_state(
    eager_client, embedded_settings, indexed
):
    from pawdex.core.models import JobKind
    from pawdex.core.uploads import IncomingFile, submit

    job = eager_client.get(f"/v1/jobs/{indexed[0]['job_id']}").json()
    assert job["photos_per_second"] > 0 and job["eta_seconds"] is None
    assert eager_client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 409
    assert eager_client.post(f"/v1/jobs/{job['id']}/retry").status_code == 409
    assert eager_client.post("/v1/jobs/nope/cancel").status_code == 404

    # A queued job (never sent to the queue), cancelled, then retried: it runs to the end.
    files = [IncomingFile(f"p{i}.jpg", io.BytesIO(jpeg_bytes(seed=40 + i))) for i in range(3)]
    queued = submit(JobKind.images, files, embedded_settings, enqueue=False)
    cancelled = eager_client.post(f"/v1/jobs/{queued.id}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["message"] == "cancelled by test admin"
    retried = eager_client.post(f"/v1/jobs/{queued.id}/retry")
    assert retried.status_code == 202
    final = eager_client.get(f"/v1/jobs/{queued.id}").json()
    assert (final["status"], final["done"], final["total"]) == ("succeeded", 3, 3)
    viewer = {"X-API-Key": make_key(embedded_settings, "viewer")}
    assert eager_client.post(f"/v1/jobs/{queued.id}/cancel", headers=viewer).status_code == 403


def test_retry_classifies_again_the_photos_whose_classification_failed(
    eager_client, embedded_settings, monkeypatch
):
    """A stored photo that cannot be read makes the job partial; once it can be read again
    (a disk came back), retry classifies just that photo."""
    from pawdex.worker import classify

    readable = classify.model_input

    def flaky_disk(row, storage, size):
        if row.id == broken["id"]:
            raise OSError("I/O error")
        return readable(row, storage, size)

    broken: dict = {"id": None}
    files = [("file", (f"q{i}.jpg", jpeg_bytes(seed=60 + i), "image/jpeg")) for i in range(3)]
    with monkeypatch.context() as patch:
        patch.setattr(classify, "model_input", flaky_disk)
        from pawdex.core.models import Image

        # The first photo's id is the next id: break exactly that one.
        with session_scope(embedded_settings) as session:
            broken["id"] = (session.scalar(select(func.max(Image.id))) or 0) + 1
        job_id = eager_client.post("/v1/images", files=files).json()["job_id"]
    job = eager_client.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["done"], job["failed"]) == ("partial", 2, 1)
    assert "cannot read the stored photo: I/O error" in job["errors"][0]["error"]

    retried = eager_client.post(f"/v1/jobs/{job_id}/retry")
    assert retried.status_code == 202, retried.text
    final = eager_client.get(f"/v1/jobs/{job_id}").json()
    assert (final["status"], final["done"], final["failed"], final["errors"]) == (
        "succeeded", 3, 0, [],
    )  # fmt: skip
    assert final["message"] == "retried by test admin"
    with session_scope(embedded_settings) as session:
        count = session.scalar(
            select(func.count()).select_from(Prediction).where(Prediction.image_id == broken["id"])
        )
    assert count == 1


def test_breed_pages_mix_model_and_human_labels_in_keyset_order(
    eager_client, embedded_settings, indexed
):
    """A breed's photos are those the model put there and nobody corrected, and those a
    person labelled so: pages come in one order, none lost or twice."""
    headers = archivist(eager_client, embedded_settings)
    target = indexed[0]["model_breed"] or "beagle"
    relabelled = [a for a in indexed if a["model_breed"] != target][:3]
    for animal in relabelled:
        eager_client.post(
            f"/v1/photos/{animal['id']}/label",
            json={"species": "dog", "breed": target},
            headers=headers,
        )
    expected = sorted(
        (a for a in indexed if a["model_breed"] == target or a in relabelled),
        key=lambda a: (a["confidence"], a["id"]),
        reverse=True,
    )
    for sort, order in (("-confidence", expected), ("confidence", expected[::-1])):
        seen, cursor = [], None
        while True:
            params = {"breed": target, "limit": 1, "sort": sort} | (
                {"cursor": cursor} if cursor else {}
            )
            page = eager_client.get("/v1/photos", params=params).json()
            seen += [a["id"] for a in page["items"]]
            if not (cursor := page["next_cursor"]):
                break
        assert seen == [a["id"] for a in order]


def test_labels_keep_showing_after_every_photo_is_classified_again(
    eager_client, embedded_settings, indexed
):
    """A reindex rewrites the model's predictions; what the catalogue shows and filters on
    must still be the person's verdict."""
    animal = next(a for a in indexed if a["species"] == "dog")
    new = other_breed(animal)
    eager_client.post(
        f"/v1/photos/{animal['id']}/label",
        json={"species": "dog", "breed": new},
        headers=archivist(eager_client, embedded_settings),
    )
    admin = {"X-API-Key": make_key(embedded_settings, "admin")}
    job = eager_client.post("/v1/admin/reindex", json={"all": True}, headers=admin).json()
    assert eager_client.get(f"/v1/jobs/{job['id']}").json()["status"] == "succeeded"
    with session_scope(embedded_settings) as session:
        prediction = session.scalar(select(Prediction).where(Prediction.image_id == animal["id"]))
        assert prediction.job_id == job["id"]  # rewritten by the reindex
        assert (prediction.breed, prediction.catalog_breed) == (animal["model_breed"], new)
    by_new = eager_client.get("/v1/photos", params={"breed": new, "label_source": "human"})
    assert [a["id"] for a in by_new.json()["items"]] == [animal["id"]]
    by_old = eager_client.get("/v1/photos", params={"breed": animal["model_breed"]}).json()
    assert animal["id"] not in [a["id"] for a in by_old["items"]]


def test_breed_counts_follow_every_change_folded_or_not(eager_client, embedded_settings, indexed):
    """/v1/breeds reads tallies the database keeps (triggers on predictions append deltas,
    the sweeper folds them): they must equal counting the photos, at every step."""
    from sqlalchemy import delete

    from pawdex.core.catalog import fold_breed_tallies
    from pawdex.core.models import BreedTallyDelta

    def counted() -> dict[str, int]:
        with session_scope(embedded_settings) as session:
            rows = session.execute(
                select(Prediction.catalog_breed, func.count())
                .where(Prediction.catalog_breed.is_not(None))
                .group_by(Prediction.catalog_breed)
            ).all()
        return dict(rows)

    def served() -> dict[str, int]:
        return {b["breed"]: b["count"] for b in eager_client.get("/v1/breeds").json()}

    assert served() == counted() and sum(counted().values()) >= 1
    dog = next(a for a in indexed if a["species"] == "dog")
    headers = archivist(eager_client, embedded_settings)
    eager_client.post(f"/v1/photos/{dog['id']}/label", json={"species": "dog",
                      "breed": other_breed(dog)}, headers=headers)  # fmt: skip
    assert served() == counted()
    with session_scope(embedded_settings) as session:
        assert fold_breed_tallies(session) > 0
        assert session.scalar(select(func.count()).select_from(BreedTallyDelta)) == 0
    assert served() == counted()
    eager_client.post(f"/v1/photos/{dog['id']}/label", json={"species": "cat",
                      "breed": None}, headers=headers)  # fmt: skip
    with session_scope(embedded_settings) as session:
        session.execute(delete(Prediction).where(Prediction.image_id == indexed[-1]["id"]))
    assert served() == counted()
    with session_scope(embedded_settings) as session:
        fold_breed_tallies(session, limit=1)  # a partial fold
    assert served() == counted()
