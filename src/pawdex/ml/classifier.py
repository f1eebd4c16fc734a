"""Breed classifiers: one small interface, load() once, predict() many times."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from pawdex.fileio import file_sha256
from pawdex.ml.backbones import backbone_spec, create_backbone, weights_path
from pawdex.ml.classes import (
    BREED_NAMES,
    IMAGENET_DOG_INDICES,
    IMAGENET_FELID_INDICES,
    stanford_dogs_imagenet_indices,
)
from pawdex.ml.devices import autocast, resolve_device
from pawdex.ml.presets import EvalPreset
from pawdex.ml.quantize import Calibration
from pawdex.ml.runtime import Forward, make_forward, resolve_runtime
from pawdex.model_names import imagenet_dogs_name
from pawdex.taxonomy import SPECIES

TOP_K = 5


@dataclass(frozen=True)
class Prediction:
    species: str  # "dog", "cat" or "other"
    breed: str | None  # Stanford Dogs name when species == "dog", else None
    confidence: float  # probability of `breed` among the 120 breeds
    top_k: list[tuple[str, float]]  # best breeds, renormalised over the 120, best first
    species_confidence: float


class BreedClassifier(ABC):
    """Image → species and most probable breed. Loads lazily; one instance per process."""

    name: str

    def __init__(
        self,
        name: str,
        device: str = "auto",
        runtime: str = "auto",
        cache_dir: Path | None = None,
        calibration: Sequence[Path] = (),
    ) -> None:
        self.name = name
        self.device = resolve_device(device)
        self.calibration = tuple(calibration)  # photos an int8 graph is calibrated on
        self.runtime = resolve_runtime(runtime, self.device, calibrated=bool(self.calibration))
        self.cache_dir = cache_dir  # where exported ONNX graphs are kept
        self._forward: Forward | None = None
        self._lock = threading.Lock()

    @property
    @abstractmethod
    def weights_file(self) -> Path:
        """The local file the weights come from (names the version)."""

    @property
    @abstractmethod
    def preset(self) -> EvalPreset:
        """Preprocessing the model expects."""

    @abstractmethod
    def _build(self) -> nn.Module:
        """The model with its weights, on CPU."""

    @abstractmethod
    def _decide(self, logits: torch.Tensor) -> list[Prediction]:
        """Float32 CPU logits (N, C) → one prediction per row."""

    @cached_property
    def version(self) -> str:
        return f"{self.name}@{file_sha256(self.weights_file)[:8]}"

    @property
    def input_size(self) -> int:
        return self.preset.input_size

    @property
    def loaded(self) -> bool:
        return self._forward is not None

    def load(self) -> None:
        """Build the model and move it to the device; later calls do nothing."""
        with self._lock:
            if self._forward is None:
                calibration = None
                if self.runtime == "onnx-int8" and self.calibration:
                    calibration = Calibration.of_photos(self.calibration, self.preprocess)
                self._forward = make_forward(
                    lambda: self._build().eval(), self.device, self.runtime, self.input_size,
                    cache_name=self.version, cache_dir=self.cache_dir,
                    batch=self.forward_batch, calibration=calibration,
                )  # fmt: skip

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        return self.preset(img)

    @property
    def forward_batch(self) -> int:
        """Largest batch one forward call takes, and the batch ONNX graphs are exported at. On
        CPU, throughput is flat from 8 to 32 and falls at 64 (``pawdex bench``: 28.4, 27.1,
        27.6, 24.1 img/s), and a small chunk keeps the activations small and wastes little
        on padding a short last chunk; on CUDA, large batches are what feeds the GPU."""
        return 256 if self.device.type == "cuda" else 8

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """The model's raw output for a preprocessed (N, 3, H, W) batch, ``forward_batch``
        at a time (float32, CPU)."""
        self.load()
        assert self._forward is not None
        with torch.inference_mode(), autocast(self.device):
            return torch.cat([self._forward(chunk) for chunk in batch.split(self.forward_batch)])

    def predict_tensors(self, batch: torch.Tensor) -> list[Prediction]:
        return self._decide(self.logits(batch))

    @property
    @abstractmethod
    def class_names(self) -> list[str]:
        """The breeds (and, for trained models, any other class) the model tells apart."""

    @abstractmethod
    def breed_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """The columns of ``logits`` that are ``class_names``, in that order (evaluation)."""

    def prepare(self, img: Image.Image) -> Image.Image:
        """The geometric part of the preprocessing (Pillow only: safe in decode threads)."""
        return self.preset.resize_crop(img)

    def predict_prepared(self, crops: Sequence[Image.Image]) -> list[Prediction]:
        """One forward pass over ``prepare`` outputs, batched into a tensor here."""
        if not crops:
            return []
        return self.predict_tensors(self.preset.batch(crops))

    def predict(self, images: Sequence[Image.Image]) -> list[Prediction]:
        return self.predict_prepared([self.prepare(img) for img in images])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, device={str(self.device)!r}, "
            f"runtime={self.runtime!r})"
        )


class ImagenetDogsClassifier(BreedClassifier):
    """Zero-training baseline: an ImageNet-1k model read through its dog and cat classes.

    Breed: the 120 Stanford Dogs logits, softmaxed among themselves.

    Species: the 1000-way softmax with its dog synsets (151-268, 273-275) merged into one
    class "dog" and its cat-family synsets (281-293) into one class "cat", every other
    ImageNet class kept as it is; the argmax of that coarser distribution decides. A rule
    without a threshold: a photo is a dog when dogs as a whole outweigh cats as a whole and
    each single other class. species_confidence is the summed probability of the species
    (for "other": everything that is neither dog nor cat).
    """

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        weights: str | Path | None = None,
        device: str = "auto",
        name: str | None = None,
        runtime: str = "auto",
        cache_dir: Path | None = None,
        calibration: Sequence[Path] = (),
    ) -> None:
        self.backbone = backbone_spec(backbone).name
        self.weights = weights
        name = name or imagenet_dogs_name(self.backbone)
        super().__init__(name, device, runtime, cache_dir, calibration)
        self._breed_index = torch.tensor(stanford_dogs_imagenet_indices())

    @cached_property
    def weights_file(self) -> Path:
        return weights_path(self.backbone, self.weights)

    @cached_property
    def preset(self) -> EvalPreset:
        return EvalPreset.from_timm_name(backbone_spec(self.backbone).timm_name)

    def _build(self) -> nn.Module:
        return create_backbone(self.backbone, weights=self.weights_file)

    @property
    def class_names(self) -> list[str]:
        return list(BREED_NAMES)

    def breed_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return logits[:, self._breed_index]

    def _decide(self, logits: torch.Tensor) -> list[Prediction]:
        species = imagenet_species(logits)
        breed_probs = logits[:, self._breed_index].softmax(dim=1)
        return predictions_from(breed_probs, BREED_NAMES, species)


def imagenet_species(logits: torch.Tensor) -> list[tuple[str, float]]:
    """Species per row of 1000-way ImageNet logits (see ImagenetDogsClassifier), with the
    summed probability of that species."""
    probs = logits.softmax(dim=1)
    dog = probs[:, list(IMAGENET_DOG_INDICES)].sum(dim=1)
    cat = probs[:, list(IMAGENET_FELID_INDICES)].sum(dim=1)
    other_mask = torch.ones(probs.shape[1], dtype=torch.bool)
    other_mask[list(IMAGENET_DOG_INDICES) + list(IMAGENET_FELID_INDICES)] = False
    best_other = probs[:, other_mask].amax(dim=1)
    species_i = torch.stack([dog, cat, best_other], dim=1).argmax(dim=1)
    mass = torch.stack([dog, cat, (1 - dog - cat).clamp(0, 1)], dim=1)
    species_p = mass.gather(1, species_i[:, None])[:, 0]
    return [
        (SPECIES[i], float(p)) for i, p in zip(species_i.tolist(), species_p.tolist(), strict=True)
    ]


def predictions_from(
    breed_probs: torch.Tensor, names: Sequence[str], species: Sequence[tuple[str, float]]
) -> list[Prediction]:
    """One Prediction per row: the top breeds of ``breed_probs`` (columns named by ``names``)
    and the row's species; a photo that is not a dog has no breed."""
    top_p, top_i = breed_probs.topk(min(TOP_K, breed_probs.shape[1]), dim=1)
    predictions = []
    for row, (kind, kind_p) in enumerate(species):
        top_k = [
            (names[i], float(p))
            for i, p in zip(top_i[row].tolist(), top_p[row].tolist(), strict=True)
        ]
        predictions.append(
            Prediction(
                species=kind,
                breed=top_k[0][0] if kind == "dog" else None,
                confidence=top_k[0][1],
                top_k=top_k,
                species_confidence=kind_p,
            )
        )
    return predictions
