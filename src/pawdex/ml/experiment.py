"""``pawdex experiment``: the seed study's table, rerun on Stanford Dogs (or any tree).

Rows, as in the study: 4 breeds with LeNet-5 and the custom CNN trained from scratch and
VGG16 / ResNet50 / EfficientNet-Lite0 heads on frozen ImageNet features; then 20 and 120
breeds with the heads. VGG16 and ResNet50 need their ImageNet weights as local files
(``--weights-dir`` holding ``vgg16.pth`` / ``resnet50.pth``, timm state dicts) or an
explicit ``--allow-download``; without them their rows say so instead of failing the run."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from pawdex.ml.data import load_dataset
from pawdex.ml.models import SCRATCH
from pawdex.ml.pipeline import TrainOptions, train
from pawdex.ml.train import TrainConfig

log = logging.getLogger("pawdex.experiment")

STUDY: tuple[tuple[int, str], ...] = (
    (4, "lenet5"), (4, "smallcnn"), (4, "vgg16"), (4, "resnet50"), (4, "efficientnet_lite0"),
    (20, "vgg16"), (20, "resnet50"), (20, "efficientnet_lite0"),
    (120, "efficientnet_lite0"),
)  # fmt: skip
SHIPPED = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


@dataclass
class Row:
    breeds: int
    arch: str
    mode: str
    epochs: int | None = None
    seconds_per_epoch: float | None = None
    feature_s_per_1000: float | None = None
    top1: float | None = None
    top5: float | None = None
    macro_f1: float | None = None
    note: str = ""


def run(
    data: Path,
    out: Path,
    *,
    rows: tuple[tuple[int, str], ...] = STUDY,
    epochs: int = 30,
    weights_dir: Path | None = None,
    allow_download: bool = False,
    config: TrainConfig | None = None,
) -> tuple[list[Row], Path]:
    available = len(load_dataset(data).classes)
    base = config or TrainConfig(epochs=epochs)
    results: list[Row] = []
    for breeds, arch in rows:
        mode = "scratch" if arch in SCRATCH else "frozen features + head"
        row = Row(breeds, arch, mode)
        weights = weights_dir / f"{arch}.pth" if weights_dir else None
        if breeds > available:
            row.note = f"skipped: the data has {available} breeds"
        elif (
            arch not in SCRATCH + SHIPPED
            and not allow_download
            and not (weights and weights.is_file())
        ):
            row.note = f"skipped: no local ImageNet weights ({arch}.pth in --weights-dir)"
        else:
            report = train(
                TrainOptions(
                    data=data,
                    out=out / f"{breeds}-breeds-{arch}",
                    arch=arch,
                    breeds=str(breeds),
                    weights=weights if weights and weights.is_file() else None,
                    allow_download=allow_download,
                    cache_dir=out / "features",
                    preset="flip" if arch in SCRATCH else "none",
                    train=dataclasses.replace(base),
                )
            )
            stage = report.results[list(report.results)[-1]]
            row.epochs, row.seconds_per_epoch = stage.epochs_run, stage.seconds_per_epoch
            row.feature_s_per_1000 = report.feature_seconds_per_1000
            m = report.metrics
            row.top1, row.top5, row.macro_f1 = m["top1"], m["top5"], m["macro_f1"]
            row.note = f"evaluated on {report.eval_split}"
        log.info("event=experiment_row %s", row)
        results.append(row)
    table = out / "results.md"
    table.write_text(markdown(results, data))
    return results, table


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(rows: list[Row], data: Path) -> str:
    lines = [
        f"# pawdex experiment on `{data}`",
        "",
        "| breeds | model | training | epochs | s/epoch | features s/1000 photos | top-1 | "
        "top-5 | macro F1 | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.breeds} | {r.arch} | {r.mode} | {r.epochs or '-'} | "
            f"{_f(r.seconds_per_epoch, 2)} | {_f(r.feature_s_per_1000, 1)} | {_f(r.top1)} | "
            f"{_f(r.top5)} | {_f(r.macro_f1)} | {r.note} |"
        )
    return "\n".join(lines) + "\n"
