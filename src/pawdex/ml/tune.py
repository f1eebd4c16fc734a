"""Hyper-parameter search (``pawdex tune``) with Optuna: TPE sampling, median pruning on the
validation loss of each epoch. Heads train on features extracted once, so a trial costs
seconds on CPU; ``search_finetune`` adds freeze depth and augmentation, each trial then
fine-tuning the backbone (minutes)."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import optuna

from pawdex.ml.augment import OPTIONS
from pawdex.ml.data import PhotoDataset, load_dataset
from pawdex.ml.features import extract_features
from pawdex.ml.models import SCRATCH, build_model, data_config
from pawdex.ml.pipeline import TrainOptions, _feature_cache, _transforms
from pawdex.ml.train import fit, fit_head

log = logging.getLogger("pawdex.tune")

HIDDEN_CHOICES = (0, 128, 256, 512)  # 0: a linear head
AUGMENTATIONS = ("flip", "crop+flip", "trivialaugment", "rotate+flip+affine")


@dataclass
class TuneReport:
    best_params: dict
    best_value: float
    trials: list[dict]
    table: Path
    best: Path


def tune(
    opts: TrainOptions,
    out: Path,
    trials: int = 20,
    timeout: float | None = None,
    search_finetune: bool = False,
) -> TuneReport:
    if opts.arch in SCRATCH:
        raise ValueError("tune searches transfer-learning heads: pick a backbone arch")
    assert all(part in OPTIONS for a in AUGMENTATIONS for part in a.split("+"))
    split = load_dataset(
        opts.data, opts.breeds, val_fraction=opts.val_fraction,
        seed=opts.train.seed, official_split=opts.official_split,
    )  # fmt: skip
    classes = split.classes
    _train_tf, eval_tf = _transforms(opts, data_config(opts.arch))
    backbone = build_model(opts.arch, len(classes), weights=opts.weights).backbone
    feats = {
        name: extract_features(
            backbone, PhotoDataset(samples, eval_tf, crop_to_box=opts.crop),
            batch_size=opts.train.batch_size, device=opts.train.device,
            cache=_feature_cache(opts, name, samples), desc=name, progress=opts.train.progress,
        )
        for name, samples in (("train", split.train), ("val", split.val))
    }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)

    def objective(trial: optuna.Trial) -> float:
        config = dataclasses.replace(
            opts.train,
            lr=trial.suggest_float("lr", 1e-4, 3e-2, log=True),
            weight_decay=trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
            label_smoothing=trial.suggest_categorical("label_smoothing", [0.0, 0.1]),
            progress=False,
        )
        hidden = trial.suggest_categorical("hidden", list(HIDDEN_CHOICES)) or None
        dropout = trial.suggest_float("dropout", 0.0, 0.5)

        def report(row: dict) -> None:
            trial.report(row["val_loss"], row["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned()

        run = out / f"trial-{trial.number:03d}"
        head, result = fit_head(
            *feats["train"], *feats["val"], len(classes), config, run / "head",
            hidden=hidden, dropout=dropout, on_epoch=report,
        )  # fmt: skip
        if not search_finetune:
            trial.set_user_attr("val_acc", result.best_val_acc)
            return result.best_val_loss
        blocks = trial.suggest_int("finetune_blocks", 0, 2)
        preset = trial.suggest_categorical("preset", list(AUGMENTATIONS))
        if blocks == 0:
            trial.set_user_attr("val_acc", result.best_val_acc)
            return result.best_val_loss
        model = build_model(
            opts.arch, len(classes), weights=opts.weights, hidden=hidden, dropout=dropout
        )
        model.head.load_state_dict(head.state_dict())
        model.freeze_backbone(blocks)
        tuned = dataclasses.replace(config, epochs=opts.finetune_epochs)
        train_tf, _ = _transforms(dataclasses.replace(opts, preset=preset), data_config(opts.arch))
        result = fit(
            model, PhotoDataset(split.train, train_tf, crop_to_box=opts.crop),
            PhotoDataset(split.val, eval_tf, crop_to_box=opts.crop), tuned, run / "finetune",
            on_epoch=report,
        )  # fmt: skip
        trial.set_user_attr("val_acc", result.best_val_acc)
        return result.best_val_loss

    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=opts.train.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2),
    )
    study.optimize(objective, n_trials=trials, timeout=timeout)
    rows = [
        {"trial": t.number, "state": t.state.name, "val_loss": t.value,
         "val_acc": t.user_attrs.get("val_acc"), **t.params}
        for t in study.trials
    ]  # fmt: skip
    table = out / "trials.csv"
    columns = sorted({key for row in rows for key in row}, key=_column_order)
    with table.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    best = out / "best.json"
    params = dict(study.best_params)
    best.write_text(json.dumps({"params": params, "val_loss": study.best_value,
                                "val_acc": study.best_trial.user_attrs.get("val_acc"),
                                "classes": classes, "arch": opts.arch}, indent=2))  # fmt: skip
    return TuneReport(params, study.best_value, rows, table, best)


def _column_order(name: str) -> tuple[int, str]:
    first = ("trial", "state", "val_loss", "val_acc")
    return (first.index(name), name) if name in first else (len(first), name)
