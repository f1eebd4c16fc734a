"""The hostile input corpus (tests/hostile.py) through the public API, in-process on SQLite with
eager Celery: every bad file gets a clear per-file error under its name, every good photo
beside it is indexed, no answer is a 5xx, and nothing is written outside the data dir.

The module shares one migrated data dir (migrations cost ~0.5 s a test) with the corpus's
limits as settings; each test builds its corpus from its own seed, so no photo of one test is
a duplicate of another's. The same archives go through PostgreSQL in
tests/integration/test_hostile_pipeline.py.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import re
import unicodedata
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from tests.conftest import embedded_settings_at
from tests.hostile import (
    ESCAPE,
    RED_CORNER,
    ArchiveCase,
    Sample,
    all_errors,
    archive_cases,
    check_job,
    job_animals,
    limit_env,
    mixed_tar,
    mixed_zip,
    name_samples,
    orientation_samples,
    photo_samples,
    tar_samples,
)

# The corpus's JPEG with broken EXIF makes Pillow warn, as it should.
pytestmark = pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")

FINISHED = {"succeeded", "partial", "failed", "cancelled"}
SINGLES = photo_samples(seed=3)
CASES = archive_cases(seed=4)


@pytest.fixture(scope="module")
def embedded_settings(tmp_path_factory):
    """conftest's ``embedded_settings`` for the whole module, with the corpus's limits."""
    data_dir = tmp_path_factory.mktemp("hostile") / "var"
    with (
        pytest.MonkeyPatch.context() as env,
        embedded_settings_at(env, data_dir, PAWDEX_BATCH_SIZE="8", **limit_env()) as settings,
    ):
        yield settings


def upload(client, route: str, files: list[tuple[str, bytes]]):
    response = client.post(
        route, files=[("file", (name, data, "application/octet-stream")) for name, data in files]
    )
    assert response.status_code < 500, response.text
    return response


def finished_job(client, response) -> dict:
    assert response.status_code == 202, response.text
    job = client.get(f"/v1/jobs/{response.json()['job_id']}")
    assert job.status_code == 200, job.text
    assert job.json()["status"] in FINISHED
    return job.json()


# ---------------------------------------------------------------- (a) one archive, every bad member


@pytest.mark.parametrize(
    ("build", "filename", "seed"),
    [(mixed_zip, "mixed.zip", 1), (mixed_tar, "mixed.tar.gz", 2)],
    ids=["zip", "tar.gz"],
)
def test_every_bad_member_is_named_and_every_good_photo_beside_it_indexed(
    eager_client, build, filename, seed
):
    data, samples = build(seed)
    job = finished_job(eager_client, upload(eager_client, "/v1/archives", [(filename, data)]))

    check_job(eager_client, job, samples)


# ---------------------------------------------------------------- (b) each hostile file alone


@pytest.mark.parametrize("sample", SINGLES, ids=[s.id for s in SINGLES])
def test_each_hostile_file_alone_is_a_per_file_error_or_indexed(eager_client, sample: Sample):
    job = finished_job(
        eager_client, upload(eager_client, "/v1/images", [(sample.name, sample.data)])
    )

    check_job(eager_client, job, [sample])


def test_hostile_client_file_names_stay_inside_and_the_photos_are_indexed(eager_client):
    samples = name_samples(seed=9)
    job = finished_job(
        eager_client, upload(eager_client, "/v1/images", [(s.name, s.data) for s in samples])
    )

    assert (job["status"], job["done"], job["failed"]) == ("succeeded", len(samples), 0)
    paths = {a["sha256"]: a["path"] for a in job_animals(eager_client, job["id"])}
    for sample in samples:
        path = paths[sample.sha256]
        assert_safe_path(path)
        if not any(unicodedata.category(ch) == "Cc" for ch in sample.name):
            # The multipart parser may cut a Windows path to its last part (old IE sent
            # those), and HTTP clients escape control characters themselves.
            assert posixpath.basename(path) == posixpath.basename(sample.display), sample.kind


def assert_safe_path(path: str) -> None:
    assert path and len(path) <= 400, path
    assert not path.startswith("/") and "\\" not in path, path
    assert not re.match(r"[A-Za-z]:", path), path
    assert not {"", ".", ".."} & set(path.split("/")), path
    assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in path), path


# ---------------------------------------------------------------- (c) archives that fail whole


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_an_archive_that_fails_as_a_whole_says_why_never_500(eager_client, case: ArchiveCase):
    response = upload(eager_client, "/v1/archives", [(case.filename, case.data)])

    if case.outcome == "415":
        assert response.status_code == 415, response.text
        assert case.error in response.json()["detail"].lower()
        return
    job = finished_job(eager_client, response)
    assert job["status"] == case.outcome, job
    assert job["total"] == job["done"] + job["duplicates"] + job["failed"]
    indexed = job_animals(eager_client, job["id"])
    low, high = case.indexed
    errors = all_errors(eager_client, job)
    assert low <= len(indexed) <= high, (len(indexed), errors)
    if case.error:
        named = [e for e in errors if case.error in e["error"].lower()]
        assert len(named) == 1, errors
        if case.error_name is not None:
            assert named[0]["name"] == case.error_name


# ---------------------------------------------------------------- (d) nothing written outside


def test_nothing_is_written_outside_the_data_dir(eager_client, embedded_settings):
    data_dir = embedded_settings.data_dir.resolve()
    temp_root = data_dir.parent.parent  # pytest's temporary root: every test's tmp dirs
    before = tree(temp_root, skip=data_dir)
    escapes = [*name_samples(seed=5), *tar_samples(seed=6)]

    zip_data, zip_samples = mixed_zip(seed=5)
    tar_data, tar_samples_ = mixed_tar(seed=6)
    for filename, data, samples in (
        ("escape.zip", zip_data, zip_samples),
        ("escape.tar.gz", tar_data, tar_samples_),
    ):
        job = finished_job(eager_client, upload(eager_client, "/v1/archives", [(filename, data)]))
        check_job(eager_client, job, samples)
    singles = [(s.name, s.data) for s in name_samples(seed=10)]
    finished_job(eager_client, upload(eager_client, "/v1/images", singles))

    assert tree(temp_root, skip=data_dir) == before
    for sample in escapes:
        for base in (Path("/"), Path.cwd(), embedded_settings.storage_dir, data_dir):
            target = Path(os.path.normpath(base / sample.name.replace("\\", "/")))
            if not target.is_relative_to(data_dir):
                assert not target.exists(), target
    for folder in (Path("/tmp"), Path.cwd(), Path("/")):
        assert not list(folder.glob(f"*{ESCAPE}*")), folder
    assert_storage_holds_only_what_the_database_says(embedded_settings)


def tree(root: Path, skip: Path) -> dict[str, tuple[str, int]]:
    """Every path under ``root`` (but ``skip``) with its type and size; links not followed."""
    found: dict[str, tuple[str, int]] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if Path(folder, d).resolve() != skip]
        for name in dirs + files:
            path = Path(folder, name)
            info = path.lstat()
            kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
            found[str(path.relative_to(root))] = (kind, 0 if kind == "dir" else info.st_size)
    return found


def assert_storage_holds_only_what_the_database_says(settings) -> None:
    from pawdex.core.db import session_scope
    from pawdex.core.models import Image as ImageRow

    storage = settings.storage_dir.resolve()
    with session_scope(settings) as session:
        rows = session.execute(
            select(ImageRow.sha256, ImageRow.stored_path, ImageRow.thumbnail_path)
        ).all()
    assert rows
    expected = set()
    for sha, stored, thumbnail in rows:
        for key in (stored, thumbnail):
            path = (storage / key).resolve()
            assert path.is_relative_to(storage), key
            assert path.is_file() and not (storage / key).is_symlink(), key
            expected.add(path)
        assert hashlib.sha256((storage / stored).read_bytes()).hexdigest() == sha
    on_disk = set()
    for path in settings.data_dir.resolve().rglob("*"):
        assert not path.is_symlink(), path
        assert path.is_dir() or path.is_file(), f"{path} is neither a file nor a folder"
        if path.is_file() and path.is_relative_to(storage):
            on_disk.add(path)
            key = path.relative_to(storage).as_posix()
            assert re.fullmatch(r"(images|thumbs)/[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}\.\w+", key)
    assert on_disk == expected  # no temporary or stray file left in storage
    spooled = [p for p in settings.spool_dir.rglob("*") if p.is_file()]
    assert not spooled, spooled  # every upload's spool file is gone once its job has ended


# ---------------------------------------------------------------- (e) EXIF orientations


def test_exif_orientations_1_to_8_come_out_upright(eager_client):
    samples = orientation_samples(seed=7)
    job = finished_job(
        eager_client, upload(eager_client, "/v1/images", [(s.name, s.data) for s in samples])
    )
    animals = check_job(eager_client, job, samples)

    for orientation, sample in enumerate(samples, start=1):
        animal = animals[sample.sha256]
        assert (animal["width"], animal["height"]) == sample.size
        thumb = eager_client.get(animal["thumbnail_url"])
        with Image.open(io.BytesIO(thumb.content)) as img:
            assert red_corner(img.convert("RGB")) == RED_CORNER[orientation], orientation


def red_corner(img: Image.Image) -> str:
    w, h = img.size
    corners = {"TL": (4, 4), "TR": (w - 5, 4), "BL": (4, h - 5), "BR": (w - 5, h - 5)}
    red = [name for name, xy in corners.items() if _is_red(img.getpixel(xy))]
    assert len(red) == 1, red
    return red[0]


def _is_red(pixel: tuple[int, int, int]) -> bool:
    r, g, b = pixel
    return r > 200 and g < 60 and b < 60


# ---------------------------------------------------------------- the limits are documented

LIMIT_SETTINGS = (
    "max_upload_bytes",
    "max_archive_members",
    "max_member_bytes",
    "max_archive_total_bytes",
    "max_compression_ratio",
    "max_image_pixels",
)


def test_every_limit_is_a_setting_documented_with_its_default():
    from pawdex.core.settings import Settings

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(PAWDEX_\w+)` \| ([^|]+) \|", readme, re.MULTILINE))
    for field in LIMIT_SETTINGS:
        variable = f"PAWDEX_{field.upper()}"
        assert variable in rows, f"{variable} is missing from README.md's settings table"
        assert _quantity(rows[variable]) == Settings.model_fields[field].default, variable
    assert set(limit_env()) <= set(rows)


def _quantity(text: str) -> float:
    """'2 GiB', '100,000', '80 million' as a number."""
    number, _, unit = text.strip().partition(" ")
    scale = {"": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "million": 10**6}[unit]
    return float(number.replace(",", "")) * scale
