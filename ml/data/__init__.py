"""Training data for the ml package: datasets and splits (``ml.data.datasets``), the Stanford
Dogs layout (``ml.data.stanford_dogs``), and the shipped class list.

The names load lazily: ``ml.classes`` reads the class list through this package, and the API
imports that without torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ml.data.datasets import (
        DatasetSplit,
        PhotoDataset,
        Sample,
        load_dataset,
        parse_breeds,
        stratified_split,
    )

__all__ = [
    "DatasetSplit",
    "PhotoDataset",
    "Sample",
    "load_dataset",
    "parse_breeds",
    "stratified_split",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module("ml.data.datasets"), name)
    raise AttributeError(f"module 'ml.data' has no attribute {name!r}")
