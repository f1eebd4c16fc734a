"""``pawdex train | evaluate | tune | experiment | augment-grid``: the study's pipeline."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from pawdex.core.settings import get_settings

Data = Annotated[
    Path,
    typer.Argument(
        exists=True, file_okay=False,
        help="Stanford Dogs root (Images/, Annotation/, train_list.mat …) or an ImageFolder tree.",
    ),
]  # fmt: skip
Arch = Annotated[
    str,
    typer.Option(help="lenet5, smallcnn, efficientnet_lite0/1/2 (shipped), or a timm name."),
]
Breeds = Annotated[
    str | None, typer.Option(help="Train on a subset: a number (the first N) or names a,b,c.")
]


def _feature_cache() -> Path:
    return get_settings().data_dir / "cache" / "features"


def _options(data: Path, out: Path, **kw):
    from pawdex.ml.pipeline import TrainOptions
    from pawdex.ml.train import TrainConfig

    train_fields = {k: kw.pop(k) for k in list(kw) if k in TrainConfig.__dataclass_fields__}
    return TrainOptions(data=data, out=out, train=TrainConfig(**train_fields), **kw)


def train(
    data: Data,
    arch: Arch = "efficientnet_lite0",
    breeds: Breeds = None,
    name: Annotated[
        str | None, typer.Option(help="Model directory name (default: made up).")
    ] = None,
    out_root: Annotated[
        Path | None, typer.Option("--models-dir", help="Default: the data dir's models/.")
    ] = None,
    crop: Annotated[
        bool, typer.Option(help="Crop photos to the dog's box (Stanford Dogs).")
    ] = False,
    preset: Annotated[
        str,
        typer.Option(help="Augmentation, e.g. flip, crop+flip, trivialaugment (see augment-grid)."),
    ] = "flip",
    eval_preset: Annotated[
        str, typer.Option(help="Deterministic preprocessing (serving needs 'none').")
    ] = "none",
    hidden: Annotated[
        int | None, typer.Option(help="MLP head width (default: linear head).")
    ] = None,
    dropout: float = 0.2,
    finetune_blocks: Annotated[
        int, typer.Option(help="Then fine-tune the last N backbone blocks.")
    ] = 0,
    finetune_epochs: int = 5,
    epochs: int = 30,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    optimizer: Annotated[str, typer.Option(help="adamw or sgd")] = "adamw",
    schedule: Annotated[str, typer.Option(help="cosine, step or none")] = "cosine",
    label_smoothing: float = 0.0,
    patience: Annotated[int, typer.Option(help="Early stopping on val loss (0: off).")] = 10,
    batch_size: int = 64,
    seed: int = 0,
    device: str = "auto",
    weights: Annotated[
        Path | None, typer.Option(help="Local ImageNet weights (timm state dict).")
    ] = None,
    allow_download: Annotated[
        bool, typer.Option(help="Let timm fetch weights from its hub.")
    ] = False,
    val_fraction: float = 0.2,
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoints in --name.")] = False,
    activate: Annotated[bool, typer.Option(help="Serve it once trained.")] = False,
) -> None:
    """Train a breed model and write it as a versioned directory (weights, classes,
    preprocessing, metrics, model card, confusion matrix, learning curves)."""
    from pawdex.ml.pipeline import train as run

    settings = get_settings()
    root = out_root or settings.models_dir
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = root / (name or f"{arch}-{(breeds or 'all').replace(',', '_')}-breeds-{stamp}")
    if out.exists() and (out / "model.json").exists() and not resume:
        raise typer.BadParameter(f"{out} already holds a model; pick another --name or --resume")
    opts = _options(
        data, out, arch=arch, breeds=breeds, crop=crop, preset=preset, eval_preset=eval_preset,
        hidden=hidden, dropout=dropout, finetune_blocks=finetune_blocks,
        finetune_epochs=finetune_epochs, weights=weights, allow_download=allow_download,
        val_fraction=val_fraction, resume=resume, cache_dir=_feature_cache(),
        epochs=epochs, lr=lr, weight_decay=weight_decay, optimizer=optimizer, schedule=schedule,
        label_smoothing=label_smoothing, patience=patience, batch_size=batch_size, seed=seed,
        device=device,
    )  # fmt: skip
    report = run(opts)
    m = report.metrics
    typer.echo(
        f"{out}\n  {report.eval_split}: top-1 {m['top1']:.3f}  top-5 {m['top5']:.3f}  "
        f"macro F1 {m['macro_f1']:.3f}"
    )
    if report.feature_seconds_per_1000 is not None:
        typer.echo(f"  features: {report.feature_seconds_per_1000:.1f} s per 1,000 photos")
    if activate:
        from pawdex.cli.models import models_activate

        models_activate(str(out), reindex=False)


def evaluate(
    model: Annotated[str, typer.Argument(help="A model directory or a built-in model name.")],
    data: Data,
    breeds: Breeds = None,
    split: Annotated[
        str, typer.Option(help="test (or val when there is no test list), val, all")
    ] = "test",
    out: Annotated[Path | None, typer.Option(help="Default: <model dir>/eval-<data name>.")] = None,
) -> None:
    """Top-1/top-5, per-breed precision/recall, macro F1, confusion matrix and a card."""
    from pawdex.cli.models import _resolve
    from pawdex.ml.pipeline import evaluate as run

    settings = get_settings()
    classifier = _resolve(model, settings)
    base = Path(getattr(classifier, "path", settings.data_dir / "evaluations" / classifier.name))
    target = out or base / f"eval-{data.name}"
    result = run(classifier, data, target, breeds=breeds, split=split)
    m = result.metrics
    typer.echo(
        f"{classifier.version} on {result.samples} photos: top-1 {m['top1']:.3f}  "
        f"top-5 {m['top5']:.3f}  macro F1 {m['macro_f1']:.3f}\n  {target}"
    )
    if result.skipped_classes:
        typer.echo(f"  not known to the model (left out): {', '.join(result.skipped_classes)}")


def tune(
    data: Data,
    arch: Arch = "efficientnet_lite0",
    breeds: Breeds = None,
    trials: int = 20,
    timeout: Annotated[float | None, typer.Option(help="Seconds for the whole search.")] = None,
    epochs: int = 30,
    finetune: Annotated[
        bool, typer.Option(help="Also search freeze depth and augmentation.")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Default: the data dir's tune/<stamp>.")] = None,
    seed: int = 0,
) -> None:
    """Search learning rate, weight decay, dropout, head width (and with --finetune the
    freeze depth and augmentation) with Optuna; writes trials.csv and best.json."""
    from pawdex.ml.tune import tune as run

    settings = get_settings()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    target = out or settings.data_dir / "tune" / stamp
    opts = _options(
        data, target, arch=arch, breeds=breeds, epochs=epochs, seed=seed,
        cache_dir=_feature_cache(), progress=False,
    )  # fmt: skip
    report = run(opts, target, trials=trials, timeout=timeout, search_finetune=finetune)
    typer.echo(f"best val loss {report.best_value:.4f}: {report.best_params}")
    typer.echo(f"  {report.table}\n  {report.best}")


def experiment(
    data: Data,
    out: Annotated[Path, typer.Option(help="Folder for the runs and results.md.")] = Path(
        "experiment"
    ),
    epochs: int = 30,
    weights_dir: Annotated[
        Path | None, typer.Option(help="vgg16.pth, resnet50.pth (timm state dicts).")
    ] = None,
    allow_download: bool = False,
) -> None:
    """Rerun the seed study's table (4-breed LeNet-5 vs custom CNN vs VGG16/ResNet50/Lite0
    heads, then 20 and 120 breeds) and write results.md."""
    from pawdex.ml.experiment import run

    _rows, table = run(
        data, out, epochs=epochs, weights_dir=weights_dir, allow_download=allow_download
    )
    typer.echo(table.read_text())
    typer.echo(str(table))


def augment_grid(
    photos: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False)],
    preset: Annotated[
        str, typer.Option(help="Options joined by +, e.g. trivialaugment+gray.")
    ] = "trivialaugment",
    out: Path = Path("augment-grid.png"),
    size: int = 224,
    samples: int = 4,
) -> None:
    """Save a PNG of what an augmentation preset does to a few photos."""
    from pawdex.ml.augment import OPTIONS, save_preset_grid

    try:
        path = save_preset_grid(preset, photos, out, size=size, samples=samples)
    except ValueError as exc:
        known = "\n".join(f"  {k}: {v}" for k, v in OPTIONS.items())
        raise typer.BadParameter(f"{exc}\nknown options:\n{known}") from None
    typer.echo(str(path))
