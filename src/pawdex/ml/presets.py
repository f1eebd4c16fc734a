"""Preprocessing presets: what a model says it needs, as torchvision transforms.

Evaluation and serving preprocess in one way, built by ``eval_transform``: resize the shorter
side to ``floor(size / crop_pct)``, centre-crop ``size``, then float and normalise. Every path
uses it: the served classifiers (``EvalPreset``), evaluation while training
(``ml.augment.eval_transform``, which adds a spec's deterministic ops), trained model
directories and the bench's variants (``EvalPreset.replace``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import timm
import torch
from PIL import Image
from timm.data import resolve_data_config
from torch import nn
from torchvision.transforms import InterpolationMode, v2

DATA_CONFIG_KEYS = ("input_size", "mean", "std", "crop_pct", "interpolation")
DEFAULT_CROP_PCT = 0.875  # timm's default: resize to size / 0.875, centre-crop size
DEFAULT_INTERPOLATION = "bicubic"
INTERPOLATIONS: dict[str, InterpolationMode] = {
    "bicubic": InterpolationMode.BICUBIC,
    "bilinear": InterpolationMode.BILINEAR,
    "nearest": InterpolationMode.NEAREST,
}


def interpolation_mode(name: str) -> InterpolationMode:
    """The torchvision mode of a timm interpolation name (Pillow's filter on PIL images)."""
    try:
        return INTERPOLATIONS[name]
    except KeyError:
        known = ", ".join(INTERPOLATIONS)
        raise ValueError(f"unknown interpolation {name!r}; known: {known}") from None


def timm_data_config(timm_name: str | None = None, model: nn.Module | None = None) -> dict:
    """timm's evaluation data config of a model (built) or of a timm name (without building
    it): ``{"input_size": (3, H, W), "mean", "std", "crop_pct", "interpolation"}``."""
    if model is not None:
        resolved = resolve_data_config({}, model=model)
    else:
        cfg = timm.models.get_pretrained_cfg(timm_name)
        resolved = resolve_data_config({}, pretrained_cfg=cfg.to_dict() if cfg else {})
    return {
        key: tuple(resolved[key]) if isinstance(resolved[key], list | tuple) else resolved[key]
        for key in DATA_CONFIG_KEYS
    }


def to_float(
    mean: Sequence[float], std: Sequence[float], normalize: v2.Transform | None = None
) -> list[v2.Transform]:
    """Image → float32 in [0, 1], normalised by ``mean``/``std`` (or by ``normalize``), as a
    plain tensor (batches collate to torch.Tensor, as in torchvision's references)."""
    return [
        v2.ToDtype(torch.float32, scale=True),
        normalize or v2.Normalize(mean=list(mean), std=list(std)),
        v2.ToPureTensor(),
    ]


def eval_transform(
    input_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    interpolation: str = DEFAULT_INTERPOLATION,
    crop_pct: float = DEFAULT_CROP_PCT,
    ops: Sequence[v2.Transform] = (),
    normalize: v2.Transform | None = None,
    geometry_only: bool = False,
) -> v2.Compose:
    """The evaluation preprocessing: resize the shorter side to ``floor(input_size /
    crop_pct)``, centre-crop ``input_size`` (Pillow's filters on a PIL image), then ``ops``
    (deterministic preprocessing), float and normalisation (``to_float``).

    ``geometry_only``: the resize and crop alone, PIL image in, PIL image out."""
    geometry = [
        v2.Resize(
            math.floor(input_size / crop_pct),
            interpolation=interpolation_mode(interpolation),
            antialias=True,
        ),
        v2.CenterCrop(input_size),
    ]
    if geometry_only:
        return v2.Compose(geometry)
    return v2.Compose([*geometry, v2.ToImage(), *ops, *to_float(mean, std, normalize)])


class EvalPreset:
    """A model's ``eval_transform``, with its settings (for checkpoints and model cards)."""

    def __init__(
        self,
        input_size: int,
        interpolation: str = DEFAULT_INTERPOLATION,
        crop_pct: float = DEFAULT_CROP_PCT,
        mean: tuple[float, ...] = (0.485, 0.456, 0.406),
        std: tuple[float, ...] = (0.229, 0.224, 0.225),
    ) -> None:
        self.input_size = input_size
        self.interpolation = interpolation
        self.crop_pct = crop_pct
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.resize_size = math.floor(input_size / crop_pct)
        settings = {"interpolation": interpolation, "crop_pct": crop_pct}
        self._transform = eval_transform(input_size, self.mean, self.std, **settings)
        self._geometry = eval_transform(
            input_size, self.mean, self.std, **settings, geometry_only=True
        )

    @classmethod
    def from_data_config(cls, config: Mapping[str, Any]) -> EvalPreset:
        """From a timm data config (input_size, interpolation, crop_pct, mean, std), or a
        model directory's preprocessing.json (``input_size`` may be the side alone)."""
        size = config["input_size"]
        if isinstance(size, list | tuple):
            _, height, width = size
            if height != width:
                raise ValueError(f"square inputs only, got {height}x{width}")
            size = height
        return cls(
            input_size=int(size),
            interpolation=config.get("interpolation", DEFAULT_INTERPOLATION),
            crop_pct=float(config.get("crop_pct", DEFAULT_CROP_PCT)),
            mean=tuple(config["mean"]),
            std=tuple(config["std"]),
        )

    @classmethod
    def from_model(cls, model: nn.Module) -> EvalPreset:
        return cls.from_data_config(timm_data_config(model=model))

    @classmethod
    def from_timm_name(cls, timm_name: str) -> EvalPreset:
        """Same as from_model, without building the model."""
        return cls.from_data_config(timm_data_config(timm_name))

    def replace(self, **changes: Any) -> EvalPreset:
        """This preset with some settings changed (``input_size`` as a side or (3, H, W))."""
        return self.from_data_config({**self.config, **changes})

    @property
    def config(self) -> dict[str, Any]:
        """The data config, for checkpoints and model cards."""
        return {
            "input_size": (3, self.input_size, self.input_size),
            "interpolation": self.interpolation,
            "crop_pct": self.crop_pct,
            "mean": self.mean,
            "std": self.std,
        }

    def __call__(self, img: Image.Image) -> torch.Tensor:
        if img.mode != "RGB":
            img = img.convert("RGB")
        return self._transform(img)

    # The same transform split in two, for serving: the geometric part is pure Pillow (safe
    # and cheap in decode threads), the tensor part runs once per batch in the thread that
    # runs the model. Torch ops in other threads would each start an OpenMP team that spins
    # beside the forward pass: that cost ~30% of inference throughput on 2 cores.

    def resize_crop(self, img: Image.Image) -> Image.Image:
        """Resize the shorter side to ``resize_size`` and centre-crop, as the transform does."""
        if img.mode != "RGB":
            img = img.convert("RGB")
        return self._geometry(img)

    def batch(self, crops: Sequence[Image.Image]) -> torch.Tensor:
        """Normalised (N, 3, H, W) float batch, channels-last in memory, from ``resize_crop``
        outputs: the transform's float and normalisation steps, on the whole batch at once."""
        pixels = torch.from_numpy(np.stack([np.asarray(crop) for crop in crops]))
        batch = pixels.permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return batch.sub_(mean).div_(std)

    def __repr__(self) -> str:
        return f"EvalPreset({self.config})"
