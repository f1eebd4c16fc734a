"""Fixtures shared by every test layer."""

from __future__ import annotations

import csv
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from pawdex.model_names import FAST_MODEL

PHOTOS_DIR = Path(
    os.environ.get("PAWDEX_PHOTOS_DIR", Path(__file__).resolve().parents[2] / "shared" / "photos")
)


@dataclass(frozen=True)
class LabelledPhoto:
    path: Path
    breed: str  # Stanford Dogs name, or "not_dog"

    @property
    def is_dog(self) -> bool:
        return self.breed != "not_dog"


@pytest.fixture(scope="session")
def labelled_photos() -> list[LabelledPhoto]:
    """The real labelled photos beside the repository (never copied into it)."""
    labels = PHOTOS_DIR / "labels.csv"
    if not labels.is_file():
        pytest.skip(f"real photos not found at {PHOTOS_DIR} (set PAWDEX_PHOTOS_DIR)")
    with labels.open(newline="") as fh:
        return [LabelledPhoto(PHOTOS_DIR / row["file"], row["breed"]) for row in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models: one thread beats a team of spinning ones on a shared machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TEST_MODEL = FAST_MODEL  # the fastest; tests share one loaded instance


@pytest.fixture(scope="session")
def classifier():
    """One loaded default model for the whole test session."""
    # The worker's per-process cache: eager tests and direct tests share this one instance.
    from pawdex.core.settings import Settings
    from pawdex.worker.model_cache import get_classifier

    return get_classifier(Settings(model=TEST_MODEL, device="cpu"))


@contextmanager
def embedded_settings_at(monkeypatch, data_dir: Path, **env: str):
    """Embedded mode (SQLite + filesystem broker) in ``data_dir``, schema migrated; ``env``
    adds or overrides ``PAWDEX_*`` variables."""
    from pawdex.core.migrate import upgrade_to_head
    from pawdex.core.settings import get_settings

    # Lite0, the fastest model, is the one the test session shares (the default is Lite1).
    defaults = {
        "PAWDEX_DATA_DIR": str(data_dir),
        "PAWDEX_DEVICE": "cpu",
        "PAWDEX_MODEL": TEST_MODEL,
    }
    for name, value in {**defaults, **env}.items():
        monkeypatch.setenv(name, value)
    for name in ("PAWDEX_DATABASE_URL", "PAWDEX_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    settings = get_settings()
    upgrade_to_head(settings)
    try:
        yield settings
    finally:
        get_settings.cache_clear()


@pytest.fixture
def embedded_settings(tmp_path, monkeypatch):
    """Embedded mode in a fresh data dir, schema migrated."""
    with embedded_settings_at(monkeypatch, tmp_path / "var", PAWDEX_BATCH_SIZE="4") as settings:
        yield settings


@pytest.fixture
def served_model(embedded_settings, classifier):
    """The test model, registered as the served version the way a worker registers it when
    it starts (looking the model up never writes)."""
    from pawdex.worker.model_cache import preload

    preload(embedded_settings)
    return classifier


@contextmanager
def _eager_client(settings):
    from fastapi.testclient import TestClient

    import pawdex.worker.tasks  # noqa: F401  registers the tasks
    from pawdex.api.main import create_app
    from pawdex.core.queue import get_celery

    celery = get_celery(settings)
    celery.conf.task_always_eager = True
    try:
        with TestClient(create_app(settings)) as client:
            client.headers["X-API-Key"] = make_key(settings, "admin")
            yield client
    finally:
        celery.conf.task_always_eager = False


@pytest.fixture
def eager_client(embedded_settings, served_model):
    """The API in-process with Celery eager: uploads are indexed before the 202 returns."""
    with _eager_client(embedded_settings) as client:
        yield client


@pytest.fixture
def eager_client_before_any_worker(embedded_settings):
    """``eager_client`` before any worker started: no model version is registered yet."""
    with _eager_client(embedded_settings) as client:
        yield client


def make_key(settings, role: str) -> str:
    """A new API key of ``role`` in the settings' database (plain text)."""
    from pawdex.core.db import session_scope
    from pawdex.core.keys import create_key
    from pawdex.core.models import Role

    with session_scope(settings) as session:
        return create_key(session, Role(role), f"test {role}")[1]


def import_or_skip(module: str, install: str):
    """``module``, imported; missing, the test is skipped (failed in CI, which installs
    everything). ``install``: what the message tells to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        message = f"{install} is not installed ({exc}): `make install` installs it"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs everything: never skip there
        pytest.skip(message)


@pytest.fixture
def s3_env(monkeypatch, tmp_path):
    """Credentials for an S3 server of our own only: no profile or config of this machine."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
