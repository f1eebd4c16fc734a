"""Delete with undo through the HTTP API (embedded, Celery eager): photos, animals and jobs
go to a trash, come back as they were, and are purged (files included) only when nothing
else holds them; every deletion is recorded with who and when."""

from __future__ import annotations

import io
import zipfile

import pytest
from sqlalchemy import select

from pawdex.core.db import session_scope
from pawdex.core.models import Image, Job, JobStatus
from tests.conftest import make_key
from tests.factories import jpeg_bytes

PHOTOS = [jpeg_bytes(seed=70 + i) for i in range(6)]  # noise: fixed bytes for this module


def _upload(client, photos: dict[str, bytes], grouping: str = "photo", key: str | None = None):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path, data in photos.items():
            zf.writestr(path, data)
    headers = {"X-API-Key": key} if key else {}
    accepted = client.post(
        "/v1/archives",
        files={"file": ("a.zip", buf.getvalue(), "application/zip")},
        data={"grouping": grouping},
        headers=headers,
    )
    assert accepted.status_code == 202, accepted.text
    job = client.get(f"/v1/jobs/{accepted.json()['job_id']}").json()
    assert job["status"] == "succeeded", job
    return job


def _photo_ids(client, **params) -> dict[str, int]:
    """path → id of the photos the catalogue shows."""
    items = client.get("/v1/photos", params={"limit": 500, **params}).json()["items"]
    return {item["path"]: item["id"] for item in items}


def _tallies(client) -> dict[str, int]:
    return {row["breed"]: row["count"] for row in client.get("/v1/breeds").json()}


def _files(settings, image_ids) -> list:
    with session_scope(settings) as session:
        rows = session.execute(
            select(Image.stored_path, Image.thumbnail_path).where(Image.id.in_(image_ids))
        ).all()
    return [settings.storage_dir / key for row in rows for key in row if key]


def test_a_deleted_photo_leaves_every_view_and_comes_back_as_it_was(eager_client):
    _upload(eager_client, {f"A1/{i}.jpg": PHOTOS[i] for i in range(3)}, grouping="folder")
    ids = _photo_ids(eager_client)
    victim = ids["A1/0.jpg"]
    labelled = eager_client.post(
        f"/v1/photos/{victim}/label", json={"species": "dog", "breed": "beagle"}
    )
    assert labelled.status_code == 200, labelled.text
    before, tallies = eager_client.get(f"/v1/photos/{victim}").json(), _tallies(eager_client)
    assert tallies["beagle"] >= 1

    deleted = eager_client.delete(f"/v1/photos/{victim}")
    assert deleted.status_code == 200, deleted.text
    deletion = deleted.json()
    assert deletion["state"] == "trash" and deletion["photos"] == 1
    assert deletion["deleted_by"] == "test admin"
    assert victim not in _photo_ids(eager_client).values()
    assert victim not in _photo_ids(eager_client, breed="beagle").values()
    assert eager_client.get(f"/v1/photos/{victim}").status_code == 404
    assert eager_client.get(f"/v1/images/{victim}/file").status_code == 404
    assert _tallies(eager_client).get("beagle", 0) == tallies["beagle"] - 1
    animal = eager_client.get("/v1/animals", params={"external_id": "A1"}).json()["items"][0]
    assert animal["photo_count"] == 2
    assert eager_client.delete(f"/v1/photos/{victim}").status_code == 404  # already gone

    listed = eager_client.get("/v1/trash", params={"state": "trash"}).json()["items"]
    assert [d["id"] for d in listed] == [deletion["id"]]
    restored = eager_client.post(f"/v1/trash/{deletion['id']}/restore")
    assert restored.status_code == 200, restored.text
    assert restored.json()["state"] == "restored"
    assert eager_client.get(f"/v1/photos/{victim}").json() == before  # label and all
    assert _tallies(eager_client) == tallies
    assert eager_client.get(f"/v1/images/{victim}/file").status_code == 200
    again = eager_client.post(f"/v1/trash/{deletion['id']}/restore")
    assert again.status_code == 409
    assert eager_client.get("/v1/trash", params={"state": "trash"}).json()["items"] == []
    history = eager_client.get("/v1/trash").json()["items"]
    assert history[0]["restored_by"] == "test admin"


def test_deleting_a_job_keeps_the_photos_another_upload_holds_and_purge_removes_files(
    eager_client, embedded_settings
):
    first = _upload(eager_client, {f"a/{i}.jpg": PHOTOS[i] for i in range(3)})
    second = _upload(eager_client, {"b/shared.jpg": PHOTOS[2], "b/own.jpg": PHOTOS[3]})
    ids = _photo_ids(eager_client)
    shared = ids["a/2.jpg"]  # the second upload repeats it

    deletion = eager_client.delete(f"/v1/jobs/{first['id']}").json()
    assert deletion["kind"] == "job" and deletion["photos"] == 2
    assert set(_photo_ids(eager_client)) == {"a/2.jpg", "b/own.jpg"}
    assert eager_client.get(f"/v1/jobs/{first['id']}").status_code == 404
    assert first["id"] not in [j["id"] for j in eager_client.get("/v1/jobs").json()["items"]]
    for what in ("errors", "duplicates"):  # nothing of it either (found by the fuzz test)
        assert eager_client.get(f"/v1/jobs/{first['id']}/{what}").status_code == 404
    assert eager_client.post(f"/v1/jobs/{first['id']}/retry").status_code == 404

    gone = [ids["a/0.jpg"], ids["a/1.jpg"]]
    files = _files(embedded_settings, gone)
    assert len(files) == 4 and all(f.exists() for f in files)  # originals and thumbnails
    purged = eager_client.delete(f"/v1/trash/{deletion['id']}")
    assert purged.status_code == 200, purged.text
    assert purged.json()["state"] == "purged" and purged.json()["purged_by"] == "test admin"
    assert not any(f.exists() for f in files)
    assert eager_client.post(f"/v1/trash/{deletion['id']}/restore").status_code == 409
    kept = _files(embedded_settings, [shared])
    assert kept and all(f.exists() for f in kept)

    # The last holder goes: now the shared photo goes with it, files and all.
    last = eager_client.delete(f"/v1/jobs/{second['id']}").json()
    assert last["photos"] == 2
    assert eager_client.delete(f"/v1/trash/{last['id']}").status_code == 200
    assert not any(f.exists() for f in kept)
    assert _photo_ids(eager_client) == {}
    # Purged photos are forgotten: the same bytes are a new photo again.
    _upload(eager_client, {"c/again.jpg": PHOTOS[0]})
    assert set(_photo_ids(eager_client)) == {"c/again.jpg"}


def test_an_animal_goes_to_the_trash_with_its_photos_and_comes_back(eager_client):
    _upload(eager_client, {f"B7/{i}.jpg": PHOTOS[i] for i in range(2)}, grouping="folder")
    animal = eager_client.get("/v1/animals", params={"external_id": "B7"}).json()["items"][0]
    deletion = eager_client.delete(f"/v1/animals/{animal['id']}").json()
    assert deletion["kind"] == "animal" and deletion["photos"] == 2
    assert deletion["name"] == "animal B7"
    assert eager_client.get(f"/v1/animals/{animal['id']}").status_code == 404
    assert eager_client.get("/v1/animals", params={"external_id": "B7"}).json()["items"] == []
    assert _photo_ids(eager_client) == {}

    assert eager_client.post(f"/v1/trash/{deletion['id']}/restore").status_code == 200
    back = eager_client.get(f"/v1/animals/{animal['id']}").json()
    assert back["photo_count"] == 2 and back["external_id"] == "B7"


def test_a_photo_in_the_trash_stays_there_when_its_bytes_come_again(eager_client):
    _upload(eager_client, {"x/1.jpg": PHOTOS[4]})
    photo = _photo_ids(eager_client)["x/1.jpg"]
    eager_client.delete(f"/v1/photos/{photo}")
    job = _upload(eager_client, {"y/1.jpg": PHOTOS[4]})
    assert job["duplicates"] == 1
    assert _photo_ids(eager_client) == {}
    known = eager_client.post("/v1/images/check", json={"sha256": [_sha(PHOTOS[4])]}).json()
    assert known["known"] == [_sha(PHOTOS[4])]  # a rerun of pawdex index does not resend it


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_archivists_delete_only_their_own_uploads_and_admins_purge(eager_client, embedded_settings):
    ada, bob = make_key(embedded_settings, "archivist"), make_key(embedded_settings, "archivist")
    viewer = make_key(embedded_settings, "viewer")
    _upload(eager_client, {"ada/1.jpg": PHOTOS[0], "ada/2.jpg": PHOTOS[1]}, key=ada)
    bobs = _upload(eager_client, {"bob/1.jpg": PHOTOS[2]}, key=bob)
    ids = _photo_ids(eager_client)

    as_ = {"ada": {"X-API-Key": ada}, "bob": {"X-API-Key": bob}, "viewer": {"X-API-Key": viewer}}
    assert (
        eager_client.delete(f"/v1/photos/{ids['ada/1.jpg']}", headers=as_["viewer"]).status_code
        == 403
    )
    refused = eager_client.delete(f"/v1/photos/{ids['ada/1.jpg']}", headers=as_["bob"])
    assert refused.status_code == 403 and "your own uploads" in refused.json()["detail"]
    assert eager_client.delete(f"/v1/jobs/{bobs['id']}", headers=as_["ada"]).status_code == 403
    mixed = {"photo_ids": [ids["ada/1.jpg"], ids["bob/1.jpg"]]}
    assert eager_client.post("/v1/trash", json=mixed, headers=as_["ada"]).status_code == 403

    mine = {"photo_ids": [ids["ada/1.jpg"], ids["ada/2.jpg"]]}
    deleted = eager_client.post("/v1/trash", json=mine, headers=as_["ada"])
    assert deleted.status_code == 201, deleted.text
    deletion = deleted.json()
    assert deletion["photos"] == 2 and deletion["name"] == "2 photos"
    # Each sees their own deletions; the admin sees everyone's.
    assert [d["id"] for d in eager_client.get("/v1/trash", headers=as_["ada"]).json()["items"]] == [
        deletion["id"]
    ]
    assert eager_client.get("/v1/trash", headers=as_["bob"]).json()["items"] == []
    assert (
        eager_client.post(f"/v1/trash/{deletion['id']}/restore", headers=as_["bob"]).status_code
        == 403
    )
    assert eager_client.delete(f"/v1/trash/{deletion['id']}", headers=as_["ada"]).status_code == 403
    assert (
        eager_client.post(f"/v1/trash/{deletion['id']}/restore", headers=as_["ada"]).status_code
        == 200
    )
    assert eager_client.delete(f"/v1/jobs/{bobs['id']}", headers=as_["bob"]).status_code == 200


def test_a_running_job_is_not_deleted(eager_client, embedded_settings):
    with session_scope(embedded_settings) as session:
        job = Job(kind="archive", status=JobStatus.running, source=[], name="busy.zip")
        session.add(job)
        session.flush()
        job_id = job.id
    refused = eager_client.delete(f"/v1/jobs/{job_id}")
    assert refused.status_code == 409 and "cancel it first" in refused.json()["detail"]


@pytest.mark.parametrize("days", ["0"])
def test_the_sweeper_purges_what_outlived_the_retention(
    eager_client, embedded_settings, monkeypatch, days
):
    from pawdex.core.settings import get_settings
    from pawdex.worker.sweeper import sweep

    _upload(eager_client, {"old/1.jpg": PHOTOS[5]})
    photo = _photo_ids(eager_client)["old/1.jpg"]
    files = _files(embedded_settings, [photo])
    kept = eager_client.delete(f"/v1/photos/{photo}").json()
    assert sweep(embedded_settings).purged == []  # 30 days by default
    monkeypatch.setenv("PAWDEX_TRASH_RETENTION_DAYS", days)
    get_settings.cache_clear()
    short = get_settings()
    _upload(eager_client, {"old/2.jpg": PHOTOS[0]})
    second = _photo_ids(eager_client)["old/2.jpg"]
    with session_scope(short) as session:
        from pawdex.core.keys import find_active_key
        from pawdex.core.trash import trash_photos

        key = find_active_key(session, eager_client.headers["X-API-Key"])
        expiring = trash_photos(session, [second], key, short)
        session.flush()
        expiring_id = expiring.id
    assert sweep(short).purged == [expiring_id]
    states = {d["id"]: d["state"] for d in eager_client.get("/v1/trash").json()["items"]}
    assert states == {kept["id"]: "trash", expiring_id: "purged"}
    assert all(f.exists() for f in files)
    assert not any(f.exists() for f in _files(embedded_settings, [second]))


def test_the_trash_keeps_every_column_of_a_prediction():
    from pawdex.core.models import Prediction, TrashedPrediction

    def columns(model) -> dict[str, str]:
        return {c.name: type(c.type).__name__ for c in model.__table__.columns}

    assert columns(TrashedPrediction) == columns(Prediction)  # a new column must follow


def test_a_prediction_written_after_the_deletion_waits_in_the_trash_in_place_of_the_old(
    eager_client, embedded_settings
):
    """A re-index of every photo, queued before the deletion, classifies the photo after it:
    the new prediction joins the trash, replacing the one set aside, and a restore brings
    back that one alone (two would break the one-prediction-per-model rule)."""
    from sqlalchemy import func

    from pawdex.core.models import Prediction, TrashedPrediction
    from pawdex.core.trash import trashed_predictions_hidden

    _upload(eager_client, {"re/1.jpg": PHOTOS[1]})
    photo = eager_client.get("/v1/photos").json()["items"][0]
    deletion = eager_client.delete(f"/v1/photos/{photo['id']}").json()
    with session_scope(embedded_settings) as session:
        old = session.scalars(select(TrashedPrediction)).one()
        kept = ("model_version_id", "species", "breed", "catalog_species", "catalog_breed")
        columns = {c: getattr(old, c) for c in (*kept, "top_k")}
        newer = Prediction(
            image_id=photo["id"], confidence=0.123, species_confidence=0.9, labelled=False,
            **columns,
        )  # fmt: skip
        session.add(newer)
        session.flush()
        trashed_predictions_hidden(session, [photo["id"]])
        assert session.scalar(select(func.count()).select_from(Prediction)) == 0
        assert session.scalars(select(TrashedPrediction.confidence)).all() == [0.123]

    assert eager_client.post(f"/v1/trash/{deletion['id']}/restore").status_code == 200
    assert eager_client.get(f"/v1/photos/{photo['id']}").json()["confidence"] == 0.123


def test_a_photo_restored_after_its_job_was_purged_keeps_its_prediction(eager_client):
    """A photo deleted alone, then its job deleted and purged: the photo still restores,
    with the breed the model gave it, its prediction no longer tied to the purged job (as
    a live prediction's job is unset when its job goes). Found by the fuzz test: a 500."""
    from pawdex.core.models import Prediction

    job = _upload(eager_client, {"k/0.jpg": PHOTOS[4], "k/1.jpg": PHOTOS[5]})
    photo = _photo_ids(eager_client)["k/0.jpg"]
    breed = eager_client.get(f"/v1/photos/{photo}").json()["breed"]
    alone = eager_client.delete(f"/v1/photos/{photo}")
    assert alone.status_code == 200, alone.text
    with_job = eager_client.delete(f"/v1/jobs/{job['id']}").json()
    assert with_job["photos"] == 1  # the other photo: the first is in the trash already
    assert eager_client.delete(f"/v1/trash/{with_job['id']}").status_code == 200

    restored = eager_client.post(f"/v1/trash/{alone.json()['id']}/restore")
    assert restored.status_code == 200, restored.text
    assert _photo_ids(eager_client) == {"k/0.jpg": photo}
    assert eager_client.get(f"/v1/photos/{photo}").json()["breed"] == breed
    with session_scope() as session:
        assert session.scalars(
            select(Prediction.job_id).where(Prediction.image_id == photo)
        ).all() == [None]
