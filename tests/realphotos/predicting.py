"""Predictions of a classifier over the real labelled photos (shared by the real-photo tests)."""

from __future__ import annotations

import torch
from PIL import Image

from pawdex.ml import BreedClassifier, Prediction

BATCH_SIZE = 32


def predict_all(model: BreedClassifier, photos) -> list[Prediction]:
    out: list[Prediction] = []
    for start in range(0, len(photos), BATCH_SIZE):
        tensors = []
        for photo in photos[start : start + BATCH_SIZE]:
            with Image.open(photo.path) as img:
                tensors.append(model.preprocess(img))
        out.extend(model.predict_tensors(torch.stack(tensors)))
    return out
