"""A trained model is a versioned directory: everything needed to serve and to audit it.

weights.pt         the whole model's state dict (backbone included: no other file needed)
model.json         {"arch", "num_classes", "hidden", "dropout", "input_size", "format",
                    "weights_sha256", "versions"}
classes.json       the class names, in output order
preprocessing.json {"input_size", "mean", "std", "crop_pct", "interpolation", "preset"}
config.json        the training configuration
metrics.json       evaluation metrics (optional)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from pawdex.fileio import atomic_path, atomic_write, file_sha256
from pawdex.ml.models import build_model, data_config
from pawdex.ml.presets import DATA_CONFIG_KEYS

FORMAT = 1


class ModelDirError(RuntimeError):
    """A model directory is incomplete, of an unknown format, or its weights don't match."""


def weights_sha256(path: Path) -> str:
    """sha256 of a weights file (of ``weights.pt`` when ``path`` is a model directory)."""
    path = Path(path)
    return file_sha256(path / "weights.pt" if path.is_dir() else path)


def _write_json(path: Path, value: Any) -> None:
    atomic_write(path, json.dumps(value, indent=2, default=str) + "\n", mode=0o644)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelDirError(
            f"{path.parent} is not a model directory: {path.name} missing"
        ) from None


def save_model_dir(
    out_dir: Path,
    model: nn.Module,
    *,
    arch: str,
    classes: Sequence[str],
    preprocessing: dict,
    config: dict,
    metrics: dict | None = None,
) -> Path:
    """Write ``model`` (built by ``ml.models.build_model(arch, …)``) as a model directory.

    ``preprocessing`` overrides the architecture's data config key by key (and may name the
    eval ``preset``); the weights' sha256 is recorded in model.json."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    num_classes = getattr(model, "num_classes", None)
    if num_classes is not None and num_classes != len(classes):
        raise ValueError(f"model has {num_classes} outputs but {len(classes)} classes given")
    state = {key: tensor.detach().cpu().contiguous() for key, tensor in model.state_dict().items()}
    weights = out_dir / "weights.pt"
    with atomic_path(weights) as tmp:
        torch.save(state, tmp)
    defaults = data_config(arch)
    prep = {key: preprocessing.get(key, defaults[key]) for key in DATA_CONFIG_KEYS}
    prep["preset"] = preprocessing.get("preset", "eval")
    prep.update({k: v for k, v in preprocessing.items() if k not in prep})
    size = prep["input_size"]
    meta = {
        "arch": arch,
        "num_classes": len(classes),
        "hidden": getattr(model, "hidden", None),
        "dropout": getattr(model, "dropout", 0.2),
        "input_size": int(size[-1]) if isinstance(size, list | tuple) else int(size),
        "format": FORMAT,
        "weights_sha256": weights_sha256(weights),
        "imagenet_classifier": getattr(model, "imagenet_classifier", None) is not None,
        "versions": {"torch": torch.__version__, "timm": timm.__version__},
    }
    _write_json(out_dir / "classes.json", list(classes))
    _write_json(out_dir / "preprocessing.json", prep)
    _write_json(out_dir / "config.json", config)
    if metrics is not None:
        _write_json(out_dir / "metrics.json", metrics)
    _write_json(out_dir / "model.json", meta)  # last: its presence marks a complete directory
    return out_dir


def load_model_dir(path: Path, device: str = "cpu") -> tuple[nn.Module, list[str], dict, dict]:
    """(model in eval mode on ``device``, classes, preprocessing, model.json meta).

    The model is built without reading any backbone weights file (the state dict holds all
    of them), and the weights must match the sha256 recorded when they were saved."""
    path = Path(path)
    meta = _read_json(path / "model.json")
    if meta.get("format") != FORMAT:
        raise ModelDirError(f"{path}: model format {meta.get('format')!r}, expected {FORMAT}")
    classes = _read_json(path / "classes.json")
    preprocessing = _read_json(path / "preprocessing.json")
    weights = path / "weights.pt"
    if not weights.is_file():
        raise ModelDirError(f"{path}: weights.pt missing")
    expected = meta.get("weights_sha256")
    if expected and weights_sha256(weights) != expected:
        raise ModelDirError(f"{path}: weights.pt does not match the sha256 in model.json")
    if len(classes) != meta["num_classes"]:
        raise ModelDirError(f"{path}: {len(classes)} classes for {meta['num_classes']} outputs")
    model = build_model(
        meta["arch"], meta["num_classes"], hidden=meta.get("hidden"),
        dropout=meta.get("dropout", 0.2), pretrained=False,
    )  # fmt: skip
    state = torch.load(weights, map_location="cpu", weights_only=True)
    if getattr(model, "imagenet_classifier", None) is not None and not any(
        key.startswith("imagenet_classifier.") for key in state
    ):
        model.imagenet_classifier = None
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), list(classes), preprocessing, meta
