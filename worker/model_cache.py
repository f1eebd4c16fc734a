"""One classifier per worker process, loaded on first use, and its database identity."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from sqlalchemy import select

from core.db import session_scope
from core.jobs import insert_ignoring_conflicts
from core.models import ModelVersion
from core.settings import Settings
from ml import BreedClassifier, load_classifier
from worker.presence import describe_model

log = logging.getLogger("pawdex.worker")


def get_classifier(settings: Settings) -> BreedClassifier:
    return _classifier(settings.model, settings.device, settings.runtime, settings.onnx_cache_dir)


@lru_cache
def _classifier(
    model_name: str, device: str, runtime: str, cache_dir: Path | None
) -> BreedClassifier:
    model = load_classifier(model_name, device=device, runtime=runtime, cache_dir=cache_dir)
    model.load()
    log.info(
        "event=model_loaded model=%s version=%s device=%s runtime=%s",
        model.name, model.version, model.device, model.runtime,
    )  # fmt: skip
    return model


_version_ids: dict[tuple[str, str], int] = {}


def model_version_id(model: BreedClassifier, settings: Settings) -> int:
    """Register the model version once; the first one registered becomes the active one."""
    key = (settings.resolved_database_url, model.version)
    if key in _version_ids:
        return _version_ids[key]
    with session_scope(settings) as session:
        stmt = insert_ignoring_conflicts(session, ModelVersion, ["version"]).values(
            version=model.version,
            name=model.name,
            active=False,
            details={"input_size": model.input_size},
        )
        session.execute(stmt)
        row = session.scalar(select(ModelVersion).where(ModelVersion.version == model.version))
        if not session.scalar(select(ModelVersion.id).where(ModelVersion.active.is_(True))):
            row.active = True
        _version_ids[key] = row.id
    return _version_ids[key]


def preload(settings: Settings) -> None:
    """Load the model before taking tasks, so the first batch does not wait for it."""
    model = get_classifier(settings)
    model_version_id(model, settings)
    describe_model(str(model.device), model.runtime, model.version)
