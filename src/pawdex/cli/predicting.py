"""``pawdex predict``: the study's deliverable, photo → most probable breed and %."""

from __future__ import annotations

from pathlib import Path

import typer

from pawdex.core.errors import UnsupportedImage
from pawdex.core.imaging import DecodeBudget, open_image
from pawdex.core.settings import Settings

BATCH = 32


def format_prediction(name: str, prediction, top: int) -> str:
    if prediction.breed is None:
        line = f"{name}: not a dog ({prediction.species}, {prediction.species_confidence:.1%})"
    else:
        line = f"{name}: {prediction.breed} {prediction.confidence:.1%}"
    if top > 1:
        line += "".join(
            f"\n  {rank}. {breed:<32} {conf:6.1%}"
            for rank, (breed, conf) in enumerate(prediction.top_k[:top], start=1)
        )
    return line


def predict_files(photos: list[Path], top: int, model_name: str, settings: Settings) -> int:
    """Print one line per photo (more with ``top``); returns the number of unreadable files."""
    from pawdex.ml import load_classifier
    from pawdex.ml.quantize import calibration_photos

    folder = settings.calibration_dir
    model = load_classifier(
        model_name, settings.device, settings.runtime, settings.onnx_cache_dir,
        calibration_photos(folder) if folder is not None else (),
    )  # fmt: skip
    budget = DecodeBudget.of(settings)
    failures = 0
    for start in range(0, len(photos), BATCH):
        chunk = photos[start : start + BATCH]
        images, names = [], []
        for path in chunk:
            try:
                img, _ = open_image(path.read_bytes(), settings.max_image_pixels, budget=budget)
            except (UnsupportedImage, OSError) as exc:
                typer.secho(f"{path}: error: {exc}", fg="red", err=True)
                failures += 1
                continue
            images.append(img)
            names.append(str(path))
        for name, prediction in zip(names, model.predict(images) if images else [], strict=True):
            typer.echo(format_prediction(name, prediction, top))
    return failures
