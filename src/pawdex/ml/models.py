"""Models by name: the study's from-scratch networks and transfer models on timm backbones.

``build_model("lenet5" | "smallcnn", …)`` builds a network trained from scratch;
any other name is a ``TransferModel``: a timm backbone giving pooled features, and a new head.
The shipped backbones (``efficientnet_lite0/1/2``) load the ImageNet weights inside their PyPI
packages; any other timm model loads a local weights file, or timm's hub only when asked to.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import timm
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn

from pawdex.ml.backbones import BACKBONES, BackboneWeightsError, backbone_spec, create_backbone
from pawdex.ml.presets import DEFAULT_CROP_PCT, timm_data_config

SCRATCH = ("lenet5", "smallcnn")
_SCRATCH_INPUT_SIZE = {"lenet5": 32, "smallcnn": 224}


class LeNet5(nn.Module):
    """LeNet-5 (conv5-pool-conv5-pool-fc120-fc84-fc) for 3x32x32 colour input.

    The adaptive pool before the classifier is the identity at 32x32 and lets other sizes
    through (as the study fed it larger photos)."""

    def __init__(self, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.hidden = None
        self.dropout = dropout
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(5),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class SmallCNN(nn.Module):
    """The study's custom CNN: four conv-BN-ReLU-pool blocks (32→256 channels), global
    average pool, dropout, linear classifier. Designed for 224x224, works at any size ≥ 16."""

    def __init__(
        self,
        num_classes: int,
        dropout: float = 0.2,
        widths: tuple[int, ...] = (32, 64, 128, 256),
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.hidden = None
        self.dropout = dropout
        layers: list[nn.Module] = []
        in_ch = 3
        for width in widths:
            layers += [
                nn.Conv2d(in_ch, width, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            in_ch = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(in_ch, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


def make_head(
    in_features: int, num_classes: int, hidden: int | None = None, dropout: float = 0.2
) -> nn.Module:
    """Linear, or Linear-ReLU-Dropout-Linear when ``hidden`` is set."""
    if hidden is None:
        return nn.Linear(in_features, num_classes)
    return nn.Sequential(
        nn.Linear(in_features, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden, num_classes),
    )


class TransferModel(nn.Module):
    """A timm backbone (``num_classes=0``: pooled features) and a new classification head.

    ``imagenet_classifier`` keeps the backbone's ImageNet-1k classifier when it has one worth
    keeping (the shipped EfficientNet-Lite weights): unused by ``forward``, frozen, but saved
    in the state dict so a served model can still tell dogs from cats."""

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        *,
        hidden: int | None = None,
        dropout: float = 0.2,
        imagenet_classifier: nn.Linear | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.hidden = hidden
        self.dropout = dropout
        self.num_features: int = backbone.num_features
        self.head = make_head(self.num_features, num_classes, hidden, dropout)
        self.imagenet_classifier = imagenet_classifier
        if imagenet_classifier is not None:
            imagenet_classifier.requires_grad_(False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features (N, num_features)."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def imagenet_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's own ImageNet-1k logits (needs ``imagenet_classifier``)."""
        if self.imagenet_classifier is None:
            raise RuntimeError("this model keeps no ImageNet classifier")
        return self.imagenet_classifier(self.features(x))

    def freeze_backbone(self, trainable_blocks: int = 0) -> None:
        """Freeze the backbone but its last ``trainable_blocks`` blocks.

        0 freezes it all (its BatchNorm statistics too: frozen parts stay in eval mode, even
        under ``model.train()``). N > 0 also trains the last N blocks (residual / inverted
        residual blocks, in order; for networks without blocks, their last N layers with
        weights) and whatever follows them (final conv, norm). A negative N unfreezes all."""
        if trainable_blocks < 0:
            self.backbone.requires_grad_(True)
        else:
            self.backbone.requires_grad_(False)
            if trainable_blocks > 0:
                blocks, tail = backbone_blocks(self.backbone)
                for module in [*blocks[-trainable_blocks:], *tail]:
                    module.requires_grad_(True)
        self.train(self.training)

    def train(self, mode: bool = True) -> TransferModel:
        super().train(mode)
        if mode:
            # Frozen parts behave as at inference: fixed BN statistics, no dropout/drop-path.
            for module in _frozen_roots(self.backbone):
                module.eval()
        return self


def _frozen_roots(module: nn.Module) -> Iterator[nn.Module]:
    """The largest submodules whose parameters are all frozen (module itself included)."""
    params = list(module.parameters())
    if params and not any(p.requires_grad for p in params):
        yield module
        return
    for child in module.children():
        yield from _frozen_roots(child)


def _flatten_blocks(container: nn.Module) -> list[nn.Module]:
    """Children of a stage container, one level of nested stages flattened into blocks."""
    blocks: list[nn.Module] = []
    for stage in container.children():
        inner = getattr(stage, "blocks", stage)  # timm's *Stage modules keep theirs in .blocks
        if isinstance(inner, nn.Sequential | nn.ModuleList):
            blocks.extend(inner.children())
        else:
            blocks.append(stage)
    return [b for b in blocks if any(True for _ in b.parameters())]


def backbone_blocks(backbone: nn.Module) -> tuple[list[nn.Module], list[nn.Module]]:
    """(blocks in forward order, modules after them) of a timm backbone.

    EfficientNet/MobileNet/Xception keep their blocks in ``blocks``, ConvNeXt/RegNet/… in
    ``stages``, ResNets in ``layer1…layer4``; VGG and other plain networks are read in children
    order (their layers with weights count as blocks)."""
    children = list(backbone.named_children())
    names = [name for name, _ in children]
    for attr in ("blocks", "stages"):
        if attr in names and any(True for _ in getattr(backbone, attr).children()):
            blocks = _flatten_blocks(getattr(backbone, attr))
            return blocks, [m for _, m in children[names.index(attr) + 1 :]]
    layers = [n for n in names if n.startswith("layer") and n[5:].isdigit()]
    if layers:
        blocks = [b for n in layers for b in getattr(backbone, n).children()]
        return blocks, [m for _, m in children[names.index(layers[-1]) + 1 :]]
    if "features" in names:  # torchvision-style VGG: features, then pre_logits/head
        features = backbone.features
        blocks = [m for m in features.children() if any(True for _ in m.parameters())]
        return blocks, [m for _, m in children[names.index("features") + 1 :]]
    blocks = [m for _, m in children if any(True for _ in m.parameters())]
    return blocks, []


def timm_name(arch: str) -> str:
    """The timm model name behind an architecture name (shipped names map to theirs)."""
    return backbone_spec(arch).timm_name if arch in BACKBONES else arch


def _check_arch(arch: str) -> None:
    if arch in SCRATCH or arch in BACKBONES or timm.is_model(arch):
        return
    raise ValueError(
        f"unknown architecture {arch!r}: use one of {', '.join((*SCRATCH, *BACKBONES))} "
        "or a timm model name"
    )


def _timm_backbone(arch: str, weights: Path | None, pretrained: bool, allow_download: bool):
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise BackboneWeightsError(f"weights file not found: {path}")
        try:
            return timm.create_model(
                arch, pretrained=True, num_classes=0, pretrained_cfg_overlay={"file": str(path)}
            )
        except (RuntimeError, KeyError, ValueError) as exc:
            raise BackboneWeightsError(f"weights {path} do not fit {arch}: {exc}") from exc
    if pretrained and not allow_download:
        raise BackboneWeightsError(
            f"backbone {arch!r} has no weights shipped with pawdex: pass a local weights file "
            "(--weights PATH, a state dict), or allow the hub download (--allow-download)"
        )
    return timm.create_model(arch, pretrained=pretrained, num_classes=0)


def build_model(
    arch: str,
    num_classes: int,
    *,
    weights: Path | None = None,
    hidden: int | None = None,
    dropout: float = 0.2,
    allow_download: bool = False,
    pretrained: bool = True,
) -> nn.Module:
    """The model named ``arch`` with ``num_classes`` outputs, in train mode.

    ``weights``: a local state dict for the backbone (shipped backbones default to their
    package's file). ``pretrained=False`` leaves the backbone random and reads no file (to
    load a whole saved model's state dict afterwards)."""
    _check_arch(arch)
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    if arch in SCRATCH and hidden is not None:
        raise ValueError(f"hidden sets a transfer model's MLP head; {arch!r} has its own")
    if arch == "lenet5":
        return LeNet5(num_classes, dropout=dropout)
    if arch == "smallcnn":
        return SmallCNN(num_classes, dropout=dropout)
    if arch in BACKBONES:
        full = create_backbone(arch, weights=weights, pretrained=pretrained)
        imagenet = full.get_classifier()
        full.reset_classifier(0)
        model = TransferModel(
            full, num_classes, hidden=hidden, dropout=dropout,
            imagenet_classifier=imagenet if isinstance(imagenet, nn.Linear) else None,
        )  # fmt: skip
    else:
        backbone = _timm_backbone(arch, weights, pretrained, allow_download)
        model = TransferModel(backbone, num_classes, hidden=hidden, dropout=dropout)
    return model.train()


def data_config(arch: str) -> dict[str, Any]:
    """What the model expects as input, in timm's data-config form:
    ``{"input_size": (3, H, W), "mean", "std", "crop_pct", "interpolation"}`` (what
    ``ml.presets.EvalPreset.from_data_config`` reads)."""
    _check_arch(arch)
    if arch in SCRATCH:
        size = _SCRATCH_INPUT_SIZE[arch]
        return {
            "input_size": (3, size, size),
            "mean": tuple(IMAGENET_DEFAULT_MEAN),
            "std": tuple(IMAGENET_DEFAULT_STD),
            "crop_pct": DEFAULT_CROP_PCT,
            "interpolation": "bilinear",
        }
    return timm_data_config(timm_name(arch))


def model_input_size(arch: str) -> int:
    """Square input side: 32 for lenet5, 224 for smallcnn, timm's data config otherwise."""
    _, height, _ = data_config(arch)["input_size"]
    return int(height)
