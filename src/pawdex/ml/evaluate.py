"""Evaluation: logits, metrics (torchmetrics), plots (matplotlib, Agg) and the model card."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from pawdex.ml.devices import autocast, resolve_device

TOP_CONFUSIONS = 20


def predict_logits(
    model: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 64,
    device: str = "cpu",
    num_workers: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C) float32 CPU logits and (N,) int64 targets of ``dataset`` (items ``(x, label)``),
    in dataset order. The model runs in eval mode on ``device`` (AMP on CUDA)."""
    target = resolve_device(device)
    model.eval().to(target)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    logits: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    with torch.inference_mode(), autocast(target):
        for inputs, labels in loader:
            inputs = inputs.to(target, non_blocking=True)
            if inputs.ndim == 4:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            logits.append(model(inputs).float().cpu())
            targets.append(torch.as_tensor(labels).long().cpu())
    if not logits:
        raise ValueError("predict_logits: empty dataset")
    return torch.cat(logits), torch.cat(targets)


def confusion_counts(logits: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C, C) int64 counts: row = true class, column = predicted class."""
    return multiclass_confusion_matrix(logits.float(), targets.long(), num_classes).long()


def top_confusions(
    confusion: torch.Tensor, classes: Sequence[str], top: int = TOP_CONFUSIONS
) -> list[dict[str, Any]]:
    """The largest off-diagonal cells, largest first (ties: by true, then predicted class)."""
    off = confusion.clone()
    off.fill_diagonal_(0)
    cells = [(-int(off[i, j]), i, j) for i, j in torch.nonzero(off, as_tuple=False).tolist()]
    return [
        {"true": classes[i], "predicted": classes[j], "count": -neg}
        for neg, i, j in sorted(cells)[:top]
    ]


def classification_metrics(
    logits: torch.Tensor,
    targets: torch.Tensor,
    classes: Sequence[str],
    *,
    top: int = TOP_CONFUSIONS,
) -> dict[str, Any]:
    """Top-1, top-k (k = min(5, C)), macro F1/precision/recall, per-class scores and the
    ``top`` largest confusions. Macro averages skip classes absent from both targets and
    predictions (torchmetrics' rule), so an evaluation on a subset is not dragged to 0."""
    num_classes = len(classes)
    if logits.ndim != 2 or logits.shape[1] != num_classes:
        raise ValueError(f"logits {tuple(logits.shape)} do not match {num_classes} classes")
    logits, targets = logits.float(), targets.long()
    k = min(5, num_classes)
    common = {"num_classes": num_classes}
    precision = multiclass_precision(logits, targets, average=None, **common)
    recall = multiclass_recall(logits, targets, average=None, **common)
    f1 = multiclass_f1_score(logits, targets, average=None, **common)
    support = torch.bincount(targets, minlength=num_classes)
    confusion = confusion_counts(logits, targets, num_classes)
    return {
        "samples": int(targets.shape[0]),
        "num_classes": num_classes,
        "top1": float(multiclass_accuracy(logits, targets, average="micro", top_k=1, **common)),
        "top5": float(multiclass_accuracy(logits, targets, average="micro", top_k=k, **common)),
        "top5_k": k,
        "macro_f1": float(multiclass_f1_score(logits, targets, average="macro", **common)),
        "macro_precision": float(multiclass_precision(logits, targets, average="macro", **common)),
        "macro_recall": float(multiclass_recall(logits, targets, average="macro", **common)),
        "per_class": [
            {
                "class": name,
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        ],
        "top_confusions": top_confusions(confusion, classes, top),
    }


def confusion_matrix_png(
    logits: torch.Tensor, targets: torch.Tensor, classes: Sequence[str], out: Path
) -> Path:
    """A row-normalised confusion matrix, classes in the order given, readable at 120 classes
    (large figure, small ticks, a square-root colour scale that shows rare confusions), with
    the ten largest confusions written under it."""
    num_classes = len(classes)
    counts = confusion_counts(logits, targets, num_classes).double()
    rows = counts.sum(dim=1, keepdim=True).clamp(min=1)
    normalised = (counts / rows).numpy()
    side = max(6.0, 0.14 * num_classes + 3.0)
    tick_size = max(3.0, min(10.0, 500.0 / max(num_classes, 1)))
    confusions = top_confusions(counts.long(), classes, 10)
    text_height = 0.25 * (len(confusions) + 2)
    fig = Figure(figsize=(side, side + text_height), layout="constrained")
    grid = fig.add_gridspec(2, 1, height_ratios=[side, text_height])
    ax = fig.add_subplot(grid[0])
    image = ax.imshow(normalised, cmap="viridis", norm=PowerNorm(gamma=0.4, vmin=0, vmax=1))
    ax.set_xticks(range(num_classes), labels=list(classes), rotation=90, fontsize=tick_size)
    ax.set_yticks(range(num_classes), labels=list(classes), fontsize=tick_size)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion matrix (row-normalised, {int(counts.sum())} samples)")
    fig.colorbar(image, ax=ax, shrink=0.6, label="fraction of the true class")
    lines = ["Top confusions (true → predicted: count)"] + [
        f"{c['true']} → {c['predicted']}: {c['count']}" for c in confusions
    ]
    if not confusions:
        lines.append("none")
    text_ax = fig.add_subplot(grid[1])
    text_ax.axis("off")
    text_ax.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", family="monospace",
                 fontsize=9)  # fmt: skip
    return _save(fig, out, dpi=150)


def _save(fig: Figure, out: Path, dpi: int = 100) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, format="png")
    return out


def read_metrics_csv(path: Path) -> list[dict[str, float]]:
    with Path(path).open(newline="") as fh:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(fh)]


def learning_curves_png(metrics_csv: Path, out: Path) -> Path:
    """Loss and accuracy per epoch, train against validation, from ``fit``'s metrics.csv."""
    rows = read_metrics_csv(metrics_csv)
    epochs = [int(r["epoch"]) for r in rows]
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    for ax, metric, title in ((loss_ax, "loss", "Loss"), (acc_ax, "acc", "Accuracy")):
        ax.plot(epochs, [r[f"train_{metric}"] for r in rows], marker="o", label="train")
        ax.plot(epochs, [r[f"val_{metric}"] for r in rows], marker="o", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    if rows:
        best = min(rows, key=lambda r: r["val_loss"])
        loss_ax.axvline(best["epoch"], color="grey", linestyle="--", linewidth=1)
    return _save(fig, out)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def _kv_table(mapping: Mapping[str, Any]) -> list[str]:
    lines = ["| key | value |", "|---|---|"]
    lines += [f"| {key} | {_fmt(value)} |" for key, value in mapping.items()]
    return [*lines, ""]


def _section(title: str, value: Any) -> list[str]:
    if value is None or value == {} or value == []:
        return []
    body = _kv_table(value) if isinstance(value, Mapping) else [_fmt(value), ""]
    return [f"## {title}", "", *body]


def write_model_card(out_dir: Path, card: dict) -> tuple[Path, Path]:
    """``card.json`` (``card`` as is) and ``card.md``, a readable card, in ``out_dir``.

    Keys read (all optional): ``title`` (or ``name``), ``date``, ``arch``, ``data`` (the
    dataset's describe dict), ``split``, ``preprocessing``, ``config`` (training config),
    ``result`` (a TrainResult as a dict), ``metrics`` (``classification_metrics``),
    ``weights_sha256``. ``confusion.png`` and ``curves.png`` in ``out_dir`` are embedded."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "card.json"
    json_path.write_text(json.dumps(card, indent=2, default=str) + "\n", encoding="utf-8")

    title = card.get("title") or card.get("name") or card.get("arch") or "Model"
    date = card.get("date") or datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# {title}", "", f"Date: {date}", ""]
    if card.get("arch"):
        lines += [f"Architecture: `{card['arch']}`", ""]
    lines += _section("Data", card.get("data"))
    lines += _section("Split", card.get("split"))
    lines += _section("Preprocessing", card.get("preprocessing"))
    lines += _section("Training configuration", card.get("config"))
    result = card.get("result")
    if isinstance(result, Mapping):
        lines += _section("Training result", {k: v for k, v in result.items() if k != "history"})

    metrics = card.get("metrics") or {}
    if metrics:
        k = metrics.get("top5_k", 5)
        lines += [
            "## Metrics",
            "",
            f"| samples | top-1 | top-{k} | macro F1 | macro precision | macro recall |",
            "|---:|---:|---:|---:|---:|---:|",
            "| {} | {} | {} | {} | {} | {} |".format(
                metrics.get("samples", ""),
                *(
                    _fmt(metrics.get(key, ""))
                    for key in ("top1", "top5", "macro_f1", "macro_precision", "macro_recall")
                ),
            ),
            "",
        ]
    per_class = metrics.get("per_class") or []
    if per_class:
        lines += [
            "## Per breed",
            "",
            "| breed | precision | recall | F1 | support |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {row['class']} | {row['precision']:.3f} | {row['recall']:.3f} | "
            f"{row['f1']:.3f} | {row['support']} |"
            for row in per_class
        ]
        lines.append("")
    confusions = metrics.get("top_confusions") or []
    if confusions:
        lines += ["## Top confusions", "", "| true | predicted | count |", "|---|---|---:|"]
        lines += [f"| {c['true']} | {c['predicted']} | {c['count']} |" for c in confusions]
        lines.append("")
    if card.get("weights_sha256"):
        lines += ["## Weights", "", f"sha256 `{card['weights_sha256']}`", ""]
    for name, caption in (("curves.png", "Learning curves"), ("confusion.png", "Confusion matrix")):
        if (out_dir / name).is_file():
            lines += [f"## {caption}", "", f"![{caption}]({name})", ""]
    md_path = out_dir / "card.md"
    md_path.write_text("\n".join(lines), encoding="utf-8")
    return json_path, md_path
