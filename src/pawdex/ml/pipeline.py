"""The study as one reproducible run: data → preprocessing → model → (cached features → head,
then optional fine-tuning) or training from scratch → evaluation → a versioned model
directory with its model card. ``pawdex train`` and ``pawdex evaluate`` call this."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pawdex.ml.artifacts import save_model_dir, weights_sha256
from pawdex.ml.augment import eval_transform, parse_preset, train_transform
from pawdex.ml.data import DatasetSplit, PhotoDataset, Sample, load_dataset
from pawdex.ml.evaluate import (
    classification_metrics,
    confusion_matrix_png,
    learning_curves_png,
    predict_logits,
    write_model_card,
)
from pawdex.ml.features import cache_key, extract_features
from pawdex.ml.models import SCRATCH, TransferModel, build_model, data_config
from pawdex.ml.train import TrainConfig, TrainResult, fit, fit_head, seed_everything

log = logging.getLogger("pawdex.train")


@dataclass
class TrainOptions:
    data: Path
    out: Path  # the model directory to write (its name is the model's name)
    arch: str = "efficientnet_lite0"
    breeds: str | None = None
    crop: bool = False  # crop each photo to its dog's box (Stanford Dogs annotations)
    preset: str = "flip"  # augmentation while fine-tuning / training from scratch
    eval_preset: str = "none"  # deterministic preprocessing at evaluation (and serving)
    hidden: int | None = None  # MLP head width; None: linear head
    dropout: float = 0.2
    finetune_blocks: int = 0  # after the head: also train the backbone's last N blocks
    finetune_epochs: int = 5
    weights: Path | None = None
    allow_download: bool = False
    val_fraction: float = 0.2
    official_split: bool = True
    imagenet_init: bool = True  # start a linear head from the ImageNet rows of the breeds
    cache_dir: Path | None = None  # cached features
    train: TrainConfig = field(default_factory=TrainConfig)
    resume: bool = False


@dataclass
class TrainReport:
    out: Path
    metrics: dict
    results: dict[str, TrainResult]
    feature_seconds_per_1000: float | None
    eval_split: str


def _imagenet_init(
    model: TransferModel, classes: list[str]
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A linear head that starts as the backbone's ImageNet classifier restricted to the
    dataset's breeds: each breed's row is its synset's row; a class that is no ImageNet
    breed (e.g. ``_not_a_dog``) keeps a fresh random row. None without such a classifier or
    without any known breed."""
    from pawdex.ml.classes import BREED_NAMES, breed_wnid, imagenet_index

    imagenet = getattr(model, "imagenet_classifier", None)
    known = [i for i, name in enumerate(classes) if name in BREED_NAMES]
    if imagenet is None or not known:
        return None
    fresh = nn.Linear(imagenet.in_features, len(classes))
    weight, bias = fresh.weight.detach().clone(), fresh.bias.detach().clone()
    for i in known:
        row = imagenet_index(breed_wnid(classes[i]))
        weight[i], bias[i] = imagenet.weight.detach()[row], imagenet.bias.detach()[row]
    return weight, bias


def _transforms(opts: TrainOptions, config: dict[str, Any]):
    size = int(config["input_size"][-1])
    mean, std = config["mean"], config["std"]
    interpolation = config["interpolation"]
    train_tf = train_transform(opts.preset, size, mean, std, interpolation=interpolation)
    eval_tf = eval_transform(
        opts.eval_preset, size, mean, std, interpolation=interpolation, crop_pct=config["crop_pct"]
    )
    return train_tf, eval_tf


def _feature_cache(opts: TrainOptions, split_name: str, samples: list[Sample]) -> Path | None:
    if opts.cache_dir is None:
        return None
    weights = str(opts.weights) if opts.weights else "shipped"
    listing = "|".join(f"{s.path}:{s.label}:{s.box}" for s in samples)
    key = cache_key(opts.arch, weights, opts.eval_preset, str(opts.crop), listing)
    return opts.cache_dir / f"{opts.arch}-{split_name}-{key}.pt"


def train(opts: TrainOptions) -> TrainReport:
    seed_everything(opts.train.seed)  # model building and head initialisation draw too
    split = load_dataset(
        opts.data, opts.breeds, val_fraction=opts.val_fraction,
        seed=opts.train.seed, official_split=opts.official_split,
    )  # fmt: skip
    classes = split.classes
    config = data_config(opts.arch)
    train_tf, eval_tf = _transforms(opts, config)
    model = build_model(
        opts.arch, len(classes), weights=opts.weights, hidden=opts.hidden,
        dropout=opts.dropout, allow_download=opts.allow_download,
    )  # fmt: skip
    runs = opts.out / "checkpoints"
    results: dict[str, TrainResult] = {}
    feature_rate = None
    eval_samples, eval_split = (split.test, "test") if split.test else (split.val, "val")

    def data(samples: list[Sample], tf) -> PhotoDataset:
        return PhotoDataset(samples, transform=tf, crop_to_box=opts.crop)

    if opts.arch in SCRATCH:
        results["scratch"] = fit(
            model, data(split.train, train_tf), data(split.val, eval_tf), opts.train,
            runs / "scratch", resume=opts.resume,
        )  # fmt: skip
    else:
        assert isinstance(model, TransferModel)
        started = time.perf_counter()
        feats = {
            name: extract_features(
                model.backbone,
                data(samples, eval_tf),
                batch_size=opts.train.batch_size,
                device=opts.train.device,
                cache=_feature_cache(opts, name, samples),
                desc=name,
                progress=opts.train.progress,
            )
            for name, samples in (("train", split.train), ("val", split.val))
        }
        n = len(split.train) + len(split.val)
        feature_rate = (time.perf_counter() - started) / max(n, 1) * 1000
        init = _imagenet_init(model, classes) if opts.imagenet_init and not opts.hidden else None
        head, results["head"] = fit_head(
            *feats["train"], *feats["val"], len(classes), opts.train, runs / "head",
            hidden=opts.hidden, dropout=opts.dropout, init=init,
        )  # fmt: skip
        model.head.load_state_dict(head.state_dict())
        if opts.finetune_blocks > 0:
            model.freeze_backbone(opts.finetune_blocks)
            tuning = dataclasses.replace(opts.train, epochs=opts.finetune_epochs)
            results["finetune"] = fit(
                model, data(split.train, train_tf), data(split.val, eval_tf), tuning,
                runs / "finetune", resume=opts.resume,
            )  # fmt: skip
    model.eval().cpu()
    logits, targets = predict_logits(
        model, data(eval_samples, eval_tf), batch_size=opts.train.batch_size
    )
    metrics = classification_metrics(logits, targets, classes)
    opts.out.mkdir(parents=True, exist_ok=True)
    confusion_matrix_png(logits, targets, classes, opts.out / "confusion.png")
    last_stage = list(results)[-1]
    learning_curves_png(runs / last_stage / "metrics.csv", opts.out / "curves.png")
    preprocessing = {**config, "preset": opts.eval_preset, "crop_to_box": opts.crop}
    save_model_dir(
        opts.out, model, arch=opts.arch, classes=classes, preprocessing=preprocessing,
        config=_jsonable(asdict(opts)), metrics=metrics,
    )  # fmt: skip
    _card(opts, split, metrics, results, feature_rate, eval_split, preprocessing)
    return TrainReport(opts.out, metrics, results, feature_rate, eval_split)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def _card(
    opts: TrainOptions,
    split: DatasetSplit,
    metrics: dict,
    results: dict[str, TrainResult],
    feature_rate: float | None,
    eval_split: str,
    preprocessing: dict,
) -> None:
    card = {
        "name": opts.out.name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": split.describe(),
        "evaluated_on": eval_split,
        "model": {"arch": opts.arch, "hidden": opts.hidden, "dropout": opts.dropout,
                  "finetune_blocks": opts.finetune_blocks, "crop_to_box": opts.crop},
        "preprocessing": _jsonable(preprocessing),
        "augmentation": parse_preset(opts.preset),
        "training": _jsonable(asdict(opts.train)),
        "stages": {
            name: {"best_epoch": r.best_epoch, "epochs_run": r.epochs_run,
                   "stopped_early": r.stopped_early, "seconds_per_epoch": r.seconds_per_epoch,
                   "best_val_acc": r.best_val_acc, "best_val_loss": r.best_val_loss}
            for name, r in results.items()
        },
        "feature_seconds_per_1000_photos": feature_rate,
        "metrics": metrics,
        "weights_sha256": weights_sha256(opts.out / "weights.pt"),
    }  # fmt: skip
    write_model_card(opts.out, card)


@dataclass
class Evaluation:
    metrics: dict
    classes: list[str]
    samples: int
    skipped_classes: list[str]


def evaluate(
    model, data: Path, out: Path, breeds: str | None = None, split: str = "test",
    batch_size: int = 32,
) -> Evaluation:  # fmt: skip
    """A served classifier (``BreedClassifier``: built-in or trained) on a dataset: the
    dataset's classes are looked up among the model's; photos of classes the model does not
    know are left out (and listed). Writes metrics.json, confusion.png and card.md/json."""
    import json

    dataset = load_dataset(data, breeds)
    samples = {"test": dataset.test or dataset.val, "val": dataset.val,
               "all": dataset.train + dataset.val + dataset.test}[split]  # fmt: skip
    names = model.class_names
    index = {name.lower(): i for i, name in enumerate(names)}
    skipped = sorted({c for c in dataset.classes if c.lower() not in index})
    mapped = [
        dataclasses.replace(s, label=index[dataset.classes[s.label].lower()])
        for s in samples
        if dataset.classes[s.label].lower() in index
    ]
    if not mapped:
        raise ValueError(f"none of the dataset's classes are known to {model.name}")
    photos = PhotoDataset(mapped, transform=model.preprocess)
    loader = torch.utils.data.DataLoader(photos, batch_size=batch_size)
    logits, targets = [], []
    for batch, labels in loader:
        logits.append(model.breed_logits(model.logits(batch)))
        targets.append(labels)
    all_logits, all_targets = torch.cat(logits), torch.cat(targets)
    metrics = classification_metrics(all_logits, all_targets, names)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    confusion_matrix_png(all_logits, all_targets, names, out / "confusion.png")
    write_model_card(out, {
        "name": f"{model.name} on {data.name}", "model_version": model.version,
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "data": dataset.describe(),
        "evaluated_on": split, "samples": len(mapped), "skipped_classes": skipped,
        "metrics": metrics,
    })  # fmt: skip
    return Evaluation(metrics, names, len(mapped), skipped)
