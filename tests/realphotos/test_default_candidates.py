"""The study's winner (docs/default-model.md) against today's default, on the real photos."""

from __future__ import annotations

import pytest

from bench.tta import FlipImagenetDogsClassifier
from pawdex.ml import BreedClassifier, Prediction, load_classifier
from pawdex.ml.backbones import BackboneWeightsError
from tests.realphotos.predicting import predict_all

pytestmark = pytest.mark.realphotos

WINNER = "lite1-imagenet-dogs"  # pawdex.study_default: best top-1 at >= 0.5x lite0's img/s


def top1(photos, predictions: list[Prediction]) -> float:
    pairs = [(ph, p) for ph, p in zip(photos, predictions, strict=True) if ph.is_dog]
    return sum(p.breed == ph.breed for ph, p in pairs) / len(pairs)


@pytest.fixture(scope="module")
def winner_predictions(labelled_photos) -> list[Prediction]:
    model = load_classifier(WINNER, device="cpu")
    try:
        model.load()
    except BackboneWeightsError as exc:  # its weights are in the optional `models` extra
        pytest.skip(str(exc))
    return predict_all(model, labelled_photos)


def test_winner_beats_the_current_default_at_top1(
    classifier: BreedClassifier, labelled_photos, winner_predictions
) -> None:
    assert classifier.name == "lite0-imagenet-dogs"
    baseline = top1(labelled_photos, predict_all(classifier, labelled_photos))
    assert top1(labelled_photos, winner_predictions) > baseline + 0.02  # 0.808 vs 0.768


def test_winner_keeps_dogs_and_not_dogs_apart(labelled_photos, winner_predictions) -> None:
    correct = [
        (p.species == "dog") == photo.is_dog
        for photo, p in zip(labelled_photos, winner_predictions, strict=True)
    ]
    assert sum(correct) / len(correct) >= 0.95
    top5 = [
        photo.breed in {name for name, _ in p.top_k}
        for photo, p in zip(labelled_photos, winner_predictions, strict=True)
        if photo.is_dog
    ]
    assert sum(top5) / len(top5) >= 0.95


def test_flip_tta_names_itself_and_agrees_across_runtimes(
    classifier: BreedClassifier, labelled_photos
) -> None:
    """The study's flip candidate (measured, not the winner): same answers on both runtimes,
    a version that says which model made them."""
    onnx = FlipImagenetDogsClassifier(device="cpu", runtime="onnx")
    eager = FlipImagenetDogsClassifier(device="cpu", runtime="torch")
    assert onnx.version == eager.version
    assert onnx.version == classifier.version.replace("lite0-", "lite0-flip-")
    photos = labelled_photos[::27]  # 8 photos, spread over the breeds and the non-dogs
    for a, b in zip(predict_all(onnx, photos), predict_all(eager, photos), strict=True):
        assert (a.species, a.breed) == (b.species, b.breed)
        assert a.confidence == pytest.approx(b.confidence, abs=1e-4)
