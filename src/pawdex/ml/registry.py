"""Classifiers by name, as the CLI, the worker and the database know them."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from pawdex.ml.classifier import BreedClassifier, ImagenetDogsClassifier

DEFAULT_CLASSIFIER = "lite1-imagenet-dogs"  # docs/default-model.md

CLASSIFIERS: dict[str, Callable[..., BreedClassifier]] = {
    f"lite{n}-imagenet-dogs": partial(ImagenetDogsClassifier, f"efficientnet_lite{n}")
    for n in (0, 1, 2)
}


def load_classifier(
    name: str = DEFAULT_CLASSIFIER,
    device: str = "auto",
    runtime: str = "auto",
    cache_dir: Path | None = None,
) -> BreedClassifier:
    """The named classifier, not loaded yet: weights load on .load() or the first predict.
    ``runtime``: see ``ml.runtime`` (``auto`` = ONNX Runtime on CPU when installed)."""
    try:
        factory = CLASSIFIERS[name]
    except KeyError:
        raise ValueError(f"unknown classifier {name!r}; known: {', '.join(CLASSIFIERS)}") from None
    return factory(device=device, runtime=runtime, cache_dir=cache_dir)
