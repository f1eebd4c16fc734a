"""Pure PyTorch models for pawdex: backbones, presets, breed classifiers.

Everything here is torch's world: the API never imports this package (the breed list it needs
is ``pawdex.taxonomy``), and nothing here imports the database or the service.
"""

from pawdex.ml.classifier import BreedClassifier, ImagenetDogsClassifier, Prediction
from pawdex.ml.registry import CLASSIFIERS, DEFAULT_CLASSIFIER, load_classifier

__all__ = [
    "CLASSIFIERS",
    "DEFAULT_CLASSIFIER",
    "BreedClassifier",
    "ImagenetDogsClassifier",
    "Prediction",
    "load_classifier",
]
