"""The web UI in a real browser against a real embedded stack: what archivists and admins
see and do. Screenshots of each page go to ``tests/browser/artifacts/`` (or
``PAWDEX_ARTIFACTS_DIR``)."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from urllib.parse import parse_qs, quote, urlparse

import pytest

from tests.stack import FINISHED, wait_job

if not Path("/usr/bin/chromium").exists():
    # .ci/run installs it: in CI a missing browser is a failure, never a silent skip.
    if os.environ.get("CI"):
        raise RuntimeError("/usr/bin/chromium is missing (apt-get install chromium)")
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

pytestmark = [pytest.mark.browser, pytest.mark.realphotos]

ARTIFACTS = Path(os.environ.get("PAWDEX_ARTIFACTS_DIR", Path(__file__).parent / "artifacts"))
JOB_TIMEOUT_MS = 240_000


def sign_in(page, base_url: str, key: str, next_path: str = "/ui/") -> None:
    """Through the sign-in page, as a person would."""
    page.goto(f"{base_url}/ui/login?next={quote(next_path)}")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}{next_path}")
    page.wait_for_selector("body[data-ready=true]")


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_sign_in_upload_an_archive_and_watch_its_job_finish(ui_stack, archives, new_page):
    page = new_page()
    page.goto(f"{ui_stack.url}/ui/upload")
    page.wait_for_url(re.compile(r"/ui/login\?next=%2Fui%2Fupload$"))  # 401 → sign in
    page.get_by_label("API key").fill("not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("error-banner")).to_contain_text("invalid or revoked API key")
    screenshot(page, "login.png")

    page.get_by_label("API key").fill(ui_stack.admin_key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{ui_stack.url}/ui/upload")  # back where the user came from
    expect(page.get_by_test_id("whoami-role")).to_have_text("admin")
    expect(page.get_by_test_id("nav-admin")).to_be_visible()

    page.get_by_test_id("file-input").set_input_files(archives["upload"])
    item = page.get_by_test_id("upload-item")
    expect(item).to_contain_text("kennel-2021.zip")
    link = item.get_by_test_id("job-link")
    expect(link).to_be_visible()
    assert item.locator("progress").evaluate("p => p.value") == 100
    screenshot(page, "upload.png")

    link.click()
    page.wait_for_url(re.compile(r"/ui/jobs/[0-9a-f]{32}$"))
    status = page.get_by_test_id("job-status")
    expect(status).to_have_text(re.compile("^(succeeded|partial)$"), timeout=JOB_TIMEOUT_MS)
    value, maximum = page.get_by_test_id("job-progress").evaluate("p => [p.value, p.max]")
    assert value == maximum == 8  # 5 photos, a duplicate, two bad files
    expect(page.get_by_test_id("job-progress-text")).to_contain_text("8 of 8 files processed")
    expect(page.locator("[data-fact=Duplicates]")).to_have_text("1")
    errors = page.get_by_test_id("job-errors")
    expect(errors).to_contain_text("notes/not-a-photo.jpg")
    expect(errors).to_contain_text("2020/truncated.jpg")
    screenshot(page, "job-progress.png")

    page.get_by_test_id("sign-out").click()
    page.wait_for_url(f"{ui_stack.url}/ui/login")
    page.goto(f"{ui_stack.url}/")  # → /ui/ → (the cookie is gone) the sign-in page
    page.wait_for_url(re.compile(r"/ui/login\?next=%2Fui%2F$"))


def test_photos_dropped_on_the_zone_are_uploaded(ui_stack, labelled_photos, new_page):
    page = new_page()
    sign_in(page, ui_stack.url, ui_stack.admin_key, "/ui/upload")
    photos = [p for p in labelled_photos if p.is_dog][-2:]
    files = [
        {"name": p.path.name, "b64": base64.b64encode(p.path.read_bytes()).decode()} for p in photos
    ]
    transfer = page.evaluate_handle(
        """files => {
            const dt = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
                dt.items.add(new File([bytes], f.name, { type: "image/jpeg" }));
            }
            return dt;
        }""",
        files,
    )
    page.get_by_test_id("dropzone").dispatch_event("drop", {"dataTransfer": transfer})
    item = page.get_by_test_id("upload-item")
    expect(item).to_have_count(1)  # the photos travel together, as one job
    expect(item).to_contain_text("2 photos")
    link = item.get_by_test_id("job-link")
    expect(link).to_be_visible()
    job_id = link.get_attribute("href").rsplit("/", 1)[-1]
    with ui_stack.client() as client:
        job = wait_job(client, job_id, timeout=JOB_TIMEOUT_MS / 1000)
    assert job["kind"] == "images" and job["status"] == "succeeded", job
    assert job["total"] == 2


def test_gallery_filters_by_breed_and_keeps_the_filters_in_the_url(ui_stack, indexed, new_page):
    page = new_page()
    sign_in(page, ui_stack.url, ui_stack.admin_key, "/ui/")
    expect(page.get_by_test_id("animal-card").first).to_be_visible()
    page.wait_for_selector("#f-breed[data-loaded=true]")
    options = page.eval_on_selector_all(
        "#f-breed option", "os => os.filter(o => o.value).map(o => [o.value, o.textContent])"
    )
    breed, text = options[0]  # the most frequent breed
    count = int(re.fullmatch(r".+ \((\d+)\)", text).group(1))
    assert text.startswith(breed.replace("_", " "))

    page.get_by_label("Breed").select_option(breed)
    page.get_by_label("Species").select_option("dog")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"\?.*breed="))
    cards = page.get_by_test_id("animal-card")
    expect(cards).to_have_count(count)
    assert set(cards.evaluate_all("cs => cs.map(c => c.dataset.breed)")) == {breed}
    expect(cards.first.get_by_test_id("card-breed")).to_have_text(breed.replace("_", " "))
    query = parse_qs(urlparse(page.url).query)
    assert query == {"breed": [breed], "species": ["dog"]}
    # Thumbnails load: the session cookie authenticates image requests too.
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=animal-card] img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    screenshot(page, "gallery-filtered.png")

    page.reload()  # a link to the filtered gallery shows the same photos
    expect(page.get_by_label("Breed")).to_have_value(breed)
    expect(page.get_by_label("Species")).to_have_value("dog")
    expect(page.get_by_test_id("animal-card")).to_have_count(count)

    # Small pages: the next ones load (next_cursor) as the end of the grid comes into view.
    with ui_stack.client() as client:
        dogs = client.get("/v1/photos", params={"species": "dog", "limit": 500}).json()
    page.goto(f"{ui_stack.url}/ui/?species=dog&limit=4")
    expect(page.get_by_test_id("animal-card")).to_have_count(len(dogs["items"]))
    shown = page.get_by_test_id("animal-card").evaluate_all(
        "cs => cs.map(c => Number(c.dataset.animalId))"
    )
    assert shown == [a["id"] for a in dogs["items"]]
    expect(page.get_by_test_id("load-more")).to_be_hidden()  # the end of the list


def test_archivist_corrects_a_breed_on_the_detail_page(ui_stack, indexed, new_page):
    animal = next(a for a in indexed.animals if a["species"] == "dog")  # most confident dog
    new_breed = "beagle" if animal["breed"] != "beagle" else "basset"
    page = new_page()
    sign_in(page, ui_stack.url, ui_stack.archivist_key, f"/ui/photos/{animal['id']}")
    expect(page.get_by_test_id("whoami-role")).to_have_text("archivist")
    expect(page.get_by_test_id("nav-upload")).to_be_visible()
    expect(page.get_by_test_id("nav-admin")).to_be_hidden()
    expect(page.get_by_test_id("top-k-bar")).to_have_count(5)
    expect(page.get_by_test_id("label-source")).to_have_text("model")
    expect(page.get_by_test_id("animal-breed")).to_have_text(animal["breed"].replace("_", " "))
    page.wait_for_function("() => document.querySelector('#animal-photo').naturalWidth > 0")

    page.get_by_label("Correct breed").select_option(new_breed)
    page.get_by_role("button", name="Correct").click()
    expect(page.get_by_test_id("label-status")).to_have_text(f"Saved: {new_breed}.")
    expect(page.get_by_test_id("label-source")).to_have_text("human")
    expect(page.get_by_test_id("animal-breed")).to_have_text(new_breed)
    expect(page.get_by_test_id("labeled-by")).to_contain_text("Ada Archivist")
    expect(page.get_by_test_id("model-said")).to_have_text(animal["breed"].replace("_", " "))
    screenshot(page, "animal-detail.png")

    page.reload()  # stored, not only shown
    expect(page.get_by_test_id("label-source")).to_have_text("human")
    with ui_stack.client(ui_stack.archivist_key) as client:
        stored = client.get(f"/v1/photos/{animal['id']}").json()
    assert stored["label_source"] == "human"
    assert (stored["species"], stored["breed"]) == ("dog", new_breed)
    assert stored["model_breed"] == animal["breed"]
    assert stored["labeled_by"] == "Ada Archivist"

    page.goto(f"{ui_stack.url}/ui/photos/99999999")  # the API's 404, shown as it says it
    expect(page.get_by_test_id("error-banner")).to_have_text(re.compile("photo 99999999 not found"))


def test_review_queue_shows_unlabelled_photos_and_a_labelled_one_leaves(
    ui_stack, indexed, new_page
):
    with ui_stack.client() as client:
        queue = client.get("/v1/review", params={"threshold": 1.0, "limit": 24}).json()["items"]
    assert queue
    page = new_page()
    sign_in(page, ui_stack.url, ui_stack.archivist_key, "/ui/review?threshold=1.0")
    expect(page.get_by_test_id("review-threshold")).to_have_value("1.0")
    cards = page.get_by_test_id("review-card")
    expect(cards).to_have_count(len(queue))
    ids = cards.evaluate_all("cs => cs.map(c => Number(c.dataset.animalId))")
    assert ids == [a["id"] for a in queue]  # least confident first
    first = cards.first
    expect(first.get_by_test_id("review-top")).to_have_count(min(3, len(queue[0]["top_k"])))
    screenshot(page, "review-queue.png")

    first.get_by_test_id("review-not-dog").click()
    expect(page.locator(f"[data-testid=review-card][data-animal-id='{ids[0]}']")).to_have_count(0)
    expect(cards).to_have_count(len(queue) - 1)
    expect(page.get_by_test_id("review-status")).to_contain_text("as not a dog")
    with ui_stack.client() as client:
        labelled = client.get(f"/v1/photos/{ids[0]}").json()
        after = client.get("/v1/review", params={"threshold": 1.0, "limit": 500}).json()["items"]
    assert (labelled["label_source"], labelled["species"]) == ("human", "other")
    assert ids[0] not in {a["id"] for a in after}


def test_admin_sees_a_refused_cancel_and_the_dashboard(ui_stack, indexed, new_page):
    with ui_stack.client() as client:
        refused = client.post(f"/v1/jobs/{indexed.job_id}/cancel")
    assert refused.status_code == 409, refused.text
    page = new_page()
    sign_in(page, ui_stack.url, ui_stack.admin_key, f"/ui/jobs/{indexed.job_id}")
    expect(page.get_by_test_id("job-status")).to_have_text(re.compile("|".join(FINISHED)))
    expect(page.get_by_test_id("job-name")).to_have_text("shelter.zip")
    # The archive's duplicate names the photo it repeats, linked to it.
    with ui_stack.client() as client:
        (dup,) = client.get(f"/v1/jobs/{indexed.job_id}/duplicates").json()["items"]
    row = page.get_by_test_id("job-duplicate")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(dup["name"])
    expect(row.get_by_role("link", name=dup["path"])).to_have_attribute(
        "href", f"/ui/photos/{dup['image_id']}"
    )
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_test_id("error-banner")).to_have_text(
        re.compile(re.escape(refused.json()["detail"]))
    )

    page.get_by_test_id("nav-jobs").click()
    page.wait_for_url(f"{ui_stack.url}/ui/jobs")
    expect(page.get_by_test_id("job-row").filter(has_text=indexed.job_id[:12])).to_have_count(1)
    # Found by part of its name, any case; shown by name, with where it came from.
    page.get_by_test_id("jobs-name").fill("SHELTER")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r"/ui/jobs\?name=SHELTER"))
    row = page.get_by_test_id("job-row").filter(has_text="shelter.zip")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("upload")
    page.get_by_test_id("jobs-name").fill("no-such-job")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_test_id("job-row")).to_have_count(0)

    # The gallery's job filter offers jobs by name.
    page.goto(f"{ui_stack.url}/ui/")
    job_filter = page.get_by_test_id("filter-job")
    expect(job_filter.locator("option", has_text="shelter.zip")).to_have_count(1)
    job_filter.select_option(indexed.job_id)
    page.get_by_test_id("apply-filters").click()
    page.wait_for_url(re.compile(f"job_id={indexed.job_id}"))

    page.get_by_test_id("nav-admin").click()
    page.wait_for_url(f"{ui_stack.url}/ui/admin")
    with ui_stack.client() as client:
        overview = client.get("/v1/admin/overview").json()
    queue_cards = page.get_by_test_id("queue-card")
    expect(queue_cards).to_have_count(len(overview["queues"]))
    for queue in overview["queues"]:
        expect(queue_cards.filter(has_text=f"queue {queue['name']}")).to_have_count(1)
    online = page.locator("[data-testid=worker-row][data-online=true]")
    expect(online.first).to_be_visible()
    expect(online.first.get_by_test_id("worker-state")).to_have_text("online")
    devices = online.get_by_test_id("worker-device").all_text_contents()
    assert any(d.startswith("cpu") for d in devices), devices
    expect(page.locator("svg.throughput rect")).to_have_count(len(overview["throughput"]))
    expect(page.get_by_test_id("breed-bar").first).to_be_visible()
    if overview["active_model"]:
        expect(page.get_by_test_id("active-model")).to_contain_text(
            overview["active_model"]["version"]
        )
    expect(page.get_by_test_id("metrics-link")).to_have_attribute("href", "/metrics")
    screenshot(page, "admin-dashboard.png")

    # Re-run indexing with the active model: every photo again, as an ordinary job.
    page.get_by_label(re.compile("every photo again")).check()
    page.get_by_test_id("reindex").click()
    result = page.get_by_test_id("reindex-result")
    expect(result).to_contain_text("photos queued")
    result.get_by_role("link").click()
    expect(page.get_by_test_id("job-status")).to_have_text("succeeded", timeout=120_000)


def test_pages_fit_a_phone_screen(ui_stack, indexed, new_page):
    page = new_page(390, 844)
    sign_in(page, ui_stack.url, ui_stack.admin_key, "/ui/")
    pages = {
        "/ui/": "[data-testid=animal-card]",
        f"/ui/photos/{indexed.animals[0]['id']}": "[data-testid=top-k-bar]",
        "/ui/review?threshold=1.0": "[data-testid=review-card]",
        "/ui/upload": "[data-testid=dropzone]",
        f"/ui/jobs/{indexed.job_id}": "[data-testid=job-error]",
        "/ui/jobs": "[data-testid=job-row]",
        "/ui/admin": "[data-testid=queue-card]",
    }
    for path, content in pages.items():
        page.goto(f"{ui_stack.url}{path}")
        page.wait_for_selector(content)
        scroll, inner = page.evaluate(
            "() => [document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert scroll <= inner, f"{path}: {scroll}px wide in a {inner}px screen"
        boxes = (
            page.get_by_test_id("nav")
            .locator("a:visible")
            .evaluate_all("as => as.map(a => a.getBoundingClientRect().right)")
        )
        assert boxes and max(boxes) <= inner, (path, boxes)
        if path == "/ui/":
            columns = page.eval_on_selector(
                "[data-testid=gallery]",
                "g => getComputedStyle(g).gridTemplateColumns.split(' ').length",
            )
            assert columns == 2
            screenshot(page, "gallery-phone.png")


def test_admin_adds_a_library_and_scans_it_from_the_dashboard(ui_stack, labelled_photos, new_page):
    kennel = ui_stack.nas / "kennel-nas"
    kennel.mkdir()
    for photo in [p for p in labelled_photos if p.is_dog][:3]:
        (kennel / photo.path.name).write_bytes(photo.path.read_bytes())
    page = new_page(390, 844)  # a phone
    sign_in(page, ui_stack.url, ui_stack.admin_key, "/ui/admin")
    page.get_by_label("Folder on the server").fill(str(ui_stack.nas / ".." / "var"))
    page.get_by_test_id("library-add").click()
    expect(page.get_by_test_id("error-banner")).to_contain_text("not inside an allowed")

    page.get_by_label("Folder on the server").fill(str(kennel))
    page.get_by_label("Name").fill("Kennel NAS")
    page.get_by_test_id("library-add").click()
    row = page.get_by_test_id("library-row").filter(has_text="Kennel NAS")
    expect(row).to_contain_text(str(kennel))
    expect(row).to_contain_text("never")
    row.get_by_test_id("library-scan").click()
    # The dashboard refreshes itself: the scan ends with the three photos recorded.
    expect(row.get_by_role("link", name=re.compile("^succeeded"))).to_be_visible(timeout=120_000)
    expect(row.locator("td").nth(3)).to_have_text("3")
    row.get_by_role("link", name=re.compile("^succeeded")).click()
    expect(page.get_by_test_id("job-name")).to_have_text("Kennel NAS")
    expect(page.get_by_test_id("job-status")).to_have_text("succeeded")


def test_animals_are_found_by_shelter_id_and_renamed_on_a_phone(
    ui_stack, indexed, labelled_photos, new_page, tmp_path
):
    import zipfile

    dogs = [p for p in labelled_photos if p.is_dog][40:43]
    archive = tmp_path / "intake.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, photo in zip(["A7001/a.jpg", "A7001/b.jpg", "A7002/a.jpg"], dogs, strict=True):
            zf.write(photo.path, f"2024/{name}")
    with ui_stack.client() as client:
        with archive.open("rb") as fh:
            accepted = client.post(
                "/v1/archives", files={"file": ("intake.zip", fh)}, data={"grouping": "folder"}
            )
        assert accepted.status_code == 202, accepted.text
        assert wait_job(client, accepted.json()["job_id"], timeout=300)["status"] == "succeeded"

    page = new_page(390, 844)
    sign_in(page, ui_stack.url, ui_stack.admin_key, "/ui/animals")
    page.get_by_test_id("search-external-id").fill("a7001")
    page.get_by_test_id("search-animals").click()
    card = page.get_by_test_id("animal-record-card")
    expect(card).to_have_count(1)
    expect(card.get_by_test_id("card-title")).to_have_text("A7001")
    expect(card.get_by_test_id("card-photos")).to_have_text("2 photos")
    card.click()
    expect(page.get_by_test_id("animal-heading")).to_have_text("A7001")
    expect(page.get_by_test_id("animal-photo-card")).to_have_count(2)
    expect(page.get_by_test_id("pooled-breed").first).to_be_visible()
    page.get_by_test_id("edit-name").fill("Bella")
    page.get_by_test_id("save-animal").click()
    expect(page.get_by_test_id("animal-heading")).to_have_text("Bella (A7001)")

    page.goto(f"{ui_stack.url}/ui/animals?name=bell")
    expect(page.get_by_test_id("animal-record-card")).to_have_count(1)

    # At phone width the jobs table scrolls sideways; its words stay whole.
    page.goto(f"{ui_stack.url}/ui/jobs")
    expect(page.get_by_test_id("job-row").first).to_be_visible()
    for header in page.locator("table.data th").all():
        assert header.bounding_box()["width"] >= 50, header.inner_text()
