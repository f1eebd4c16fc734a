"""A model trained by ``pawdex train``, served from its versioned directory.

Breeds come from the trained head (over the classes it was trained on). Species comes from
the backbone's ImageNet classifier when the model kept one (the EfficientNet-Lite transfer
models do): the same dog / cat / other rule as the zero-training model. A model without one
(LeNet-5, the custom CNN) calls every photo a dog, unless it was trained with a
``_not_a_dog`` class, which then answers "other".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import torch
from torch import nn

from pawdex.ml.classifier import BreedClassifier, Prediction, imagenet_species, predictions_from
from pawdex.ml.presets import EvalPreset

NOT_A_DOG = "_not_a_dog"


class _Served(nn.Module):
    """Breed logits, then (when there is one) the 1000 ImageNet logits, in one tensor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.imagenet = getattr(model, "imagenet_classifier", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.imagenet is None:
            return self.model(x)
        features = self.model.features(x)
        return torch.cat([self.model.head(features), self.imagenet(features)], dim=1)


class TrainedClassifier(BreedClassifier):
    def __init__(
        self,
        path: str | Path,
        device: str = "auto",
        runtime: str = "auto",
        cache_dir: Path | None = None,
        calibration: Sequence[Path] = (),
    ) -> None:
        self.path = Path(path)
        if not (self.path / "model.json").is_file():
            raise ValueError(f"{self.path} is not a trained model directory (no model.json)")
        self.meta = json.loads((self.path / "model.json").read_text())
        self.classes: list[str] = json.loads((self.path / "classes.json").read_text())
        self.preprocessing = json.loads((self.path / "preprocessing.json").read_text())
        super().__init__(self.path.name, device, runtime, cache_dir, calibration)

    @property
    def weights_file(self) -> Path:
        return self.path / "weights.pt"

    @cached_property
    def preset(self) -> EvalPreset:
        return EvalPreset.from_data_config(self.preprocessing)

    def _build(self) -> nn.Module:
        from pawdex.ml.artifacts import load_model_dir

        model, _classes, _prep, _meta = load_model_dir(self.path, device="cpu")
        return _Served(model)

    @property
    def class_names(self) -> list[str]:
        return list(self.classes)

    def breed_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return logits[:, : len(self.classes)]

    def _decide(self, logits: torch.Tensor) -> list[Prediction]:
        n = len(self.classes)
        breed_logits, imagenet = logits[:, :n], logits[:, n:]
        dogs = [i for i, name in enumerate(self.classes) if name != NOT_A_DOG]
        if imagenet.shape[1] == 1000:
            species = imagenet_species(imagenet)
        elif len(dogs) < n:  # trained with a "not a dog" class
            other = breed_logits.softmax(dim=1)[:, self.classes.index(NOT_A_DOG)].tolist()
            species = [("other", p) if p > 0.5 else ("dog", 1 - p) for p in other]
        else:
            species = [("dog", 1.0)] * logits.shape[0]
        breed_probs = breed_logits[:, dogs].softmax(dim=1)
        return predictions_from(breed_probs, [self.classes[i] for i in dogs], species)
