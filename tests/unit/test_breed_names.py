"""Breeds as people type them, through the photo filters of the HTTP API."""

from __future__ import annotations

import pytest

from pawdex.core.breeds import UnknownBreed, resolve_breed
from pawdex.taxonomy import BREED_NAMES


@pytest.mark.parametrize(
    ("typed", "breed"),
    [
        ("Lab", "Labrador_retriever"),
        ("labrador retriever", "Labrador_retriever"),
        ("German Shepherd", "German_shepherd"),
        ("german-shepherd dog", "German_shepherd"),
        ("Pit Bull", "American_Staffordshire_terrier"),
        ("YORKIE", "Yorkshire_terrier"),
        ("golden_retriever", "golden_retriever"),
        ("  Shih Tzu ", "Shih-Tzu"),
        ("husky", "Siberian_husky"),
    ],
)
def test_common_names_find_their_class(typed, breed):
    assert resolve_breed(typed) == breed


def test_every_class_is_found_by_its_own_name_in_any_case():
    for name in BREED_NAMES:
        assert resolve_breed(name.upper().replace("_", " ")) == name


def test_an_ambiguous_or_unknown_name_lists_what_it_could_mean():
    with pytest.raises(UnknownBreed, match="toy_poodle, miniature_poodle, standard_poodle"):
        resolve_breed("Poodle")
    with pytest.raises(UnknownBreed, match=r"close: .*Labrador_retriever"):
        resolve_breed("labradorr")
    with pytest.raises(UnknownBreed, match="GET /v1/breeds/all"):
        resolve_breed("zzzz")


def test_the_photo_filters_take_common_names_and_explain_unknown_ones(eager_client):
    assert eager_client.get("/v1/photos", params={"breed": "Lab"}).status_code == 200
    answer = eager_client.get("/v1/photos", params={"breed": "Labradorr"})
    assert answer.status_code == 422
    (problem,) = answer.json()["detail"]  # shaped as any invalid parameter's
    assert problem["loc"] == ["query", "breed"]
    assert "Labrador_retriever" in problem["msg"]
    csv = eager_client.get("/v1/photos", params={"breed": "pitbull", "format": "csv"})
    assert csv.status_code == 200


def test_a_common_name_finds_the_photos_of_its_breed(eager_client):
    from tests.factories import jpeg_bytes

    accepted = eager_client.post(
        "/v1/images", files={"file": ("rex.jpg", jpeg_bytes(seed=3), "image/jpeg")}
    )
    assert accepted.status_code == 202
    (photo,) = eager_client.get("/v1/photos").json()["items"]
    labelled = eager_client.post(
        f"/v1/photos/{photo['id']}/label", json={"species": "dog", "breed": "Labrador_retriever"}
    )
    assert labelled.status_code == 200, labelled.text
    found = eager_client.get("/v1/photos", params={"breed": "lab"}).json()["items"]
    assert [p["id"] for p in found] == [photo["id"]]
    assert eager_client.get("/v1/photos", params={"breed": "Beagle"}).json()["items"] == []
