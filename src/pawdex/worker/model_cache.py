"""The model a worker serves: the active version (looked up for every batch, so activating a
model switches the workers without a restart), loaded once per process, and its database
identity.

Looking the model up never writes: a version is registered when a worker preloads it (the
first one registered becomes the active one) or when an admin activates one
(``pawdex models activate``)."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pawdex.core.db import session_factory
from pawdex.core.model_versions import ModelSpec, active_spec, active_version, register_version
from pawdex.core.models import ModelVersion
from pawdex.core.settings import Settings
from pawdex.ml import BreedClassifier, load_classifier
from pawdex.ml.quantize import calibration_photos
from pawdex.worker.presence import describe_model

log = logging.getLogger("pawdex.worker")


def get_classifier(settings: Settings, spec: ModelSpec | None = None) -> BreedClassifier:
    """``spec``'s classifier, by default ``PAWDEX_MODEL``'s."""
    spec = spec or ModelSpec(settings.model)
    calibration = calibration_photos_in(settings.calibration_dir)
    return _classifier(
        spec, settings.device, settings.runtime, settings.onnx_cache_dir, calibration
    )


@lru_cache(maxsize=4)
def calibration_photos_in(folder: Path | None) -> tuple[Path, ...]:
    """The photos ``onnx-int8`` is calibrated on (``PAWDEX_CALIBRATION_DIR``): listed once
    per process, since the model is looked up for every batch."""
    return tuple(calibration_photos(folder)) if folder is not None else ()


class ModelNotRegistered(RuntimeError):
    """The model to serve has no version row: no worker preloaded it."""


def active_classifier(
    settings: Settings, sessions: sessionmaker[Session] | None = None
) -> tuple[BreedClassifier, int]:
    """The classifier of the active model version (``PAWDEX_MODEL`` while none is active)
    and that version's id. Reads only."""
    sessions = sessions or session_factory(settings)
    with sessions() as session:
        spec = active_spec(session, settings.model)
    model = get_classifier(settings, spec)
    key = (settings.resolved_database_url, model.version)
    if key not in _version_ids:
        with sessions() as session:
            found = session.scalar(
                select(ModelVersion.id).where(ModelVersion.version == model.version)
            )
        if found is None:
            raise ModelNotRegistered(
                f"model version {model.version} is not registered: workers register the model "
                "they serve when they start (pawdex worker), admins with pawdex models activate"
            )
        _version_ids[key] = found
    return model, _version_ids[key]


@lru_cache(maxsize=2)  # the active model, and the one it just replaced
def _classifier(
    spec: ModelSpec,
    device: str,
    runtime: str,
    cache_dir: Path | None,
    calibration: tuple[Path, ...],
) -> BreedClassifier:
    if spec.path is not None:
        from pawdex.ml.trained import TrainedClassifier

        model: BreedClassifier = TrainedClassifier(
            spec.path, device, runtime, cache_dir, calibration
        )
    else:
        model = load_classifier(spec.name, device, runtime, cache_dir, calibration)
    model.load()
    log.info(
        "event=model_loaded model=%s version=%s device=%s runtime=%s",
        model.name, model.version, model.device, model.runtime,
    )  # fmt: skip
    describe_model(str(model.device), model.runtime, model.version)
    return model


def model_details(model: BreedClassifier) -> dict:
    # resize_size: ingest makes thumbnails at least this big, so classify reads them and
    # never decodes an original again.
    details: dict = {"input_size": model.input_size, "resize_size": model.preset.resize_size}
    path = getattr(model, "path", None)
    if path is not None:
        details["path"] = str(Path(path).resolve())
    return details


_version_ids: dict[tuple[str, str], int] = {}


def preload(settings: Settings) -> BreedClassifier:
    """Load the served model before taking tasks, so the first batch does not wait for it,
    and register its version (the first one registered becomes the active one)."""
    sessions = session_factory(settings)
    with sessions() as session:
        spec = active_spec(session, settings.model)
    model = get_classifier(settings, spec)
    with sessions.begin() as session:
        first = active_version(session) is None
        row = register_version(
            session, model.version, model.name, model_details(model), activate=first
        )
        _version_ids[(settings.resolved_database_url, model.version)] = row.id
    return model
