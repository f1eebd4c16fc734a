"""The newcomer's path: ``pawdex serve`` in embedded mode (SQLite, filesystem broker, workers
started beside the API), fed by ``pawdex index``; ``pawdex index --local``; ``pawdex predict``."""

from __future__ import annotations

import re
import shutil

import httpx
import pytest

from tests.photo_archives import pick, shelter_zip
from tests.stack import admin_headers, base_env, pawdex, running_server

pytestmark = pytest.mark.realphotos


def test_serve_embedded_and_index_a_folder_and_an_archive(labelled_photos, tmp_path):
    photos = pick(labelled_photos, dogs=12, others=2)
    archive, expected = shelter_zip(tmp_path / "shelter.zip", photos[:8])
    folder = tmp_path / "kennel"
    for photo in photos[8:]:
        (folder / "run-b").mkdir(parents=True, exist_ok=True)
        shutil.copy(photo.path, folder / "run-b" / photo.path.name)
    env = base_env(tmp_path / "var", PAWDEX_BATCH_SIZE="4")

    with running_server(env, tmp_path / "logs", embedded=True) as url:
        result = pawdex("index", str(archive), str(folder), "--server", url, env=env, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "partial" in result.stderr and "succeeded" in result.stderr  # the summary table
        assert "notes/not-a-photo.jpg" in result.stderr  # per-file errors are printed

        with httpx.Client(base_url=url, headers=admin_headers(env)) as client:
            items = client.get("/v1/animals", params={"limit": 500}).json()["items"]
            thumb = client.get(items[0]["thumbnail_url"])
    paths = {a["path"] for a in items}
    assert set(expected) <= paths
    assert {f"kennel/run-b/{p.path.name}" for p in photos[8:]} <= paths
    assert len(items) == len(photos)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert (tmp_path / "var" / "pawdex.db").is_file()


def test_index_local_without_a_server(labelled_photos, tmp_path):
    photos = pick(labelled_photos, dogs=4, others=1)
    archive, _ = shelter_zip(tmp_path / "small.zip", photos)
    env = base_env(tmp_path / "var", PAWDEX_BATCH_SIZE="4")
    result = pawdex("index", "--local", str(archive), env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"partial\s+│\s+8\s+│\s+5\s+│\s+1\s+│\s+2", result.stderr), result.stderr


def test_predict_prints_breed_and_percent(labelled_photos, tmp_path):
    golden = next(p for p in labelled_photos if p.breed == "golden_retriever")
    cat = next(p for p in labelled_photos if "cat" in p.path.name)
    env = base_env(tmp_path / "var")
    result = pawdex("predict", str(golden.path), str(cat.path), env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert re.fullmatch(rf"{re.escape(str(golden.path))}: golden_retriever \d+\.\d%", lines[0])
    assert re.fullmatch(rf"{re.escape(str(cat.path))}: not a dog \(cat, \d+\.\d%\)", lines[1])

    top5 = pawdex("predict", str(golden.path), "--top", "5", env=env, timeout=300)
    ranks = re.findall(r"^\s+(\d)\. (\S+)\s+(\d+\.\d)%$", top5.stdout, flags=re.M)
    assert [r[0] for r in ranks] == ["1", "2", "3", "4", "5"]
    assert ranks[0][1] == "golden_retriever"
    assert [float(r[2]) for r in ranks] == sorted((float(r[2]) for r in ranks), reverse=True)


def test_unreadable_photo_in_predict_is_an_error_not_a_crash(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not a photo")
    result = pawdex("predict", str(bad), env=base_env(tmp_path / "var"), timeout=300)
    assert result.returncode == 1
    assert "bad.jpg: error:" in result.stderr
    assert "Traceback" not in result.stderr
