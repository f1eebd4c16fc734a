"""The v1 HTTP contract, in-process on SQLite with eager Celery (fast; not the only proof)."""

from __future__ import annotations

import csv
import io

import pytest

from tests.factories import jpeg_bytes, make_tar, make_zip, png_bytes

JOB_KEYS = {"id", "kind", "status", "total", "done", "failed", "duplicates", "created_at",
            "started_at", "finished_at", "errors"}  # fmt: skip
ANIMAL_KEYS = {"id", "sha256", "filename", "species", "breed", "confidence", "top_k",
               "model_version", "job_id", "image_url", "thumbnail_url", "indexed_at"}  # fmt: skip


def _upload_zip(client, tmp_path, entries: dict[str, bytes], name="photos.zip") -> dict:
    path = make_zip(tmp_path / name, entries)
    with path.open("rb") as fh:
        response = client.post("/v1/archives", files={"file": (name, fh, "application/zip")})
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"job_id", "name", "status"}
    return client.get(f"/v1/jobs/{body['job_id']}").json()


def test_single_photo_upload_is_indexed(eager_client):
    response = eager_client.post(
        "/v1/images", files={"file": ("rex.jpg", jpeg_bytes(seed=1), "image/jpeg")}
    )
    assert response.status_code == 202
    job = eager_client.get(f"/v1/jobs/{response.json()['job_id']}").json()
    assert set(job) >= JOB_KEYS
    assert job["kind"] == "images"
    assert (job["status"], job["total"], job["done"], job["failed"]) == ("succeeded", 1, 1, 0)
    assert job["started_at"] and job["finished_at"]

    items = eager_client.get("/v1/photos", params={"job_id": job["id"]}).json()["items"]
    assert len(items) == 1
    animal = items[0]
    assert set(animal) >= ANIMAL_KEYS
    assert animal["filename"] == "rex.jpg"
    assert animal["species"] in {"dog", "cat", "other"}
    assert (animal["breed"] is None) == (animal["species"] != "dog")
    assert len(animal["top_k"]) == 5
    assert animal == eager_client.get(f"/v1/photos/{animal['id']}").json()


def test_many_photos_with_a_bad_one_is_partial(eager_client):
    files = [
        ("file", ("a.jpg", jpeg_bytes(seed=2), "image/jpeg")),
        ("file", ("b.png", png_bytes(), "image/png")),
        ("file", ("notes.jpg", b"this is a text file, not a photo\n", "image/jpeg")),
        ("file", ("empty.jpg", b"", "image/jpeg")),
    ]
    job_id = eager_client.post("/v1/images", files=files).json()["job_id"]
    job = eager_client.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["total"], job["done"], job["failed"]) == ("partial", 4, 2, 2)
    assert {e["name"] for e in job["errors"]} == {"notes.jpg", "empty.jpg"}
    assert all(e["error"] for e in job["errors"])


def test_a_job_with_thousands_of_bad_files_answers_its_first_errors_and_pages_the_rest(
    eager_client, tmp_path
):
    bad = {f"scans/page-{i:03}.jpg": b"scanned text, not a photo %d\n" % i for i in range(45)}
    job = _upload_zip(eager_client, tmp_path, {"rex.jpg": jpeg_bytes(seed=7), **bad})
    assert (job["status"], job["done"], job["failed"]) == ("partial", 1, 45)
    assert len(job["errors"]) == 20  # the document stays small, however many files failed

    pages, cursor = [], None
    while True:
        params = {"limit": 20} | ({"cursor": cursor} if cursor else {})
        page = eager_client.get(f"/v1/jobs/{job['id']}/errors", params=params).json()
        pages.append(page["items"])
        if not (cursor := page["next_cursor"]):
            break
    assert [len(p) for p in pages] == [20, 20, 5]
    listed = [e for p in pages for e in p]
    assert {e["name"] for e in listed} == set(bad)  # each bad file once, none left out
    assert all("not an image" in e["error"] or "not a photo" in e["error"] for e in listed)
    assert pages[0] == job["errors"]  # the document's errors are the first page

    listed_jobs = eager_client.get("/v1/jobs").json()["items"]
    assert [j["errors"] for j in listed_jobs if j["id"] == job["id"]] == [job["errors"]]
    assert eager_client.get(f"/v1/jobs/{job['id']}/errors?cursor=nonsense").status_code == 400
    assert eager_client.get("/v1/jobs/no-such-job/errors").status_code == 404


def test_archive_keeps_folders_dedupes_and_reports_errors(eager_client, tmp_path):
    same = jpeg_bytes(seed=3)
    job = _upload_zip(eager_client, tmp_path, {
        "2019/rex/front.jpg": same,
        "2019/rex/copy-of-front.jpg": same,
        "2020/bella.jpg": jpeg_bytes(seed=4),
        "2020/broken.jpg": jpeg_bytes(seed=5)[:200],
        "../../escape.png": png_bytes(color=(1, 2, 3)),
        "docs/readme.txt": b"hello",
    })  # fmt: skip
    assert job["total"] == 6
    assert (job["done"], job["duplicates"], job["failed"]) == (3, 1, 2)
    assert job["status"] == "partial"
    assert {e["name"] for e in job["errors"]} == {"2020/broken.jpg", "docs/readme.txt"}

    paths = {
        a["path"]
        for a in eager_client.get("/v1/photos", params={"job_id": job["id"]}).json()["items"]
    }
    assert paths == {"2019/rex/front.jpg", "2020/bella.jpg", "escape.png"}
    prefixed = eager_client.get("/v1/photos", params={"path_prefix": "2019/"}).json()["items"]
    assert [a["path"] for a in prefixed] == ["2019/rex/front.jpg"]
    by_name = eager_client.get("/v1/photos", params={"filename": "BELLA"}).json()["items"]
    assert [a["filename"] for a in by_name] == ["bella.jpg"]

    # A duplicate names the photo it repeats: here the same photo twice in one upload.
    front = next(
        a for a in eager_client.get("/v1/photos", params={"job_id": job["id"]}).json()["items"]
        if a["path"] == "2019/rex/front.jpg"
    )  # fmt: skip
    dups = eager_client.get(f"/v1/jobs/{job['id']}/duplicates").json()
    assert dups == {"items": [{"name": "2019/rex/copy-of-front.jpg", "image_id": front["id"],
                               "path": "2019/rex/front.jpg", "first_job_id": job["id"]}],
                    "next_cursor": None}  # fmt: skip

    # The same photo in a later upload is a duplicate, not a second animal.
    again = _upload_zip(eager_client, tmp_path, {"again.jpg": same}, name="again.zip")
    assert (again["status"], again["duplicates"], again["done"]) == ("succeeded", 1, 0)
    (dup,) = eager_client.get(f"/v1/jobs/{again['id']}/duplicates").json()["items"]
    assert (dup["name"], dup["image_id"], dup["path"]) == ("again.jpg", front["id"], front["path"])
    assert eager_client.get("/v1/jobs/nope/duplicates").status_code == 404
    assert len(eager_client.get("/v1/photos", params={"job_id": again["id"]}).json()["items"]) == 1
    assert len(eager_client.get("/v1/photos").json()["items"]) == 3


def test_a_clean_archive_with_mac_and_windows_clutter_succeeds(eager_client, tmp_path):
    """Junk is counted as skipped, not failed: the job ends succeeded, no error listed."""
    job = _upload_zip(eager_client, tmp_path, {
        "kennel/rex.jpg": jpeg_bytes(seed=30),
        "kennel/mia.jpg": jpeg_bytes(seed=31),
        "kennel/.DS_Store": b"\x00\x00\x00\x01Bud1",
        "__MACOSX/kennel/._rex.jpg": b"\x00\x05\x16\x07",
        "kennel/Thumbs.db": b"\xd0\xcf\x11\xe0",
        "kennel/desktop.ini": b"[.ShellClassInfo]",
    })  # fmt: skip
    assert (job["status"], job["total"], job["done"], job["skipped"]) == ("succeeded", 6, 2, 4)
    assert (job["failed"], job["errors"]) == (0, [])


def test_duplicates_page_through_in_upload_order(eager_client, tmp_path):
    same = jpeg_bytes(seed=40)
    job = _upload_zip(eager_client, tmp_path, {f"copy-{i}.jpg": same for i in range(4)})
    assert (job["done"], job["duplicates"]) == (1, 3)
    first = eager_client.get(f"/v1/jobs/{job['id']}/duplicates", params={"limit": 2}).json()
    rest = eager_client.get(
        f"/v1/jobs/{job['id']}/duplicates", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    names = [d["name"] for d in first["items"] + rest["items"]]
    assert names == ["copy-1.jpg", "copy-2.jpg", "copy-3.jpg"] and rest["next_cursor"] is None
    assert {d["path"] for d in first["items"] + rest["items"]} == {"copy-0.jpg"}


def test_tar_gz_archive(eager_client, tmp_path):
    path = make_tar(
        tmp_path / "photos.tgz", {f"box/{i}.jpg": jpeg_bytes(seed=10 + i) for i in range(3)}
    )
    with path.open("rb") as fh:
        job_id = eager_client.post("/v1/archives", files={"file": ("photos.tgz", fh)}).json()[
            "job_id"
        ]
    job = eager_client.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["done"]) == ("succeeded", 3)


def test_not_an_archive_is_refused_with_415(eager_client):
    response = eager_client.post("/v1/archives", files={"file": ("photos.zip", jpeg_bytes(seed=6))})
    assert response.status_code == 415
    assert "not a zip or tar archive" in response.json()["detail"]


def test_filters_sort_and_cursor_pagination(eager_client, tmp_path):
    _upload_zip(eager_client, tmp_path, {f"p{i}.jpg": jpeg_bytes(seed=20 + i) for i in range(7)})
    everything = eager_client.get("/v1/photos", params={"limit": 500}).json()["items"]
    confidences = [a["confidence"] for a in everything]
    assert confidences == sorted(confidences, reverse=True)

    for sort in ("-confidence", "confidence", "-indexed_at"):
        seen, cursor = [], None
        while True:
            params = {"limit": 3, "sort": sort} | ({"cursor": cursor} if cursor else {})
            page = eager_client.get("/v1/photos", params=params).json()
            seen += [a["id"] for a in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(a["id"] for a in everything), sort
        assert len(seen) == len(set(seen)), sort

    threshold = sorted(confidences)[3]
    above = eager_client.get("/v1/photos", params={"min_confidence": threshold}).json()["items"]
    assert {a["id"] for a in above} == {a["id"] for a in everything if a["confidence"] >= threshold}
    species = everything[0]["species"]
    only = eager_client.get("/v1/photos", params={"species": species}).json()["items"]
    assert only and all(a["species"] == species for a in only)


def test_breeds_and_breed_filter_agree(eager_client, tmp_path):
    _upload_zip(eager_client, tmp_path, {f"q{i}.jpg": jpeg_bytes(seed=40 + i) for i in range(5)})
    breeds = eager_client.get("/v1/breeds").json()
    assert breeds, "generated photos still get a most probable breed"
    for row in breeds:
        items = eager_client.get("/v1/photos", params={"breed": row["breed"], "limit": 500}).json()[
            "items"
        ]
        assert len(items) == row["count"]


def test_csv_export(eager_client, tmp_path):
    _upload_zip(eager_client, tmp_path, {f"c{i}.jpg": jpeg_bytes(seed=60 + i) for i in range(3)})
    response = eager_client.get("/v1/photos", headers={"Accept": "text/csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 3
    assert {"id", "breed", "confidence", "path", "top_k"} <= set(rows[0])
    assert rows == list(csv.DictReader(io.StringIO(eager_client.get("/v1/photos?format=csv").text)))


def test_image_file_and_thumbnail(eager_client):
    data = jpeg_bytes(width=900, height=600, seed=7)
    job_id = eager_client.post("/v1/images", files={"file": ("big.jpg", data)}).json()["job_id"]
    animal = eager_client.get("/v1/photos", params={"job_id": job_id}).json()["items"][0]
    original = eager_client.get(animal["image_url"])
    assert original.status_code == 200 and original.content == data
    assert original.headers["content-type"] == "image/jpeg"
    assert original.headers["x-content-type-options"] == "nosniff"
    thumb = eager_client.get(animal["thumbnail_url"])
    assert thumb.headers["content-type"] == "image/jpeg"
    from PIL import Image

    # Shorter side 256: small for a gallery, and exactly the model's resize for Lite0.
    assert Image.open(io.BytesIO(thumb.content)).size == (384, 256)


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/v1/jobs/nope", 404),
        ("/v1/photos/999999", 404),
        ("/v1/images/999999/file", 404),
        ("/v1/photos?cursor=garbage", 400),
        ("/v1/photos?min_confidence=2", 422),
        ("/v1/photos?sort=name", 422),
        ("/v1/photos?model_version=unknown", 400),
        ("/v1/jobs?cursor=%%%", 400),
        ("/v1/photos/99999999999999999999", 422),
        ("/v1/images/0/thumbnail", 422),
        ("/v1/jobs/%00", 400),
        ("/v1/photos?breed=%00", 400),
    ],
)
def test_bad_requests_get_clear_4xx(eager_client, url, status):
    response = eager_client.get(url)
    assert response.status_code == status
    assert "detail" in response.json()


def test_upload_over_the_size_limit_is_413(eager_client, embedded_settings):
    eager_client.app.state.settings = embedded_settings.model_copy(
        update={"max_upload_bytes": 1000}
    )
    response = eager_client.post("/v1/images", files={"file": ("big.jpg", jpeg_bytes(seed=8))})
    assert response.status_code == 413


def test_jobs_are_named_after_their_upload_and_found_by_name(eager_client, tmp_path):
    """People tell jobs apart by name (the archive's, the photo's, or one they give), by
    who started them and from where; the list finds them by part of the name, any case."""
    archive = _upload_zip(eager_client, tmp_path, {"a.jpg": jpeg_bytes(seed=80)},
                          name="Kennel-2021.zip")  # fmt: skip
    assert (archive["name"], archive["origin"]) == ("Kennel-2021.zip", "upload")
    assert archive["created_by"] == "test admin"
    photos = [("file", (f"rex-{i}.jpg", jpeg_bytes(seed=81 + i))) for i in range(3)]
    several = eager_client.post("/v1/images", files=photos).json()
    assert several["name"] == "rex-0.jpg and 2 more"
    given = eager_client.post(
        "/v1/images", files={"file": ("x.jpg", jpeg_bytes(seed=85))},
        data={"name": "  Intake week 12  ", "origin": "cli"},
    ).json()  # fmt: skip
    job = eager_client.get(f"/v1/jobs/{given['job_id']}").json()
    assert (job["name"], job["origin"]) == ("Intake week 12", "cli")

    def found(name: str) -> list[str]:
        return [
            j["name"] for j in eager_client.get("/v1/jobs", params={"name": name}).json()["items"]
        ]

    assert found("kennel") == ["Kennel-2021.zip"]
    assert found("REX") == ["rex-0.jpg and 2 more"]
    assert found("%") == [] and found("_") == []  # matched literally
    for form in ({"origin": "admin"}, {"origin": ""}, {"name": ["a", "b"]}):
        refused = eager_client.post(
            "/v1/images", files={"file": ("y.jpg", jpeg_bytes(seed=86))}, data=form
        )
        assert refused.status_code == 422, (form, refused.text)


def test_jobs_list_and_health(eager_client):
    for seed in (90, 91, 92):
        eager_client.post("/v1/images", files={"file": (f"{seed}.jpg", jpeg_bytes(seed=seed))})
    first = eager_client.get("/v1/jobs", params={"limit": 2}).json()
    second = eager_client.get(
        "/v1/jobs", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert len(first["items"]) == 2 and len(second["items"]) == 1 and second["next_cursor"] is None
    assert eager_client.get("/v1/jobs", params={"status": "succeeded"}).json()["items"]
    assert eager_client.get("/healthz").json() == {"status": "ok"}
    ready = eager_client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"
    assert eager_client.get("/docs").status_code == 200
    assert "/v1/photos" in eager_client.get("/openapi.json").json()["paths"]


def test_readiness_fails_when_the_storage_folder_cannot_be_written(eager_client, embedded_settings):
    assert eager_client.get("/readyz").json()["storage"] == "ok"
    storage = embedded_settings.storage_dir
    stored = storage.rename(storage.with_name("storage.moved")) if storage.exists() else None
    storage.write_bytes(b"")  # a mount gone wrong: a file where the folder was
    try:
        ready = eager_client.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.json() == {"status": "unavailable", "database": "ok", "broker": "ok",
                                "storage": "error: NotADirectoryError"}  # fmt: skip
    finally:
        storage.unlink()
        if stored is not None:
            stored.rename(storage)
    assert eager_client.get("/readyz").status_code == 200


def test_check_tells_which_files_the_archive_already_has(eager_client):
    import hashlib

    photo = jpeg_bytes(seed=95)
    eager_client.post("/v1/images", files={"file": ("rex.jpg", photo)})
    have, lack = hashlib.sha256(photo).hexdigest(), hashlib.sha256(b"new").hexdigest()
    response = eager_client.post("/v1/images/check", json={"sha256": [lack, have]})
    assert response.json() == {"known": [have]}
    for bad in (["not-hex"], [have.upper()], [lack] * 1001):
        assert eager_client.post("/v1/images/check", json={"sha256": bad}).status_code == 422
