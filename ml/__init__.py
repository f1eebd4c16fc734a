"""Pure PyTorch models for pawdex: backbones, presets, breed classifiers.

The package's names load lazily, so ``ml.classes`` (the breed list) can be read by the API
without importing torch."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ml.classifier import BreedClassifier, ImagenetDogsClassifier, Prediction
    from ml.registry import CLASSIFIERS, DEFAULT_CLASSIFIER, load_classifier

_EXPORTS = {
    "BreedClassifier": "ml.classifier",
    "ImagenetDogsClassifier": "ml.classifier",
    "Prediction": "ml.classifier",
    "CLASSIFIERS": "ml.registry",
    "DEFAULT_CLASSIFIER": "ml.registry",
    "load_classifier": "ml.registry",
}

__all__ = [
    "CLASSIFIERS",
    "DEFAULT_CLASSIFIER",
    "BreedClassifier",
    "ImagenetDogsClassifier",
    "Prediction",
    "load_classifier",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ml' has no attribute {name!r}")
