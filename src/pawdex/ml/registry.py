"""Classifiers by name, as the CLI, the worker and the database know them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from pawdex.ml.backbones import BACKBONES
from pawdex.ml.classifier import BreedClassifier, ImagenetDogsClassifier
from pawdex.model_names import DEFAULT_MODEL, imagenet_dogs_name

DEFAULT_CLASSIFIER = DEFAULT_MODEL

CLASSIFIERS: dict[str, Callable[..., BreedClassifier]] = {
    imagenet_dogs_name(backbone): partial(ImagenetDogsClassifier, backbone)
    for backbone in BACKBONES
}


def load_classifier(
    name: str = DEFAULT_CLASSIFIER,
    device: str = "auto",
    runtime: str = "auto",
    cache_dir: Path | None = None,
    calibration: Sequence[Path] = (),
) -> BreedClassifier:
    """The named classifier, not loaded yet: weights load on .load() or the first predict.
    ``runtime``: see ``ml.runtime`` (``auto`` = ONNX Runtime on CPU when installed);
    ``calibration``: the photos ``onnx-int8`` is calibrated on (``ml.quantize``)."""
    try:
        factory = CLASSIFIERS[name]
    except KeyError:
        raise ValueError(f"unknown classifier {name!r}; known: {', '.join(CLASSIFIERS)}") from None
    return factory(device=device, runtime=runtime, cache_dir=cache_dir, calibration=calibration)
