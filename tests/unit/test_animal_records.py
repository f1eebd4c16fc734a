"""Animal records from the shelter's software (``PATCH /v1/animals``): names and intake dates
for many animals at once, found by shelter id, from the CSV a shelter exports or from JSON;
bad rows are refused one by one, ids no photo has brought yet are listed apart."""

from __future__ import annotations

import pytest

from pawdex.core.animal_import import InvalidAnimalRows, read_animals_csv
from tests.conftest import make_key
from tests.unit.test_animals import _animals, _upload

# What a shelter's software exports: its own headers, columns pawdex does not read, a
# spreadsheet's BOM and a blank line.
EXPORT = (
    "\ufeffAnimal ID,Animal Name,Species,Intake Date,Kennel\r\n"
    "A1001,Bella,Dog,2024-03-18,K4\r\n"
    "a1002,Rex,Dog,,K5\r\n"
    ",,,,\r\n"
    "A1003,,Dog,18/03/2024,K6\r\n"
    "A9999,Ghost,Dog,2024-01-02,K7\r\n"
    ",Nobody,Dog,2024-01-02,K8\r\n"
)
JSON, CSV = {"Content-Type": "application/json"}, {"Content-Type": "text/csv"}


@pytest.fixture
def shelter(eager_client) -> dict[str, dict]:
    paths = ["2024/A1001/a.jpg", "2024/A1001/b.jpg", "2024/A1002/a.jpg", "2024/A1003/a.jpg"]
    assert _upload(eager_client, paths, "folder")["status"] == "succeeded"
    return {a["external_id"]: a for a in _animals(eager_client)}


@pytest.mark.parametrize("sent_as", ["file", "body"])
def test_a_shelter_export_names_and_dates_its_animals(eager_client, shelter, sent_as):
    if sent_as == "file":
        answer = eager_client.patch(
            "/v1/animals", files={"file": ("animals.csv", EXPORT.encode(), "text/csv")}
        )
    else:
        answer = eager_client.patch(
            "/v1/animals", content=EXPORT.encode(), headers={"Content-Type": "text/csv"}
        )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["received"], result["updated"], result["failed"]) == (5, 2, 2)
    assert (result["unknown"], result["unknown_ids"]) == (1, ["A9999"])
    assert result["errors"] == [
        {"row": 5, "reason": "intake_date '18/03/2024': write it as YYYY-MM-DD"},
        {"row": 7, "reason": "external_id: empty (the shelter's id of the animal)"},
    ]
    bella = eager_client.get(f"/v1/animals/{shelter['A1001']['id']}").json()
    assert (bella["name"], bella["intake_date"], bella["photo_count"]) == ("Bella", "2024-03-18", 2)
    rex = eager_client.get(f"/v1/animals/{shelter['A1002']['id']}").json()
    assert (rex["name"], rex["intake_date"]) == ("Rex", None)  # found in any case
    assert [a["name"] for a in _animals(eager_client, intake_after="2024-03-01")] == ["Bella"]


def test_json_records_leave_what_they_do_not_give_and_the_last_row_counts(eager_client, shelter):
    first = eager_client.patch(
        "/v1/animals",
        json={"items": [{"external_id": "A1003", "name": "Molly", "intake_date": "2024-05-01"}]},
    )
    assert first.json()["updated"] == 1, first.text
    again = eager_client.patch(
        "/v1/animals",
        json={"items": [
            {"external_id": "A1003", "name": "Dolly"},
            {"external_id": "a1003", "intake_date": "2024-05-02"},
            {"external_id": "  "},
        ]},
    )  # fmt: skip
    assert again.status_code == 200, again.text
    assert (again.json()["updated"], again.json()["failed"]) == (1, 1)
    molly = eager_client.get(f"/v1/animals/{shelter['A1003']['id']}").json()
    assert (molly["name"], molly["intake_date"]) == ("Dolly", "2024-05-02")
    cleared = eager_client.patch("/v1/animals", json={"items": [{"external_id": "A1003",
                                                                 "name": ""}]})  # fmt: skip
    assert cleared.status_code == 200
    assert eager_client.get(f"/v1/animals/{shelter['A1003']['id']}").json()["name"] is None


def test_animals_in_the_trash_are_not_updated(eager_client, shelter):
    assert eager_client.delete(f"/v1/animals/{shelter['A1002']['id']}").status_code == 200
    answer = eager_client.patch("/v1/animals", json={"items": [{"external_id": "A1002",
                                                                "name": "Rex"}]})  # fmt: skip
    assert (answer.json()["updated"], answer.json()["unknown_ids"]) == (0, ["A1002"])


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"Kennel,Colour\r\nK4,black\r\n", CSV, 400),  # no id column
        (b"Animal ID,Kennel\r\nA1001,K4\r\n", CSV, 400),  # nothing to set
        (b"\xff\xfe\x00A", CSV, 400),  # not UTF-8
        ("\x147\u009b\r2".encode(), CSV, 400),  # the fuzz test's: a bare CR ends a line
        (b"animal_id,name\r\nA1," + b"x" * 140_000 + b"\r\n", CSV, 400),  # past the field limit
        (b'{"items": []}', JSON, 422),
        (b'{"items": [{"external_id": "A1", "intake_date": 0}]}', JSON, 422),
        (b"not json", JSON, 422),
    ],
)
def test_a_request_that_is_not_animal_records_is_refused_whole(eager_client, body, headers, status):
    answer = eager_client.patch("/v1/animals", content=body, headers=headers)
    assert answer.status_code == status, answer.text


def test_viewers_cannot_import_and_a_huge_export_is_refused(eager_client, embedded_settings):
    viewer = {"X-API-Key": make_key(embedded_settings, "viewer")}
    sent = {"items": [{"external_id": "A1001", "name": "Bella"}]}
    assert eager_client.patch("/v1/animals", json=sent, headers=viewer).status_code == 403
    rows = "".join(f"A{i},Dog {i}\r\n" for i in range(20_001))
    with pytest.raises(InvalidAnimalRows, match="at most 20000 rows"):
        read_animals_csv("animal_id,name\r\n" + rows)
