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

from tests.factories import make_zip
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


def test_a_job_page_lists_all_its_errors_a_page_at_a_time_on_a_phone(ui_stack, new_page, tmp_path):
    junk = {f"scans/page-{i:03}.jpg": b"a scanned letter, not a photo %d\n" % i for i in range(130)}
    archive = make_zip(tmp_path / "scans.zip", junk)
    with ui_stack.client() as client, archive.open("rb") as fh:
        accepted = client.post("/v1/archives", files={"file": ("scans.zip", fh)})
        job = wait_job(client, accepted.json()["job_id"], timeout=JOB_TIMEOUT_MS / 1000)
    assert (job["status"], job["failed"], len(job["errors"])) == ("failed", 130, 20)

    page = new_page(390, 844)
    sign_in(page, ui_stack.url, ui_stack.admin_key, f"/ui/jobs/{job['id']}")
    expect(page.get_by_test_id("job-errors-count")).to_have_text("(130)")
    rows = page.get_by_test_id("job-error")
    expect(rows).to_have_count(100)  # the first page, not the job document's 20
    page.get_by_test_id("errors-more").scroll_into_view_if_needed()  # as a thumb would
    expect(rows).to_have_count(130)
    expect(page.get_by_test_id("errors-more")).to_be_hidden()
    shown = {row.locator("code").inner_text() for row in rows.all()}
    assert shown == set(junk)
    _fits_the_screen(page)


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
    expect(page.get_by_test_id("animal-breed")).to_have_text(animal["breed_text"])
    page.wait_for_function("() => document.querySelector('#animal-photo').naturalWidth > 0")

    page.get_by_label("Correct breed").select_option(new_breed)
    page.get_by_role("button", name="Correct").click()
    expect(page.get_by_test_id("label-status")).to_have_text(f"Saved: {new_breed.title()}.")
    expect(page.get_by_test_id("label-source")).to_have_text("human")
    expect(page.get_by_test_id("animal-breed")).to_have_text(new_breed.title())
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
    with ui_stack.client() as client:
        animal = client.get("/v1/animals", params={"limit": 1}).json()["items"][0]
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
        "/ui/animals": "[data-testid=animal-record-card]",
        f"/ui/animals/{animal['id']}": "[data-testid=animal-photo-card]",
        "/ui/trash": "#trash-empty:not([hidden]), #trash:not([hidden])",
    }
    for path, content in pages.items():
        page.goto(f"{ui_stack.url}{path}")
        page.wait_for_selector(content)
        inner = _fits_the_screen(page)
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
        job = wait_job(client, accepted.json()["job_id"], timeout=300)
        assert job["status"] == "succeeded"
        found = client.get("/v1/animals", params={"external_id": "A7001"}).json()["items"][0]
        first = client.get(f"/v1/animals/{found['id']}").json()["photos"][0]
        labelled = client.post(f"/v1/photos/{first['id']}/label",
                               json={"species": "dog", "breeds": ["Lab"], "mix": True})  # fmt: skip
        assert labelled.status_code == 200, labelled.text

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
    # A photo a person labelled says so on its card; the other shows the model's breed.
    breeds = page.get_by_test_id("photo-breed")
    expect(breeds.filter(has_text="Labrador Retriever mix (labelled)")).to_have_count(1)
    expect(breeds.filter(has_text="(labelled)")).to_have_count(1)
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


def test_archivist_imports_names_and_intake_dates_from_a_shelter_export_on_a_phone(
    ui_stack, labelled_photos, new_page, tmp_path
):
    import zipfile

    dogs = [p for p in labelled_photos if p.is_dog][45:47]
    archive = tmp_path / "kennel.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for shelter_id, photo in zip(["A8001", "A8002"], dogs, strict=True):
            zf.write(photo.path, f"2024/{shelter_id}/{photo.path.name}")
    with ui_stack.client() as client, archive.open("rb") as fh:
        accepted = client.post(
            "/v1/archives", files={"file": ("kennel.zip", fh)}, data={"grouping": "folder"}
        )
        assert accepted.status_code == 202, accepted.text
        assert wait_job(client, accepted.json()["job_id"], timeout=300)["status"] == "succeeded"
    export = tmp_path / "animals.csv"
    export.write_text(
        "Animal ID,Animal Name,Species,Intake Date\n"
        "A8001,Biscuit,Dog,2024-02-03\n"
        "A8002,Pepper,Dog,03/02/2024\n"
        "A8999,Ghost,Dog,2024-01-01\n"
    )

    page = new_page(390, 844)
    sign_in(page, ui_stack.url, ui_stack.archivist_key, "/ui/animals")
    page.get_by_test_id("records-import").locator("summary").click()
    page.get_by_test_id("records-file").set_input_files(export)
    page.get_by_test_id("records-submit").click()
    expect(page.get_by_test_id("records-updated")).to_have_text("1 animal updated from 3 rows.")
    expect(page.get_by_test_id("records-unknown")).to_contain_text("1 shelter ID has no photos yet")
    expect(page.get_by_test_id("records-unknown")).to_contain_text("A8999")
    expect(page.get_by_test_id("records-errors")).to_have_text(
        "line 3: intake_date '03/02/2024': write it as YYYY-MM-DD"
    )
    _fits_the_screen(page)
    screenshot(page, "animals-import-phone.png")
    page.get_by_test_id("records-refresh").click()
    page.get_by_test_id("search-name").fill("biscuit")
    page.get_by_test_id("search-animals").click()
    card = page.get_by_test_id("animal-record-card")
    expect(card).to_have_count(1)
    expect(card.get_by_test_id("card-title")).to_have_text("Biscuit (A8001)")
    card.click()
    expect(page.get_by_test_id("animal-record-facts")).to_contain_text("2024-02-03")


def _fits_the_screen(page) -> int:
    """The screen's width, once no page content is wider (else which elements are)."""
    scroll, inner = page.evaluate("() => [document.documentElement.scrollWidth, innerWidth]")
    if scroll > inner:
        wide = page.evaluate(
            """() => [...document.querySelectorAll("main *")]
                .filter((e) => e.getBoundingClientRect().right > innerWidth)
                .slice(0, 6).map((e) => `${e.tagName}#${e.id}.${e.className}`)"""
        )
        raise AssertionError(f"{page.url}: {scroll}px wide in a {inner}px screen: {wide}")
    return inner


def test_admin_creates_a_key_in_the_dashboard_and_revokes_it_on_a_phone(
    ui_stack, indexed, new_page
):
    page = new_page(390, 844)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, ui_stack.url, ui_stack.admin_key, "/ui/admin")
    rows = page.get_by_test_id("key-row")
    expect(rows.filter(has_text="active (you)")).to_have_count(1)
    expect(rows.filter(has_text="active (you)").get_by_test_id("key-revoke")).to_have_count(0)

    page.get_by_label("Key for").fill("Front desk tablet")
    page.get_by_test_id("key-role").select_option("archivist")
    page.get_by_test_id("key-create").click()
    shown = page.get_by_test_id("new-key")
    # the panel is in the page (hidden) from the start: wait for it to show the key
    expect(shown).to_be_visible()
    expect(shown).to_contain_text("it will not be shown again")
    expect(page.get_by_test_id("new-key-value")).to_have_value(re.compile(r"^pdx_"))
    secret = page.get_by_test_id("new-key-value").input_value()
    assert secret.startswith("pdx_")
    page.get_by_test_id("new-key-copy").click()
    expect(page.get_by_test_id("new-key-copied")).to_have_text("Copied.")
    assert page.evaluate("() => navigator.clipboard.readText()") == secret
    row = rows.filter(has_text="Front desk tablet")
    expect(row).to_contain_text("archivist")
    expect(row).to_contain_text(secret[:10])
    _fits_the_screen(page)
    screenshot(page, "admin-keys-phone.png")
    page.get_by_test_id("new-key-done").click()
    expect(shown).to_be_hidden()
    assert secret not in page.content()  # shown once: gone from the page
    page.reload()
    expect(row).to_have_count(1)
    assert secret not in page.content()

    other = new_page()  # a new browser, signed in with the new key
    sign_in(other, ui_stack.url, secret, "/ui/")
    expect(other.get_by_test_id("whoami-role")).to_have_text("archivist")
    expect(other.get_by_test_id("whoami-name")).to_have_text("Front desk tablet")

    row.get_by_test_id("key-revoke").click()
    expect(row).to_contain_text("Revoke “Front desk tablet”?")
    row.get_by_test_id("key-revoke-confirm").click()
    expect(row).to_have_attribute("data-revoked", "true")
    expect(row.get_by_test_id("key-state")).to_contain_text("revoked")
    with ui_stack.client(secret) as client:
        assert client.get("/v1/me").status_code == 401
    other.reload()  # the revoked key's session ends: back to the sign-in page
    other.wait_for_url(re.compile(r"/ui/login\?next="))


def test_review_queue_labelled_with_the_keyboard_only(ui_stack, indexed, new_page):
    with ui_stack.client() as client:
        queue = client.get("/v1/review", params={"threshold": 1.0, "limit": 24}).json()["items"]
    assert len(queue) >= 4
    first, second, third = queue[:3]
    page = new_page()
    sign_in(page, ui_stack.url, ui_stack.archivist_key, "/ui/review?threshold=1.0")
    cards = page.get_by_test_id("review-card")
    expect(cards).to_have_count(len(queue))

    page.keyboard.press("j")  # the first photo becomes the current one, focused
    expect(cards.first).to_be_focused()
    expect(cards.first).to_have_class(re.compile(r"\bcurrent\b"))
    page.keyboard.press("j")
    expect(cards.nth(1)).to_be_focused()
    page.keyboard.press("k")
    expect(cards.first).to_be_focused()

    page.keyboard.press("1")  # the model's first breed
    labelled = page.locator(f"[data-testid=review-card][data-animal-id='{first['id']}']")
    expect(labelled).to_have_count(0)
    expect(cards.first).to_be_focused()  # the next photo, now first
    expect(cards.first).to_have_attribute("data-animal-id", str(second["id"]))
    page.keyboard.press("Enter")  # the model's answer
    expect(cards.first).to_have_attribute("data-animal-id", str(third["id"]))
    expect(cards.first).to_be_focused()
    page.keyboard.press("n")  # not a dog
    expect(cards).to_have_count(len(queue) - 3)

    def verdict(photo):
        species = photo["model_species"] or photo["species"]
        breed = photo["model_breed"] if photo["model_species"] else photo["breed"]
        return (species, breed if species == "dog" else None)

    with ui_stack.client() as client:
        got = {p["id"]: client.get(f"/v1/photos/{p['id']}").json() for p in (first, second, third)}
    assert all(p["label_source"] == "human" for p in got.values()), got
    assert (got[first["id"]]["species"], got[first["id"]]["breed"]) == (
        "dog", first["top_k"][0]["breed"],
    )  # fmt: skip
    assert (got[second["id"]]["species"], got[second["id"]]["breed"]) == verdict(second)
    assert got[third["id"]]["species"] == "other"

    page.keyboard.press("u")  # undo: the last label is withdrawn, the photo comes back
    expect(cards).to_have_count(len(queue) - 2)
    expect(cards.first).to_have_attribute("data-animal-id", str(third["id"]))
    expect(cards.first).to_be_focused()
    with ui_stack.client() as client:
        assert client.get(f"/v1/photos/{third['id']}").json()["label_source"] == "model"

    page.get_by_test_id("review-threshold").fill("1")  # typing in a field is the field's
    page.keyboard.press("n")
    expect(cards).to_have_count(len(queue) - 2)

    page.set_viewport_size({"width": 390, "height": 844})
    cards.first.focus()
    page.keyboard.press("?")
    help_overlay = page.get_by_test_id("shortcuts-help")
    expect(help_overlay).to_be_visible()
    expect(help_overlay).to_contain_text("not a dog")
    _fits_the_screen(page)
    box = help_overlay.locator(".overlay-panel").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    screenshot(page, "review-shortcuts-phone.png")
    page.keyboard.press("Escape")
    expect(help_overlay).to_be_hidden()


def test_previous_and_next_walk_the_filtered_gallery(ui_stack, indexed, new_page):
    with ui_stack.client() as client:
        items = client.get("/v1/photos", params={"species": "dog", "limit": 500}).json()["items"]
    dogs = [a["id"] for a in items]
    assert len(dogs) >= 6
    page = new_page()
    sign_in(page, ui_stack.url, ui_stack.admin_key, "/ui/?species=dog&limit=4")
    cards = page.get_by_test_id("animal-card")
    expect(cards.nth(1)).to_be_visible()
    cards.nth(1).locator("a").click()
    page.wait_for_url(re.compile(rf"/ui/photos/{dogs[1]}\?in="))
    position = page.get_by_test_id("photo-nav-position")
    expect(position).to_have_text(re.compile(r"^2 of \d+\+?$"))
    page.get_by_test_id("photo-next").click()
    page.wait_for_url(re.compile(rf"/ui/photos/{dogs[2]}\?in="))
    expect(position).to_have_text(re.compile(r"^3 of "))
    page.get_by_test_id("photo-prev").click()
    page.wait_for_url(re.compile(rf"/ui/photos/{dogs[1]}\?in="))

    # The arrow keys walk the rest of the filtered set, across the list's pages of 4.
    for expected in dogs[2:]:
        expect(page.get_by_test_id("photo-next")).to_have_attribute("href", re.compile("in="))
        page.keyboard.press("ArrowRight")
        page.wait_for_url(re.compile(rf"/ui/photos/{expected}\?in="))
    expect(position).to_have_text(f"{len(dogs)} of {len(dogs)}")
    expect(page.get_by_test_id("photo-next")).to_have_attribute("aria-disabled", "true")
    page.keyboard.press("ArrowLeft")
    page.wait_for_url(re.compile(rf"/ui/photos/{dogs[-2]}\?in="))
    page.get_by_test_id("photo-nav-back").click()
    page.wait_for_url(re.compile(r"/ui/\?"))
    assert parse_qs(urlparse(page.url).query) == {"species": ["dog"], "limit": ["4"]}

    page.goto(f"{ui_stack.url}/ui/photos/{dogs[1]}")  # a deep link: no result set to walk
    page.wait_for_selector("body[data-ready=true]")
    expect(page.get_by_test_id("top-k-bar").first).to_be_visible()
    expect(page.get_by_test_id("photo-nav")).to_be_hidden()


def test_bulk_selection_labels_a_shift_click_range(ui_stack, indexed, new_page):
    page = new_page()
    sign_in(page, ui_stack.url, ui_stack.archivist_key, "/ui/?species=dog")
    cards = page.get_by_test_id("animal-card")
    expect(cards.nth(3)).to_be_visible()
    ids = cards.evaluate_all("cs => cs.map(c => Number(c.dataset.animalId))")[:3]
    bar = page.get_by_test_id("bulk-bar")
    expect(bar).to_be_hidden()
    boxes = page.get_by_test_id("card-select")
    boxes.nth(0).click()
    boxes.nth(2).click(modifiers=["Shift"])  # a range: the one between too
    expect(page.get_by_test_id("bulk-count")).to_have_text("3 photos selected")
    expect(boxes.nth(1)).to_be_checked()
    expect(boxes.nth(3)).not_to_be_checked()

    breed = "basenji"
    expect(bar.locator(f"#bulk-breed option[value={breed}]")).to_have_count(1)
    page.get_by_test_id("bulk-breed").select_option(breed)
    page.get_by_test_id("bulk-label").click()
    expect(page.get_by_test_id("bulk-status")).to_have_text(f"3 photos labelled as {breed}.")
    with ui_stack.client() as client:
        for photo_id in ids:
            photo = client.get(f"/v1/photos/{photo_id}").json()
            assert (photo["label_source"], photo["species"], photo["breed"]) == (
                "human", "dog", breed,
            ), photo  # fmt: skip
            assert photo["labeled_by"] == "Ada Archivist"

    # "Select all on this page", and the bar at phone width.
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_test_id("select-page").click()
    count = cards.count()
    expect(page.get_by_test_id("bulk-count")).to_have_text(f"{count} photos selected")
    expect(bar).to_be_visible()
    _fits_the_screen(page)
    box = bar.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    assert box["y"] + box["height"] <= 844 + 1, box  # sticky: in view, at the bottom
    screenshot(page, "gallery-bulk-phone.png")
    page.get_by_test_id("bulk-clear").click()
    expect(bar).to_be_hidden()


def test_gallery_finds_photos_that_might_be_a_breed_and_shows_the_total(
    ui_stack, indexed, new_page
):
    # A breed some photo holds second or lower in its top 5: not only top-1 answers.
    with ui_stack.client() as client:
        photos = client.get("/v1/photos", params={"limit": 500}).json()["items"]
        breed = next(t["breed"] for p in photos for t in p["top_k"][1:] if t["confidence"] >= 0.01)
        expected = client.get(
            "/v1/photos", params={"might_be": breed, "might_be_min": 0.01, "limit": 500}
        ).json()
    assert expected["items"] and not expected["total_capped"]
    page = new_page()
    sign_in(page, ui_stack.url, ui_stack.admin_key, "/ui/")
    expect(page.get_by_test_id("animal-card").first).to_be_visible()
    page.get_by_test_id("filter-might-be").fill(breed.replace("_", " "))
    page.get_by_test_id("filter-might-be-min").fill("0.01")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"\?.*might_be="))
    cards = page.get_by_test_id("animal-card")
    expect(cards).to_have_count(len(expected["items"]))
    ids = cards.evaluate_all("cs => cs.map(c => Number(c.dataset.animalId))")
    assert ids == [p["id"] for p in expected["items"]]  # that breed's probability first
    total = expected["total"]
    expect(page.get_by_test_id("gallery-status")).to_contain_text(
        f"{total:,} photo{'' if total == 1 else 's'}"
    )
    # Not-dogs show their species and its confidence, never a breed's percentage.
    for photo in expected["items"]:
        if photo["species"] != "dog" and photo["label_source"] == "model":
            card = page.locator(f"[data-animal-id='{photo['id']}']")
            conf = f"{photo['species_confidence'] * 100:.1f} %"
            expect(card.get_by_test_id("card-conf")).to_have_text(conf)
    screenshot(page, "gallery-might-be.png")


def test_a_deleted_photo_is_undone_at_once_and_restored_from_the_trash_on_a_phone(
    ui_stack, indexed, new_page
):
    photo = indexed.animals[-1]
    page = new_page(390, 844)
    page.on("dialog", lambda dialog: dialog.accept())  # "Move this photo to the trash?"
    sign_in(page, ui_stack.url, ui_stack.admin_key, f"/ui/photos/{photo['id']}")
    page.get_by_role("button", name="Delete photo").click()
    expect(page.get_by_test_id("deleted-notice")).to_contain_text(f"photo {photo['id']} is in")
    with ui_stack.client() as client:
        assert client.get(f"/v1/photos/{photo['id']}").status_code == 404
    page.get_by_role("button", name="Undo").click()
    page.wait_for_selector("body[data-ready=true]")
    expect(page.get_by_role("button", name="Delete photo")).to_be_visible()
    with ui_stack.client() as client:
        assert client.get(f"/v1/photos/{photo['id']}").status_code == 200

    page.get_by_role("button", name="Delete photo").click()
    expect(page.get_by_test_id("deleted-notice")).to_be_visible()
    page.get_by_role("link", name="See the trash").click()
    page.wait_for_selector("body[data-ready=true]")
    row = page.get_by_test_id("deletion").first
    expect(row).to_contain_text(f"photo {photo['id']}")
    screenshot(page, "trash.png")
    row.get_by_role("button", name="Restore").click()
    expect(page.get_by_test_id("trash-empty")).to_be_visible()  # nothing left in the trash
    page.get_by_test_id("trash-state").select_option("restored")
    expect(page.get_by_test_id("deletion-state").first).to_contain_text("restored")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the trash page is {width}px wide on a 390px screen"
    with ui_stack.client() as client:
        assert client.get(f"/v1/photos/{photo['id']}").status_code == 200


def test_archivist_labels_a_photo_a_labrador_mix_on_a_phone(ui_stack, indexed, new_page):
    photo = next(a for a in indexed.animals if a["species"] == "dog")
    page = new_page(390, 844)
    sign_in(page, ui_stack.url, ui_stack.archivist_key, f"/ui/photos/{photo['id']}")
    page.get_by_label("Correct breed").select_option("Labrador_retriever")
    page.get_by_label("Mix").check()
    page.get_by_role("button", name="Correct").click()
    expect(page.get_by_test_id("label-status")).to_have_text("Saved: Labrador Retriever mix.")
    expect(page.get_by_test_id("animal-breed")).to_have_text("Labrador Retriever mix")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the photo page is {width}px wide on a 390px screen"
    with ui_stack.client() as client:
        stored = client.get(f"/v1/photos/{photo['id']}").json()
    assert (stored["breeds"], stored["mix"]) == (["Labrador_retriever"], True)

    page.reload()  # the form shows the stored label; removing it shows the model's answer
    expect(page.get_by_test_id("label-mix")).to_be_checked()
    page.get_by_role("button", name="Remove label").click()
    expect(page.get_by_test_id("label-status")).to_have_text("Label removed.")
    expect(page.get_by_test_id("animal-breed")).to_have_text(photo["breed_text"])


def test_admin_dashboard_groups_workers_per_host(ui_stack, new_page):
    """Workers on two hosts: the embedded ones on this machine, and a GPU host of which one
    worker reports and one fell silent; each host shows whether any of its workers is up."""
    import socket
    from datetime import timedelta

    from pawdex.core.db import session_scope
    from pawdex.core.models import WorkerPresence, utcnow
    from pawdex.core.settings import Settings

    settings = Settings(data_dir=Path(ui_stack.env["PAWDEX_DATA_DIR"]))
    now = utcnow()
    with session_scope(settings) as session:
        for name, seen in (
            ("inference@gpu-a", now),
            ("inference@gpu-b", now - timedelta(minutes=10)),
        ):
            session.merge(
                WorkerPresence(hostname=name, host="gpu-box-2", address="10.0.0.12",
                               queues=["inference"], device="cuda", runtime="torch", pid=1,
                               started_at=seen, last_seen=seen)
            )  # fmt: skip
    page = new_page()
    sign_in(page, ui_stack.url, ui_stack.admin_key, "/ui/admin")
    gpu = page.locator("[data-testid=host-row][data-host=gpu-box-2]")
    expect(gpu).to_have_attribute("data-online", "true")
    expect(gpu.get_by_test_id("host-state")).to_contain_text("online (1 of 2 workers)")
    expect(gpu).to_contain_text("10.0.0.12")
    here = page.locator(f"[data-testid=host-row][data-host='{socket.gethostname()}']")
    expect(here).to_have_attribute("data-online", "true")
    rows = page.locator("#workers-body > tr").evaluate_all(
        "rows => rows.map(r => [r.dataset.testid, r.dataset.host || r.cells[1].textContent,"
        " r.dataset.online])"
    )
    start = rows.index(["host-row", "gpu-box-2", "true"])
    assert rows[start + 1 : start + 3] == [
        ["worker-row", "inference@gpu-a", "true"], ["worker-row", "inference@gpu-b", "false"],
    ], rows  # fmt: skip
    screenshot(page, "admin-workers-per-host.png")
