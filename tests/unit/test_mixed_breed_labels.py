"""Mixed and unknown breed labels: through the API, the labels CSV and back, withdrawn,
and given to a whole animal."""

from __future__ import annotations

import csv
import io

import pytest

from tests.conftest import _eager_client, embedded_settings_at, make_key

KINDS = [  # body → (breeds, mix, breed_text)
    ({"species": "dog", "breed": "beagle"}, (["beagle"], False, "Beagle")),
    ({"species": "dog", "breeds": ["Lab"], "mix": True},
     (["Labrador_retriever"], True, "Labrador Retriever mix")),
    ({"species": "dog", "breeds": ["Labrador Retriever", "standard poodle"]},
     (["Labrador_retriever", "standard_poodle"], True,
      "Labrador Retriever \u00d7 Standard Poodle mix")),
    ({"species": "dog", "mix": True}, ([], True, "mixed breed")),
    ({"species": "dog"}, ([], False, "unknown breed")),
    ({"species": "cat"}, ([], False, None)),
]  # fmt: skip


@pytest.fixture
def photos(eager_client, labelled_photos):
    dogs = [p for p in labelled_photos if p.is_dog][:6]
    files = [("file", (p.path.name, p.path.read_bytes(), "image/jpeg")) for p in dogs]
    assert eager_client.post("/v1/images", files=files).status_code == 202
    return eager_client.get("/v1/photos", params={"limit": 50}).json()["items"]


def archivist(settings) -> dict[str, str]:
    return {"X-API-Key": make_key(settings, "archivist")}


def shown(photo: dict) -> tuple:
    return photo["breeds"], photo["mix"], photo["breed_text"]


def test_each_kind_of_label_round_trips_and_the_primary_breed_is_what_filters_find(
    eager_client, embedded_settings, photos
):
    keys = archivist(embedded_settings)
    before = {b["breed"]: b["count"] for b in eager_client.get("/v1/breeds").json()}
    for photo, (body, expected) in zip(photos, KINDS, strict=True):
        answer = eager_client.post(f"/v1/photos/{photo['id']}/label", json=body, headers=keys)
        assert answer.status_code == 200, answer.text
        assert shown(answer.json()) == expected
        again = eager_client.get(f"/v1/photos/{photo['id']}").json()
        assert shown(again) == expected and again["label_source"] == "human"
    labs = eager_client.get("/v1/photos", params={"breed": "labrador_retriever"}).json()
    lab_mixes = [p for p in labs["items"] if p["breed_text"] == "Labrador Retriever mix"]
    assert [p["id"] for p in lab_mixes] == [photos[1]["id"]]
    assert photos[2]["id"] in [p["id"] for p in labs["items"]]  # Lab and Poodle: Lab first
    tallies = {b["breed"]: b["count"] for b in eager_client.get("/v1/breeds").json()}
    counted = {b: n for b, n in tallies.items() if n}
    model_of = [p["breed"] for p in photos]  # what each photo counted for before
    expected = dict(before)
    for old in model_of:
        expected[old] -= 1
    for new in ("beagle", "Labrador_retriever", "Labrador_retriever"):
        expected[new] = expected.get(new, 0) + 1
    assert counted == {b: n for b, n in expected.items() if n}


def test_the_labels_csv_imports_into_a_fresh_database(
    eager_client, embedded_settings, photos, labelled_photos, monkeypatch, tmp_path, served_model
):
    keys = archivist(embedded_settings)
    for photo, (body, _) in zip(photos, KINDS, strict=True):
        eager_client.post(f"/v1/photos/{photo['id']}/label", json=body, headers=keys)
    exported = eager_client.get("/v1/labels").text
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert {r["breed_text"] for r in rows} >= {"Labrador Retriever mix", "mixed breed"}
    before = {p["sha256"]: shown(p) for p in eager_client.get("/v1/photos").json()["items"]}

    from pawdex.worker.model_cache import preload

    with embedded_settings_at(monkeypatch, tmp_path / "other") as other:
        preload(other)
        with _eager_client(other) as fresh:
            dogs = [p for p in labelled_photos if p.is_dog][:6][::-1]  # other ids
            files = [("file", (p.path.name, p.path.read_bytes(), "image/jpeg")) for p in dogs]
            assert fresh.post("/v1/images", files=files).status_code == 202
            upload = {"file": ("labels.csv", exported.encode(), "text/csv")}
            answer = fresh.post("/v1/labels", files=upload, headers=archivist(other))
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"received": 6, "applied": 6, "failed": 0, "errors": []}
            after = {p["sha256"]: shown(p) for p in fresh.get("/v1/photos").json()["items"]}
            assert after == before
            assert fresh.get("/v1/labels").text.count("\n") == exported.count("\n")


def test_bad_rows_are_reported_by_row_while_good_ones_apply(
    eager_client, embedded_settings, photos
):
    keys = archivist(embedded_settings)
    first, second = photos[0], photos[1]
    text = (
        "image_id,sha256,species,breed,breeds,mix,notes\n"
        f"{first['id']},,dog,,Lab,true,ignored\n"
        f",{second['sha256']},dog,,Labradoodle,false,\n"
        "999999,,dog,,beagle,false,\n"
        f"{second['id']},,cat,,beagle,false,\n"
        f"{second['id']},,dog,,golden;golden,maybe,\n"
    )
    answer = eager_client.post(
        "/v1/labels", content=text, headers={**keys, "Content-Type": "text/csv"}
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["received"], result["applied"], result["failed"]) == (5, 1, 4)
    assert [e["row"] for e in result["errors"]] == [3, 4, 5, 6]
    reasons = " | ".join(e["reason"] for e in result["errors"])
    assert "Labradoodle" in reasons and "999999" in reasons and "a cat has no breed" in reasons
    assert shown(eager_client.get(f"/v1/photos/{first['id']}").json())[2] == (
        "Labrador Retriever mix"
    )
    assert eager_client.get(f"/v1/photos/{second['id']}").json()["label_source"] == "model"

    bulk = {"items": [
        {"photo_id": first["id"], "species": "dog", "mix": True},
        {"photo_id": second["id"], "species": "dog", "breeds": ["Poodle"]},
    ]}  # fmt: skip
    answer = eager_client.post("/v1/labels", json=bulk, headers=keys).json()
    assert (answer["applied"], [e["row"] for e in answer["errors"]]) == (1, [1])
    assert "could be any of" in answer["errors"][0]["reason"]
    assert eager_client.get(f"/v1/photos/{first['id']}").json()["breed_text"] == "mixed breed"


def test_a_labels_file_that_stops_being_a_csv_is_a_400(eager_client, embedded_settings):
    keys = {**archivist(embedded_settings), "Content-Type": "text/csv"}
    huge_cell = "image_id,species\r\n1," + "x" * 140_000 + "\r\n"  # past csv's field limit
    answer = eager_client.post("/v1/labels", content=huge_cell, headers=keys)
    assert answer.status_code == 400, answer.text
    assert answer.json()["detail"].startswith("not a CSV after line")


def test_refused_labels_say_which_breed_and_what_it_could_be(
    eager_client, embedded_settings, photos
):
    keys = archivist(embedded_settings)
    url = f"/v1/photos/{photos[0]['id']}/label"
    cases = [
        ({"species": "dog", "breeds": ["beagle", "Labradoodle"]}, ["body", "breeds", 1]),
        ({"species": "dog", "breeds": ["beagle", "beagle"]}, ["body", "breeds"]),
        ({"species": "dog", "breed": "pug", "breeds": ["beagle"]}, ["body"]),
        ({"species": "cat", "breeds": ["beagle"]}, ["body"]),
        ({"species": "dog", "breeds": ["pug", "beagle", "boxer", "chow"]}, ["body", "breeds"]),
    ]
    for body, loc in cases:
        answer = eager_client.post(url, json=body, headers=keys)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["detail"][0]["loc"] == loc, answer.text
    detail = eager_client.post(url, json=cases[0][0], headers=keys).json()["detail"][0]
    assert "Labradoodle" in detail["msg"]


def test_a_withdrawn_label_leaves_the_model_answer_and_the_history(
    eager_client, embedded_settings, photos
):
    from sqlalchemy import select

    from pawdex.core.db import session_scope
    from pawdex.core.models import Label

    keys = archivist(embedded_settings)
    photo = photos[0]
    url = f"/v1/photos/{photo['id']}/label"
    assert eager_client.delete(url, headers=keys).status_code == 404
    eager_client.post(url, json={"species": "dog", "mix": True}, headers=keys)
    answer = eager_client.delete(url, headers=keys)
    assert answer.status_code == 200, answer.text
    assert answer.json()["label_source"] == "model"
    assert answer.json()["breed"] == photo["model_breed"]
    assert eager_client.delete(url, headers=keys).status_code == 404
    viewer = {"X-API-Key": make_key(embedded_settings, "viewer")}
    assert eager_client.delete(url, headers=viewer).status_code == 403
    with session_scope(embedded_settings) as session:
        label = session.scalar(select(Label).where(Label.image_id == photo["id"]))
        assert (label.current, label.withdrawn_by) == (False, "test archivist")
        assert label.withdrawn_at is not None and label.mix


def test_an_animal_label_labels_every_photo_and_shows_while_they_agree(
    eager_client, embedded_settings, photos
):
    keys = archivist(embedded_settings)
    ids = [p["id"] for p in photos[:3]]
    made = eager_client.post("/v1/animals", json={"photo_ids": ids}, headers=keys).json()
    assert made["label_source"] == "model"
    url = f"/v1/animals/{made['id']}/label"
    answer = eager_client.post(url, json={"species": "dog", "breeds": ["Lab"], "mix": True},
                               headers=keys)  # fmt: skip
    assert answer.status_code == 200, answer.text
    animal = answer.json()
    assert (animal["label_source"], animal["breed_text"]) == ("human", "Labrador Retriever mix")
    assert (animal["breed"], animal["breeds"], animal["mix"]) == (
        "Labrador_retriever", ["Labrador_retriever"], True,
    )  # fmt: skip
    for photo_id in ids:
        photo = eager_client.get(f"/v1/photos/{photo_id}").json()
        assert photo["breed_text"] == "Labrador Retriever mix"
    labelled = eager_client.get(f"/v1/animals/{made['id']}").json()["photos"]
    assert [p["label"] for p in labelled] == ["Labrador Retriever mix"] * 3
    eager_client.post(f"/v1/photos/{ids[0]}/label", json={"species": "dog", "breed": "pug"},
                      headers=keys)  # fmt: skip
    eager_client.post(f"/v1/photos/{ids[1]}/label", json={"species": "cat"}, headers=keys)
    disagreeing = eager_client.get(f"/v1/animals/{made['id']}").json()
    by_id = {p["id"]: p["label"] for p in disagreeing["photos"]}  # each photo its own label
    assert [by_id[i] for i in ids] == ["Pug", "cat", "Labrador Retriever mix"]
    assert disagreeing["label_source"] == "model"
    assert disagreeing["breed"] == made["breed"]
    assert eager_client.post("/v1/animals/999999/label", json={"species": "dog"},
                             headers=keys).status_code == 404  # fmt: skip
    withdrawn = eager_client.delete(url, headers=keys)
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["label_source"] == "model"
    assert all(eager_client.get(f"/v1/photos/{i}").json()["label_source"] == "model" for i in ids)
    assert eager_client.delete(url, headers=keys).status_code == 404  # none left


def test_the_model_says_when_it_is_torn_between_two_breeds(eager_client, photos):
    for photo in photos:
        top = photo["top_k"]
        close = top[0]["confidence"] - top[1]["confidence"] < 0.15
        if photo["species"] != "dog":
            continue
        if close:
            assert photo["uncertain_between"] == [top[0]["breed"], top[1]["breed"]]
            assert photo["breed_text"].startswith("uncertain between ")
        else:
            assert photo["uncertain_between"] is None
            assert "uncertain" not in photo["breed_text"]


def test_an_animal_says_when_its_pooled_breeds_are_too_close_to_call(
    eager_client, embedded_settings, photos, monkeypatch
):
    animals = eager_client.get("/v1/animals", params={"limit": 50}).json()["items"]
    first, *rest = animals  # six dogs of several breeds: one animal, pooled
    url = f"/v1/animals/{first['id']}"
    keys = archivist(embedded_settings)
    merged = eager_client.post(f"{url}/merge", json={"animal_ids": [a["id"] for a in rest]},
                               headers=keys)  # fmt: skip
    assert merged.status_code == 200, merged.text
    top = merged.json()["top_k"]
    gap = top[0]["confidence"] - top[1]["confidence"]
    assert (merged.json()["uncertain_between"] is not None) == (gap < 0.15)

    def seen(margin: float) -> tuple[dict, dict]:
        monkeypatch.setattr(embedded_settings, "uncertain_margin", margin)
        listed = eager_client.get("/v1/animals", params={"limit": 50}).json()["items"]
        return eager_client.get(url).json(), {a["id"]: a for a in listed}[first["id"]]

    for animal in seen(gap + 0.01):  # closer than the margin: torn between its top two
        assert animal["uncertain_between"] == [top[0]["breed"], top[1]["breed"]]
        assert animal["breed_text"].startswith("uncertain between ")
        assert animal["breed"] == top[0]["breed"]  # still filed under its likeliest breed
    for animal in seen(max(gap - 0.01, 0.0)):
        assert animal["uncertain_between"] is None
        assert "uncertain" not in animal["breed_text"]

    seen(gap + 0.01)  # a person's label is what it shows; the model's doubt stays visible
    labelled = eager_client.post(f"{url}/label", json={"species": "dog", "breed": "pug"},
                                 headers=keys).json()  # fmt: skip
    assert (labelled["label_source"], labelled["breed_text"]) == ("human", "Pug")
    assert labelled["uncertain_between"] == [top[0]["breed"], top[1]["breed"]]


def test_the_command_line_imports_a_labels_csv(eager_client, embedded_settings, photos, tmp_path):
    from typer.testing import CliRunner

    from pawdex.cli import app

    sheet = tmp_path / "labels.csv"
    sheet.write_text(
        "image_id,sha256,species,breeds,mix\n"
        f"{photos[0]['id']},{photos[0]['sha256']},dog,German Shepherd,true\n"
        f"{photos[1]['id']},,dog,Labradoodle,false\n"
    )
    result = CliRunner().invoke(app, ["labels", "import", str(sheet)])
    assert result.exit_code == 1, result.output
    assert "1 photos labelled, 1 rows refused" in result.output
    photo = eager_client.get(f"/v1/photos/{photos[0]['id']}").json()
    assert photo["breed_text"] == "German Shepherd mix" and photo["labeled_by"].startswith("cli")


def test_the_photos_csv_says_the_breed_as_people_write_it(eager_client, photos):
    import csv
    import io

    photo = photos[0]
    label = {"species": "dog", "breeds": ["Lab", "Standard Poodle"]}
    assert eager_client.post(f"/v1/photos/{photo['id']}/label", json=label).status_code == 200
    rows = list(csv.DictReader(io.StringIO(eager_client.get("/v1/photos?format=csv").text)))
    row = next(r for r in rows if r["id"] == str(photo["id"]))
    assert row["breed_text"] == "Labrador Retriever \u00d7 Standard Poodle mix"
    assert (row["breeds"], row["mix"]) == ("Labrador_retriever;standard_poodle", "true")
