"""The training loop: one loop for whole models and for heads on cached features.

``fit`` checkpoints every epoch (``last.pt``: everything needed to resume exactly) and on
each validation-loss improvement (``best.pt``: the weights), logs ``metrics.csv``, stops early
after ``patience`` epochs without improvement, and leaves the best weights in the model.
"""

from __future__ import annotations

import csv
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from pawdex.fileio import atomic_path, atomic_write_text
from pawdex.ml.devices import autocast, grad_scaler, resolve_device
from pawdex.ml.models import make_head

log = logging.getLogger(__name__)

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "step", "none")
METRICS_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")
CHECKPOINT_FORMAT = 1


@dataclass
class TrainConfig:
    epochs: int = 30
    lr: float = 1e-3
    weight_decay: float = 1e-4  # not applied to biases and norm layers
    optimizer: str = "adamw"  # or "sgd" (momentum 0.9, Nesterov)
    schedule: str = "cosine"  # per epoch; or "step" (step_size, gamma) or "none"
    step_size: int = 10
    gamma: float = 0.1
    label_smoothing: float = 0.0
    patience: int = 10  # epochs without val-loss improvement before stopping; 0: never stop
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    backbone_lr_scale: float = 0.1  # fine-tuning: unfrozen backbone params train at lr x this
    progress: bool = True

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {self.optimizer!r}; known: {', '.join(OPTIMIZERS)}"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; known: {', '.join(SCHEDULES)}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be positive")


@dataclass
class TrainResult:
    best_epoch: int
    best_val_loss: float
    best_val_acc: float
    epochs_run: int
    stopped_early: bool
    seconds_per_epoch: float
    history: list[dict] = field(default_factory=list)  # one dict per epoch, as metrics.csv


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _param_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """Trainable parameters in up to four groups: backbone (lr x backbone_lr_scale) or not,
    with weight decay (weights of rank ≥ 2) or without (biases, norm scales)."""
    backbone = getattr(model, "backbone", None)
    in_backbone = (
        {id(p) for p in backbone.parameters()} if isinstance(backbone, nn.Module) else set()
    )
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for param in model.parameters():
        if param.requires_grad:
            groups.setdefault((id(param) in in_backbone, param.ndim >= 2), []).append(param)
    return [
        {
            "params": params,
            "lr": config.lr * (config.backbone_lr_scale if is_backbone else 1.0),
            "weight_decay": config.weight_decay if decay else 0.0,
        }
        for (is_backbone, decay), params in sorted(groups.items())
    ]


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    groups = _param_groups(model, config)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=config.lr)


def _scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig
) -> torch.optim.lr_scheduler.LRScheduler | None:
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, config.step_size, config.gamma)
    if config.schedule == "cosine":
        # Closed form over config.epochs (not CosineAnnealingLR, whose saved T_max would
        # override a longer resumed run): epoch e trains at lr x ½(1 + cos(π e / epochs)).
        epochs = config.epochs
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda e: 0.5 * (1.0 + math.cos(math.pi * min(e, epochs) / epochs))
        )
    return None


def _run_epoch(
    model: nn.Module,
    loader: DataLoader,
    criterion: nn.Module,
    device: torch.device,
    optimizer: torch.optim.Optimizer | None,
    scaler: torch.amp.GradScaler,
    desc: str,
    progress: bool,
) -> tuple[float, float]:
    """Mean loss and accuracy over ``loader``; trains when ``optimizer`` is given (its
    gradients through ``scaler``, a pass-through unless the precision is float16)."""
    training = optimizer is not None
    model.train(training)
    total_loss, correct, seen = 0.0, 0, 0
    bar = tqdm(loader, desc=desc, unit="batch", leave=False, disable=not progress)
    with torch.set_grad_enabled(training):
        for inputs, targets in bar:
            inputs = inputs.to(device, non_blocking=True)
            targets = torch.as_tensor(targets).to(device, non_blocking=True).long()
            if inputs.ndim == 4:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            with autocast(device):
                logits = model(inputs)
                loss = criterion(logits.float(), targets)
            if optimizer is not None:
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            n = targets.shape[0]
            total_loss += float(loss.detach()) * n
            correct += int((logits.detach().argmax(dim=1) == targets).sum())
            seen += n
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.3f}")
    if seen == 0:
        raise ValueError(f"{desc}: empty dataset")
    return total_loss / seen, correct / seen


def _write_metrics(path: Path, history: list[dict]) -> None:
    def write(fh) -> None:
        writer = csv.DictWriter(fh, fieldnames=METRICS_COLUMNS)
        writer.writeheader()
        writer.writerows(history)

    atomic_write_text(path, write, mode=0o644)


def fit(
    model: nn.Module,
    train_data: Dataset,
    val_data: Dataset,
    config: TrainConfig,
    out_dir: Path,
    *,
    resume: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train ``model`` on ``train_data`` (items ``(input, label)``), validating each epoch.

    Writes ``out_dir/last.pt`` every epoch, ``out_dir/best.pt`` (the model's state dict) on
    each val-loss improvement and ``out_dir/metrics.csv``. ``resume=True`` continues from
    ``last.pt`` when there is one, with the same result as an uninterrupted run; a longer
    ``config.epochs`` extends a finished run. Returns with the best weights loaded, the model
    on the training device."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path, metrics_path = (
        out_dir / "last.pt",
        out_dir / "best.pt",
        out_dir / "metrics.csv",
    )
    device = resolve_device(config.device)
    model.to(device, memory_format=torch.channels_last)
    optimizer = _optimizer(model, config)
    scheduler = _scheduler(optimizer, config)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    scaler = grad_scaler(device)
    shuffle = torch.Generator()

    history: list[dict] = []
    start_epoch, best_epoch, bad_epochs = 0, 0, 0
    best_val_loss, best_val_acc = math.inf, 0.0
    stopped_early = False
    if resume and last_path.is_file():
        state = torch.load(last_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch, history = state["epoch"], state["history"]
        best_epoch, bad_epochs = state["best_epoch"], state["bad_epochs"]
        best_val_loss, best_val_acc = state["best_val_loss"], state["best_val_acc"]
        stopped_early = state["stopped_early"]
        shuffle.set_state(state["shuffle_rng"])
        _set_rng_state(state["rng"])
        log.info("event=train_resume dir=%s epoch=%d", out_dir, start_epoch)
    else:
        if resume:
            log.info("event=train_resume_fresh dir=%s reason=no_last_checkpoint", out_dir)
        seed_everything(config.seed)
        shuffle.manual_seed(config.seed)

    pin = device.type == "cuda"
    train_loader = DataLoader(
        train_data, batch_size=config.batch_size, shuffle=True, generator=shuffle,
        num_workers=config.num_workers, pin_memory=pin,
    )  # fmt: skip
    val_loader = DataLoader(
        val_data, batch_size=config.batch_size, shuffle=False,
        num_workers=config.num_workers, pin_memory=pin,
    )  # fmt: skip

    epochs = tqdm(
        range(start_epoch, config.epochs), desc="epochs", unit="epoch",
        initial=start_epoch, total=config.epochs, disable=not config.progress,
    )  # fmt: skip
    for epoch in epochs:
        if stopped_early:
            break
        started = time.perf_counter()
        lr = max(group["lr"] for group in optimizer.param_groups)
        train_loss, train_acc = _run_epoch(
            model, train_loader, criterion, device, optimizer, scaler, f"train {epoch + 1}",
            config.progress,
        )  # fmt: skip
        val_loss, val_acc = _run_epoch(
            model, val_loader, criterion, device, None, scaler, f"val {epoch + 1}", config.progress
        )
        if scheduler is not None:
            scheduler.step()
        row = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "lr": lr,
            "seconds": time.perf_counter() - started,
        }
        history.append(row)
        if val_loss < best_val_loss:
            best_val_loss, best_val_acc, best_epoch, bad_epochs = val_loss, val_acc, epoch + 1, 0
            with atomic_path(best_path) as tmp:
                torch.save(model.state_dict(), tmp)
        else:
            bad_epochs += 1
            stopped_early = config.patience > 0 and bad_epochs >= config.patience
        checkpoint = {
            "format": CHECKPOINT_FORMAT,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict(),
            "epoch": epoch + 1,
            "best_epoch": best_epoch,
            "best_val_loss": best_val_loss,
            "best_val_acc": best_val_acc,
            "bad_epochs": bad_epochs,
            "stopped_early": stopped_early,
            "history": history,
            "config": asdict(config),
            "shuffle_rng": shuffle.get_state(),
            "rng": _rng_state(),
        }
        with atomic_path(last_path) as tmp:
            torch.save(checkpoint, tmp)
        _write_metrics(metrics_path, history)
        epochs.set_postfix(val_loss=f"{val_loss:.4f}", val_acc=f"{val_acc:.3f}")
        if on_epoch is not None:  # e.g. a tuner's pruning check, which may raise to stop
            on_epoch(row)
        log.info(
            "event=epoch dir=%s epoch=%d train_loss=%.4f train_acc=%.4f val_loss=%.4f "
            "val_acc=%.4f lr=%.3g seconds=%.1f",
            out_dir, epoch + 1, train_loss, train_acc, val_loss, val_acc, lr, row["seconds"],
        )  # fmt: skip
        if stopped_early:
            log.info(
                "event=early_stop dir=%s epoch=%d best_epoch=%d", out_dir, epoch + 1, best_epoch
            )
            break
    epochs.close()

    if best_path.is_file():
        model.load_state_dict(torch.load(best_path, map_location=device, weights_only=True))
    seconds = [row["seconds"] for row in history]
    return TrainResult(
        best_epoch=best_epoch,
        best_val_loss=best_val_loss,
        best_val_acc=best_val_acc,
        epochs_run=len(history),
        stopped_early=stopped_early,
        seconds_per_epoch=sum(seconds) / len(seconds) if seconds else 0.0,
        history=history,
    )


def fit_head(
    features: torch.Tensor,
    labels: torch.Tensor,
    val_features: torch.Tensor,
    val_labels: torch.Tensor,
    num_classes: int,
    config: TrainConfig,
    out_dir: Path,
    *,
    hidden: int | None = None,
    dropout: float = 0.2,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> tuple[nn.Module, TrainResult]:
    """A classification head (``ml.models.make_head``) trained by ``fit`` on cached features.

    ``init = (weight (C, F), bias (C,))`` starts a linear head from those values (e.g. the
    ImageNet classifier rows of the dog synsets). The head is seeded with ``config.seed``."""
    if features.ndim != 2 or val_features.ndim != 2:
        raise ValueError("features must be (N, F) tensors")
    seed_everything(config.seed)
    head = make_head(features.shape[1], num_classes, hidden, dropout)
    if init is not None:
        if hidden is not None:
            raise ValueError("init starts a linear head: leave hidden unset")
        weight, bias = init
        assert isinstance(head, nn.Linear)
        if weight.shape != head.weight.shape or bias.shape != head.bias.shape:
            raise ValueError(
                f"init shapes {tuple(weight.shape)}, {tuple(bias.shape)} do not fit a head "
                f"{tuple(head.weight.shape)}, {tuple(head.bias.shape)}"
            )
        with torch.no_grad():
            head.weight.copy_(weight)
            head.bias.copy_(bias)
    train_data = TensorDataset(features.float(), labels.long())
    val_data = TensorDataset(val_features.float(), val_labels.long())
    result = fit(head, train_data, val_data, config, out_dir, on_epoch=on_epoch)
    return head, result
