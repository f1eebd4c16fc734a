"""A real embedded stack (API + Celery workers, SQLite, filesystem broker) and Debian's
Chromium driven by Playwright, once per test module."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.photo_archives import pick, shelter_zip
from tests.stack import Stack, base_env, pawdex, running_stack, wait_job

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
TIMEOUT_MS = 20_000


@dataclass
class UiStack:
    stack: Stack
    env: dict[str, str]
    admin_key: str
    archivist_key: str

    @property
    def url(self) -> str:
        return self.stack.url

    @property
    def nas(self) -> Path:
        """The folder under which admins may register libraries."""
        return Path(json.loads(self.env["PAWDEX_LIBRARY_ROOTS"])[0])

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"X-API-Key": key or self.admin_key}, timeout=30
        )


@dataclass
class Indexed:
    job_id: str
    animals: list[dict]


@pytest.fixture(scope="module")
def ui_stack(tmp_path_factory) -> UiStack:
    root = tmp_path_factory.mktemp("ui")
    (root / "nas").mkdir()
    libraries = json.dumps([str(root / "nas")])
    env = base_env(root / "var", PAWDEX_BATCH_SIZE="4", PAWDEX_LIBRARY_ROOTS=libraries)
    with running_stack(env, root / "logs", embedded=True) as stack:
        created = pawdex(
            "keys", "create", "--role", "archivist", "--name", "Ada Archivist", env=env, timeout=60
        )
        assert created.returncode == 0, created.stderr
        archivist_key = created.stdout.strip().splitlines()[-1].strip()
        yield UiStack(stack, env, stack.headers["X-API-Key"], archivist_key)


@pytest.fixture(scope="module")
def archives(labelled_photos, tmp_path_factory) -> dict[str, Path]:
    """``indexed``: 12 real photos (10 dogs, 2 not) plus a duplicate and two bad entries;
    ``upload``: 5 other dogs, the same extras: what the upload page sends."""
    folder = tmp_path_factory.mktemp("archives")
    first = pick(labelled_photos, dogs=10, others=2)
    others = [p for p in labelled_photos if p.is_dog and p not in first][3::9][:5]
    return {
        "indexed": shelter_zip(folder / "shelter.zip", first)[0],
        "upload": shelter_zip(folder / "kennel-2021.zip", others)[0],
    }


@pytest.fixture(scope="module")
def indexed(ui_stack: UiStack, archives) -> Indexed:
    """The ``indexed`` archive uploaded through the API and finished."""
    with ui_stack.client() as client:
        with archives["indexed"].open("rb") as fh:
            accepted = client.post("/v1/archives", files={"file": ("shelter.zip", fh)})
        assert accepted.status_code == 202, accepted.text
        job = wait_job(client, accepted.json()["job_id"], timeout=300)
        assert job["status"] in {"succeeded", "partial"}, job
        page = client.get("/v1/photos", params={"job_id": job["id"], "limit": 500}).json()
    assert len(page["items"]) >= 10
    return Indexed(job["id"], page["items"])


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser):
    """``new_page(viewport=…)``: a fresh browser context (no cookie) and its page. Uncaught
    script errors and Content-Security-Policy violations fail the test."""
    contexts = []
    problems: list[str] = []

    def make(width: int = 1280, height: int = 900):
        context = browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on(
            "console",
            lambda msg: (
                problems.append(f"console: {msg.text}")
                if msg.type == "error" and "Content Security Policy" in msg.text
                else None
            ),
        )
        return page

    yield make
    for context in contexts:
        context.close()
    assert not problems, problems
