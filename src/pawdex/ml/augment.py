"""Training and evaluation transforms named by a preset string, e.g. ``"trivialaugment+gray"``.

The options are the study's preprocessing (grayscale, autocontrast, histogram equalisation,
blur, per-image standardisation) and augmentation (rotation, flip, stretching), plus
torchvision's reference recipe (RandomResizedCrop, TrivialAugmentWide). Whatever order the
spec names them in, the pipeline runs in one fixed order: geometry to ``size``, random ops,
deterministic preprocessing, then float and normalisation, so the same spec always means
the same transform. Evaluation keeps only the deterministic preprocessing, so a model sees
grayscale/equalised photos at test time if it trained on them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from pawdex.ml import presets
from pawdex.ml.presets import DEFAULT_CROP_PCT, DEFAULT_INTERPOLATION, interpolation_mode, to_float

OPTIONS: dict[str, str] = {
    "none": "no augmentation: resize and crop to the input size, normalise",
    "gray": "grayscale, kept as 3 channels (train and eval)",
    "autocontrast": "stretch each channel to the full range (train and eval)",
    "equalize": "histogram equalisation (train and eval)",
    "standardize": "per-image standardisation instead of the dataset mean/std (train and eval)",
    "blur": "gaussian blur, sigma 0.1-2 (train only)",
    "rotate": "random rotation within +-20 degrees (train only)",
    "flip": "random horizontal flip (train only)",
    "affine": "random shear and scale, i.e. stretching (train only)",
    "crop": "RandomResizedCrop to the input size instead of resize + centre crop (train only)",
    "trivialaugment": "TrivialAugmentWide: one random photometric/geometric op (train only)",
}


def parse_preset(spec: str) -> list[str]:
    """``"trivialaugment+gray"`` → ``["trivialaugment", "gray"]``; "" or "none" → ["none"].

    Case and spaces are ignored, repeats dropped; ``none`` combined with others is dropped.
    """
    options = list(dict.fromkeys(p.strip().lower() for p in spec.split("+") if p.strip()))
    unknown = [option for option in options if option not in OPTIONS]
    if unknown:
        raise ValueError(
            f"unknown augmentation option(s) {', '.join(map(repr, unknown))} in {spec!r}; "
            f"known: {', '.join(OPTIONS)} (combine with '+')"
        )
    options = [option for option in options if option != "none"]
    return options or ["none"]


class PerImageStandardize(v2.Transform):
    """(x - mean(x)) / max(std(x), 1/sqrt(N)) per image, as tf.image.per_image_standardization.

    The floor on the std keeps a flat image (std 0) finite instead of dividing by zero.
    """

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, torch.Tensor) or not inpt.is_floating_point():
            return inpt  # runs after ToDtype; anything else passes through untouched
        dims = (-3, -2, -1)
        floor = 1.0 / math.sqrt(math.prod(inpt.shape[-3:]))
        mean = inpt.mean(dim=dims, keepdim=True)
        std = inpt.std(dim=dims, keepdim=True, unbiased=False).clamp_min(floor)
        out = (inpt - mean) / std
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out


def _random_ops(options: Sequence[str]) -> list[v2.Transform]:
    ops: dict[str, v2.Transform] = {
        "flip": v2.RandomHorizontalFlip(),
        "rotate": v2.RandomRotation(20),
        "affine": v2.RandomAffine(degrees=0, scale=(0.85, 1.15), shear=(-15, 15, -15, 15)),
        "trivialaugment": v2.TrivialAugmentWide(),
        "blur": v2.GaussianBlur(kernel_size=5, sigma=(0.1, 2.0)),
    }
    return [op for name, op in ops.items() if name in options]


def _deterministic_ops(options: Sequence[str]) -> list[v2.Transform]:
    ops: dict[str, v2.Transform] = {
        "gray": v2.Grayscale(num_output_channels=3),
        "autocontrast": v2.RandomAutocontrast(p=1.0),
        "equalize": v2.RandomEqualize(p=1.0),
    }
    return [op for name, op in ops.items() if name in options]


def _standardize(options: Sequence[str]) -> v2.Transform | None:
    """Per-image standardisation instead of the dataset mean/std, when the spec asks."""
    return PerImageStandardize() if "standardize" in options else None


def train_transform(
    spec: str,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    interpolation: str = DEFAULT_INTERPOLATION,
) -> v2.Compose:
    """PIL image or uint8 tensor → float32 (3, size, size), with the spec's random ops."""
    options = parse_preset(spec)
    mode = interpolation_mode(interpolation)
    if "crop" in options:
        geometry = [v2.RandomResizedCrop(size, interpolation=mode, antialias=True)]
    else:
        geometry = [v2.Resize(size, interpolation=mode, antialias=True), v2.CenterCrop(size)]
    return v2.Compose(
        [
            v2.ToImage(),
            *geometry,
            *_random_ops(options),
            *_deterministic_ops(options),
            *to_float(mean, std, _standardize(options)),
        ]
    )


def eval_transform(
    spec: str,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    *,
    interpolation: str = DEFAULT_INTERPOLATION,
    crop_pct: float = DEFAULT_CROP_PCT,
) -> v2.Compose:
    """Deterministic: ``presets.eval_transform`` (resize to size / crop_pct, centre-crop,
    as served) with the spec's preprocessing only."""
    options = parse_preset(spec)
    return presets.eval_transform(
        size, mean, std, interpolation=interpolation, crop_pct=crop_pct,
        ops=_deterministic_ops(options), normalize=_standardize(options),
    )  # fmt: skip


def save_preset_grid(
    spec: str,
    photos: Sequence[Path],
    out: Path,
    size: int = 224,
    samples: int = 4,
    seed: int = 0,
) -> Path:
    """A PNG to eyeball a preset: one row per photo, the original then ``samples`` draws.

    Drawn with mean 0 / std 1 so the tensors are already displayable; ``standardize``
    outputs are min-max rescaled. The global torch RNG is left as it was.
    """
    from matplotlib.figure import Figure

    from pawdex.ml.data.datasets import open_rgb

    if not photos or samples < 1:
        raise ValueError("save_preset_grid needs at least one photo and one sample")
    options = parse_preset(spec)
    transform = train_transform(spec, size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    columns = samples + 1
    fig = Figure(figsize=(2.2 * columns, 2.3 * len(photos) + 0.6), layout="constrained")
    fig.suptitle(f"train preset: {' + '.join(options)}  ({size}px, seed {seed})", fontsize=12)
    axes = fig.subplots(len(photos), columns, squeeze=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for row, path in enumerate(photos):
            img = open_rgb(Path(path))
            axes[row][0].imshow(img)
            axes[row][0].set_title(f"original\n{_short(Path(path).name)}", fontsize=8)
            for col in range(1, columns):
                axes[row][col].imshow(_displayable(transform(img)))
                axes[row][col].set_title(f"draw {col}", fontsize=8)
    for ax in fig.axes:
        ax.set_axis_off()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=100)
    return out


def _displayable(tensor: torch.Tensor) -> Any:
    low, high = tensor.min(), tensor.max()
    if low < 0 or high > 1:  # standardised: rescale to [0, 1] for display
        tensor = (tensor - low) / (high - low).clamp_min(1e-6)
    return tensor.permute(1, 2, 0).clamp(0, 1).numpy()


def _short(name: str, limit: int = 28) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"
