"""Pure PyTorch models for pawdex: backbones, presets, breed classifiers."""

from ml.classifier import BreedClassifier, ImagenetDogsClassifier, Prediction
from ml.registry import CLASSIFIERS, DEFAULT_CLASSIFIER, load_classifier

__all__ = [
    "CLASSIFIERS",
    "DEFAULT_CLASSIFIER",
    "BreedClassifier",
    "ImagenetDogsClassifier",
    "Prediction",
    "load_classifier",
]
