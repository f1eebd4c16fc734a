"""ONNX Runtime (the CPU default) must predict what eager PyTorch predicts, photo by photo,
whether a photo ran in a full batch of the graph's fixed size or in a padded one."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from pawdex.ml import BreedClassifier, load_classifier

pytestmark = pytest.mark.realphotos


def test_onnx_and_torch_agree_on_every_real_photo(
    classifier: BreedClassifier, labelled_photos
) -> None:
    assert classifier.runtime == "onnx"  # the session model: the runtime the worker uses
    eager = load_classifier("lite0-imagenet-dogs", device="cpu", runtime="torch")
    assert eager.version == classifier.version
    tensors = []
    for photo in labelled_photos:
        with Image.open(photo.path) as img:
            tensors.append(classifier.preprocess(img))
    batch = torch.stack(tensors)
    # Calls of 13 photos: a full chunk of the graph's fixed batch (8), then a short one padded
    # with zeros, so every photo goes through one or the other.
    assert classifier.forward_batch == 8
    fast = [p for chunk in batch.split(13) for p in classifier.predict_tensors(chunk)]
    slow = eager.predict_tensors(batch)
    assert len(fast) == len(slow) == len(labelled_photos)
    for a, b in zip(fast, slow, strict=True):
        assert (a.species, a.breed) == (b.species, b.breed)
        assert [name for name, _ in a.top_k] == [name for name, _ in b.top_k]
        assert a.confidence == pytest.approx(b.confidence, abs=1e-4)
        assert a.species_confidence == pytest.approx(b.species_confidence, abs=1e-4)
