"""The model a worker serves: the active version (looked up for every batch, so activating a
model switches the workers without a restart), loaded once per process, and its database
identity."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from pawdex.core.db import session_scope
from pawdex.core.model_versions import ModelSpec, active_spec, register_version
from pawdex.core.settings import Settings
from pawdex.ml import BreedClassifier, load_classifier
from pawdex.worker.presence import describe_model

log = logging.getLogger("pawdex.worker")


def get_classifier(settings: Settings, spec: ModelSpec | None = None) -> BreedClassifier:
    """``spec``'s classifier, by default ``PAWDEX_MODEL``'s."""
    spec = spec or ModelSpec(settings.model)
    return _classifier(spec, settings.device, settings.runtime, settings.onnx_cache_dir)


def active_classifier(settings: Settings) -> tuple[BreedClassifier, int]:
    """The classifier of the active model version (``PAWDEX_MODEL`` while none is active)
    and that version's id."""
    with session_scope(settings) as session:
        spec = active_spec(session, settings.model)
    model = get_classifier(settings, spec)
    return model, model_version_id(model, settings)


@lru_cache(maxsize=2)  # the active model, and the one it just replaced
def _classifier(
    spec: ModelSpec, device: str, runtime: str, cache_dir: Path | None
) -> BreedClassifier:
    if spec.path is not None:
        from pawdex.ml.trained import TrainedClassifier

        model: BreedClassifier = TrainedClassifier(spec.path, device, runtime, cache_dir)
    else:
        model = load_classifier(spec.name, device=device, runtime=runtime, cache_dir=cache_dir)
    model.load()
    log.info(
        "event=model_loaded model=%s version=%s device=%s runtime=%s",
        model.name, model.version, model.device, model.runtime,
    )  # fmt: skip
    describe_model(str(model.device), model.runtime, model.version)
    return model


def model_details(model: BreedClassifier) -> dict:
    details: dict = {"input_size": model.input_size}
    path = getattr(model, "path", None)
    if path is not None:
        details["path"] = str(Path(path).resolve())
    return details


_version_ids: dict[tuple[str, str], int] = {}


def model_version_id(model: BreedClassifier, settings: Settings) -> int:
    """Register the model version once; the first one registered becomes the active one."""
    key = (settings.resolved_database_url, model.version)
    if key in _version_ids:
        return _version_ids[key]
    with session_scope(settings) as session:
        from pawdex.core.model_versions import active_version

        first = active_version(session) is None
        row = register_version(
            session, model.version, model.name, model_details(model), activate=first
        )
        _version_ids[key] = row.id
    return _version_ids[key]


def preload(settings: Settings) -> None:
    """Load the served model before taking tasks, so the first batch does not wait for it."""
    active_classifier(settings)
