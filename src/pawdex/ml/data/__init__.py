"""Training data: datasets and splits (``datasets``) and the Stanford Dogs layout
(``stanford_dogs``)."""

from pawdex.ml.data.datasets import (
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
