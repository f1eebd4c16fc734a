"""Test-time augmentation for the zero-training ImageNet-dogs classifier.

The mirror image of a photo is as much a photo of the same dog, and the two forwards make
slightly different mistakes: averaging their logits is the cheapest ensemble the shipped
weights allow (``pawdex.study_default`` measures what it buys and what it costs:
docs/default-model.md).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import torch

from pawdex.ml.backbones import backbone_spec
from pawdex.ml.classifier import ImagenetDogsClassifier, Prediction
from pawdex.ml.devices import autocast
from pawdex.ml.presets import EvalPreset
from pawdex.model_names import imagenet_dogs_name


class FlipImagenetDogsClassifier(ImagenetDogsClassifier):
    """``ImagenetDogsClassifier`` read through the photo and its horizontal mirror.

    Each chunk goes through the model once with its mirrored copy stacked behind it (one
    forward of twice the rows, on either runtime: the exported graph is the plain model's), and
    the two rows' 1000 ImageNet logits are averaged before ``_decide``. Averaging logits is
    averaging log-probabilities up to a per-row constant, so both the species rule and the
    120-breed softmax see the geometric mean of the two views' probabilities.

    ``input_size``: a test-time resolution other than the model's own (the crop fraction is
    kept); ``flip=False`` leaves only that change.
    """

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        weights: str | Path | None = None,
        device: str = "auto",
        name: str | None = None,
        runtime: str = "auto",
        cache_dir: Path | None = None,
        *,
        flip: bool = True,
        input_size: int | None = None,
    ) -> None:
        self.flip = flip
        self._input_size_override = input_size
        size = f"-{input_size}" if input_size else ""
        variant = f"{backbone_spec(backbone).name}{size}{'-flip' if flip else ''}"
        default_name = imagenet_dogs_name(variant)
        super().__init__(backbone, weights, device, name or default_name, runtime, cache_dir)

    @cached_property
    def preset(self) -> EvalPreset:
        own = EvalPreset.from_timm_name(backbone_spec(self.backbone).timm_name)
        if not self._input_size_override:
            return own
        return own.replace(input_size=self._input_size_override)

    def predict_tensors(self, batch: torch.Tensor) -> list[Prediction]:
        if not self.flip:
            return super().predict_tensors(batch)
        self.load()
        forward = self._forward
        assert forward is not None
        logits = []
        with torch.inference_mode(), autocast(self.device):
            # Half a chunk of photos per call, so a call still carries forward_batch rows.
            for chunk in batch.split(max(1, self.forward_batch // 2)):
                both = forward(torch.cat([chunk, chunk.flip(3)]))
                logits.append(both.float().view(2, chunk.shape[0], -1).mean(dim=0))
        return self._decide(torch.cat(logits))
