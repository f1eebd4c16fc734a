"""The ml package's public interface: registry, classes, presets, prediction invariants."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from pawdex.ml import CLASSIFIERS, BreedClassifier, Prediction, load_classifier
from pawdex.ml.backbones import BackboneWeightsError, create_backbone
from pawdex.ml.classes import (
    BREED_NAMES,
    IMAGENET_DOG_INDICES,
    STANFORD_DOGS,
    breed_wnid,
    stanford_dogs_imagenet_indices,
)
from pawdex.ml.devices import resolve_device
from pawdex.ml.presets import EvalPreset


def generated_images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (180, 320, 3), dtype=np.uint8))
    gradient = Image.fromarray(np.tile(np.arange(256, dtype=np.uint8), (200, 1)), mode="L")
    return [noise, gradient, Image.new("RGBA", (64, 500), (200, 40, 40, 128))]


def test_registry_knows_the_three_imagenet_dog_models() -> None:
    assert set(CLASSIFIERS) == {f"lite{n}-imagenet-dogs" for n in (0, 1, 2)}


def test_unknown_classifier_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="lite0-imagenet-dogs") as excinfo:
        load_classifier("resnet-9000")
    assert "resnet-9000" in str(excinfo.value)


def test_load_classifier_does_not_load_weights() -> None:
    model = load_classifier("lite0-imagenet-dogs", device="cpu")
    assert isinstance(model, BreedClassifier)
    assert not model.loaded
    assert model.input_size == 224
    assert re.fullmatch(r"lite0-imagenet-dogs@[0-9a-f]{8}", model.version)
    assert not model.loaded


def test_unknown_backbone_and_missing_weights_are_clear_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        create_backbone("vgg16")
    with pytest.raises(BackboneWeightsError, match="not found"):
        create_backbone("efficientnet_lite0", weights=tmp_path / "absent.pth")


def test_backbone_loads_a_local_timm_state_dict(tmp_path) -> None:
    shipped = create_backbone("efficientnet_lite0")
    path = tmp_path / "lite0.pth"
    torch.save(shipped.state_dict(), path)
    local = create_backbone("efficientnet_lite0", weights=path)
    assert torch.equal(local.classifier.weight, shipped.classifier.weight)


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in {"cpu", "cuda"}


def test_stanford_dogs_has_120_unique_breeds() -> None:
    assert len(STANFORD_DOGS) == 120
    assert len(set(BREED_NAMES)) == 120
    assert {"golden_retriever", "Brittany_spaniel"} <= set(BREED_NAMES)
    assert breed_wnid("golden_retriever") == "n02099601"


def test_stanford_dogs_are_imagenet_dog_synsets() -> None:
    indices = stanford_dogs_imagenet_indices()
    assert len(set(indices)) == 120
    assert set(indices) <= set(IMAGENET_DOG_INDICES)
    assert 251 not in indices  # dalmatian: an ImageNet dog, not a Stanford Dogs class


@pytest.mark.parametrize("img", generated_images(), ids=["rgb", "grayscale", "rgba-tall"])
def test_eval_preset_gives_normalised_square_tensors(img: Image.Image) -> None:
    preset = EvalPreset.from_timm_name("tf_efficientnet_lite0")
    out = preset(img)
    assert out.shape == (3, 224, 224)
    assert out.dtype == torch.float32
    assert out.min() >= -1.0 and out.max() <= 1.0  # mean = std = 0.5 for this model


def test_eval_preset_follows_the_model() -> None:
    model = create_backbone("efficientnet_lite2", pretrained=False)
    preset = EvalPreset.from_model(model)
    assert preset.input_size == 260
    assert preset.config == EvalPreset.from_timm_name("tf_efficientnet_lite2").config


def test_predictions_are_well_formed(classifier: BreedClassifier) -> None:
    predictions = classifier.predict(generated_images())
    assert len(predictions) == 3
    for p in predictions:
        assert isinstance(p, Prediction)
        assert p.species in {"dog", "cat", "other"}
        assert (p.breed is None) == (p.species != "dog")
        assert len(p.top_k) == 5
        probs = [prob for _, prob in p.top_k]
        assert probs == sorted(probs, reverse=True)
        assert all(name in BREED_NAMES for name, _ in p.top_k)
        assert all(0.0 <= prob <= 1.0 for prob in probs)
        assert p.confidence == p.top_k[0][1]
        assert 0.0 <= p.species_confidence <= 1.0
        if p.breed is not None:
            assert p.breed == p.top_k[0][0]


def test_predict_nothing(classifier: BreedClassifier) -> None:
    assert classifier.predict([]) == []


def test_the_default_model_is_the_winner_of_the_default_model_study() -> None:
    """docs/default-model.md: Lite1, top-1 0.808 vs Lite0's 0.768 at 0.62x its speed."""
    from pawdex.core.settings import Settings
    from pawdex.ml import DEFAULT_CLASSIFIER

    assert DEFAULT_CLASSIFIER == Settings.model_fields["model"].default == "lite1-imagenet-dogs"
    assert load_classifier().name == "lite1-imagenet-dogs"
