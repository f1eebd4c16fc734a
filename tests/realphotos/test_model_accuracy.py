"""The default model on the real labelled photos beside the repository."""

from __future__ import annotations

import pytest

from pawdex.ml import BreedClassifier, Prediction
from tests.realphotos.predicting import predict_all

pytestmark = pytest.mark.realphotos


@pytest.fixture(scope="module")
def predictions(classifier: BreedClassifier, labelled_photos) -> list[Prediction]:
    return predict_all(classifier, labelled_photos)


def dog_pairs(labelled_photos, predictions):
    return [
        (photo, p) for photo, p in zip(labelled_photos, predictions, strict=True) if photo.is_dog
    ]


def test_top1_breed_on_dog_photos(labelled_photos, predictions) -> None:
    pairs = dog_pairs(labelled_photos, predictions)
    top1 = sum(p.breed == photo.breed for photo, p in pairs) / len(pairs)
    assert top1 >= 0.74


def test_top5_breeds_on_dog_photos(labelled_photos, predictions) -> None:
    pairs = dog_pairs(labelled_photos, predictions)
    top5 = sum(photo.breed in {name for name, _ in p.top_k} for photo, p in pairs) / len(pairs)
    assert top5 >= 0.93


def test_dog_or_not_dog(labelled_photos, predictions) -> None:
    correct = [
        (p.species == "dog") == photo.is_dog
        for photo, p in zip(labelled_photos, predictions, strict=True)
    ]
    assert sum(correct) / len(correct) >= 0.95


def test_cats_are_cats(labelled_photos, predictions) -> None:
    cats = {
        photo.path.name: p.species
        for photo, p in zip(labelled_photos, predictions, strict=True)
        if not photo.is_dog and ("cat" in photo.path.name or "chelsea" in photo.path.name)
    }
    assert cats, "no cat photos found"
    assert set(cats.values()) == {"cat"}, cats
