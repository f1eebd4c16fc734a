"""The upload page sends a file larger than one chunk as a resumable upload (tus 1.0): cut
off by a lost network it waits and carries on when the network is back, and after the page
was closed, the same file dropped again carries on where the server stopped. A real
embedded stack whose chunks are small (PAWDEX_RESUMABLE_CHUNK_BYTES), Debian's Chromium."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.factories import jpeg_bytes, make_zip
from tests.stack import Stack, base_env, running_stack, wait_job

if not Path("/usr/bin/chromium").exists():
    if os.environ.get("CI"):
        raise RuntimeError("/usr/bin/chromium is missing (apt-get install chromium)")
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(os.environ.get("PAWDEX_ARTIFACTS_DIR", Path(__file__).parent / "artifacts"))
CHUNK = 64 * 1024
PHOTOS = 16
UPLOADS = "**/v1/uploads/*"
JOB_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Stack:
    root = tmp_path_factory.mktemp("resumable-ui")
    env = base_env(root / "var", PAWDEX_BATCH_SIZE="4", PAWDEX_RESUMABLE_CHUNK_BYTES=str(CHUNK))
    with running_stack(env, root / "logs", embedded=True) as stack:
        yield stack


def archive(folder: Path, name: str, seed: int) -> Path:
    photos = {f"kennel/{i:02d}.jpg": jpeg_bytes(seed=seed + i) for i in range(PHOTOS)}
    path = make_zip(folder / name, photos)
    assert path.stat().st_size > 6 * CHUNK
    return path


def sign_in(page, stack: Stack) -> None:
    page.goto(f"{stack.url}/ui/login?next={quote('/ui/upload')}")
    page.get_by_label("API key").fill(stack.headers["X-API-Key"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{stack.url}/ui/upload")
    page.wait_for_selector("body[data-ready=true]")


class Gate:
    """Lets the first ``through`` chunks (PATCH) reach the server and holds back the rest;
    records the offset of every chunk the page sends."""

    def __init__(self, page, through: int) -> None:
        self.page, self.through = page, through
        self.offsets: list[int] = []
        self.held: list = []
        page.on("request", self._seen)
        page.route(UPLOADS, self._route)

    def _seen(self, request) -> None:
        if request.method == "PATCH":
            self.offsets.append(int(request.headers["upload-offset"]))

    def _route(self, route) -> None:
        if route.request.method == "PATCH" and self.through <= 0:
            self.held.append(route)  # neither sent nor failed: the connection hangs
            return
        self.through -= route.request.method == "PATCH"
        route.continue_()

    def wait_held(self) -> None:
        for _ in range(600):
            if self.held:
                return
            self.page.wait_for_timeout(50)
        raise AssertionError(f"no chunk held back; offsets sent: {self.offsets}")

    def open(self) -> None:
        self.page.unroute(UPLOADS)


def finished_job(stack: Stack, item) -> dict:
    link = item.get_by_test_id("job-link")
    expect(link).to_be_visible(timeout=JOB_TIMEOUT_S * 1000)
    assert item.locator("progress").evaluate("p => p.value") == 100
    job_id = link.get_attribute("href").rsplit("/", 1)[-1]
    with httpx.Client(base_url=stack.url, headers=stack.headers, timeout=30) as client:
        return wait_job(client, job_id, timeout=JOB_TIMEOUT_S)


def test_an_upload_cut_off_by_the_network_carries_on_when_it_is_back(stack, tmp_path, new_page):
    page = new_page()
    sign_in(page, stack)
    expect(page.get_by_test_id("resumable-note")).to_contain_text("over 0.0625 MiB")
    gate = Gate(page, through=3)
    path = archive(tmp_path, "intake.zip", 100)
    page.get_by_test_id("file-input").set_input_files(path)
    item = page.get_by_test_id("upload-item")
    gate.wait_held()
    assert 0 < item.locator("progress").evaluate("p => p.value") < 100

    page.context.set_offline(True)  # the laptop lid closes: the chunk in flight fails
    gate.held[0].abort("internetdisconnected")
    expect(item.get_by_test_id("upload-waiting")).to_contain_text("waiting for the network")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "upload-resumable-offline.png"), full_page=True)
    gate.open()
    page.context.set_offline(False)

    job = finished_job(stack, item)
    assert (job["name"], job["kind"], job["status"]) == ("intake.zip", "archive", "succeeded")
    assert job["done"] == PHOTOS
    # The chunk that failed went again, from where the server had stopped; then the rest.
    size = path.stat().st_size
    assert gate.offsets == [0, CHUNK, 2 * CHUNK, 3 * CHUNK, *range(3 * CHUNK, size, CHUNK)]


def test_an_upload_whose_page_was_closed_carries_on_when_the_file_is_dropped_again(
    stack, tmp_path, new_page
):
    page = new_page()
    sign_in(page, stack)
    path = archive(tmp_path, "kennel-2021.zip", 200)
    gate = Gate(page, through=4)
    page.get_by_test_id("file-input").set_input_files(path)
    gate.wait_held()

    page.reload()  # the tab was closed and opened again: only localStorage remains
    page.wait_for_selector("body[data-ready=true]")
    gate.open()
    for route in gate.held:
        with contextlib.suppress(sync_api.Error):  # it may have gone with the page
            route.abort()
    sent_before = len(gate.offsets)
    page.get_by_test_id("file-input").set_input_files(path)
    item = page.get_by_test_id("upload-item")
    expect(item).to_have_count(1)

    job = finished_job(stack, item)
    assert (job["name"], job["status"], job["done"]) == ("kennel-2021.zip", "succeeded", PHOTOS)
    # From where the server had stopped (the chunk held back never reached it), not from 0.
    assert gate.offsets[:sent_before] == [0, CHUNK, 2 * CHUNK, 3 * CHUNK, 4 * CHUNK]
    assert gate.offsets[sent_before:] == list(range(4 * CHUNK, path.stat().st_size, CHUNK))
