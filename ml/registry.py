"""Classifiers by name, as the CLI, the worker and the database know them."""

from __future__ import annotations

from collections.abc import Callable

from ml.classifier import BreedClassifier, ImagenetDogsClassifier

DEFAULT_CLASSIFIER = "lite0-imagenet-dogs"

CLASSIFIERS: dict[str, Callable[[str], BreedClassifier]] = {
    f"lite{n}-imagenet-dogs": (
        lambda device, n=n: ImagenetDogsClassifier(f"efficientnet_lite{n}", device=device)
    )
    for n in (0, 1, 2)
}


def load_classifier(name: str = DEFAULT_CLASSIFIER, device: str = "auto") -> BreedClassifier:
    """The named classifier, not loaded yet: weights load on .load() or the first predict."""
    try:
        factory = CLASSIFIERS[name]
    except KeyError:
        raise ValueError(f"unknown classifier {name!r}; known: {', '.join(CLASSIFIERS)}") from None
    return factory(device)
