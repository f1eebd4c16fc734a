"""The newcomer's path: ``pawdex serve`` in embedded mode (SQLite, filesystem broker, workers
started beside the API), fed by ``pawdex index``; ``pawdex index --local``; ``pawdex predict``."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.factories import jpeg_bytes
from tests.photo_archives import pick, shelter_zip
from tests.stack import (
    admin_headers,
    base_env,
    pawdex,
    running_server,
    running_stack,
    wait_job,
)

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
            items = client.get("/v1/photos", params={"limit": 500}).json()["items"]
            thumb = client.get(items[0]["thumbnail_url"])
            jobs = client.get("/v1/jobs").json()["items"]
    # Jobs named after what was indexed, marked as the CLI's.
    assert sorted((j["name"], j["origin"]) for j in jobs) == [
        ("kennel", "cli"), ("shelter.zip", "cli"),
    ]  # fmt: skip
    assert "shelter.zip" in result.stderr  # the summary names the jobs
    paths = {a["path"] for a in items}
    assert set(expected) <= paths
    assert {f"kennel/run-b/{p.path.name}" for p in photos[8:]} <= paths
    assert len(items) == len(photos)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert (tmp_path / "var" / "pawdex.db").is_file()


def test_index_sends_a_big_folder_in_batches_and_a_rerun_after_a_kill_sends_nothing_twice(
    labelled_photos, tmp_path
):
    """A folder larger than the server's upload limit goes in bounded batches; killed
    mid-way and run again, the CLI sends only what the server lacks (sum of the jobs'
    files = photos in the folder) and every photo ends indexed once."""
    folder = tmp_path / "intake"
    for i, photo in enumerate(pick(labelled_photos, dogs=30, others=0)):
        (folder / f"week-{i % 3}").mkdir(parents=True, exist_ok=True)
        shutil.copy(photo.path, folder / f"week-{i % 3}" / f"{i:02d}-{photo.path.name}")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    size = sum(p.stat().st_size for p in folder.rglob("*.jpg"))
    env = base_env(tmp_path / "var", PAWDEX_MAX_UPLOAD_BYTES=str(size // 3))
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # the CLI's journal of what it sent
    args = ("index", str(folder), "--batch-files", "1", "--batch-mb", "1")

    with (
        running_server(env, tmp_path / "logs", embedded=True) as url,
        httpx.Client(base_url=url, headers=admin_headers(env)) as client,
    ):
        first = subprocess.Popen(
            [sys.executable, "-m", "pawdex", *args, "--server", url], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while len(client.get("/v1/jobs").json()["items"]) < 5:
                assert time.monotonic() < deadline and first.poll() is None
                time.sleep(0.05)
        finally:
            first.kill()
            first.wait()
        result = pawdex(*args, "--server", url, env=env, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "already on the server" in result.stderr
        jobs = client.get("/v1/jobs", params={"limit": 200}).json()["items"]
        items = client.get("/v1/photos", params={"limit": 500}).json()["items"]
        again = pawdex(*args, "--server", url, env=env, timeout=600)
        bad_key = pawdex(*args, "--server", url, "--api-key", "pdx_wrong", env=env, timeout=60)
    assert bad_key.returncode == 1 and "refused the API key (401)" in bad_key.stderr
    assert "Traceback" not in bad_key.stderr
    down = pawdex(*args, "--server", "http://127.0.0.1:9", env=env, timeout=60)
    assert down.returncode == 1 and "cannot reach the pawdex server" in down.stderr
    assert "Traceback" not in down.stderr
    assert sum(j["total"] for j in jobs) == 30, [(j["name"], j["total"]) for j in jobs]
    assert all(j["status"] == "succeeded" and j["origin"] == "cli" for j in jobs)
    assert len(items) == 30 and len({a["path"] for a in items}) == 30
    assert {a["path"].split("/")[0] for a in items} == {"intake"}
    assert again.returncode == 0 and "0 sent in 0 batches, 30 already" in again.stderr


def test_index_local_without_a_server(labelled_photos, tmp_path):
    photos = pick(labelled_photos, dogs=4, others=1)
    archive, _ = shelter_zip(tmp_path / "small.zip", photos)
    env = base_env(tmp_path / "var", PAWDEX_BATCH_SIZE="4")
    result = pawdex("index", "--local", str(archive), env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    # files, indexed, duplicates, skipped, failed
    assert re.search(r"partial\s+│\s+8\s+│\s+5\s+│\s+1\s+│\s+0\s+│\s+2", result.stderr), (
        result.stderr
    )


def test_index_local_reads_folders_and_photos_in_place(labelled_photos, tmp_path):
    photos = pick(labelled_photos, dogs=3, others=0)
    folder = tmp_path / "kennel"
    (folder / "run-a").mkdir(parents=True)
    for photo in photos[:2]:
        shutil.copy(photo.path, folder / "run-a" / photo.path.name)
    loose = tmp_path / photos[2].path.name
    shutil.copy(photos[2].path, loose)
    var = tmp_path / "var"
    env = base_env(var, PAWDEX_BATCH_SIZE="4")

    result = pawdex("index", "--local", str(folder), str(loose), env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"succeeded\s+│\s+2\s+│\s+2\s+│\s+0\s+│\s+0", result.stderr), result.stderr
    assert re.search(r"succeeded\s+│\s+1\s+│\s+1\s+│\s+0\s+│\s+0", result.stderr), result.stderr
    with sqlite3.connect(var / "pawdex.db") as db:
        paths = {row[0] for row in db.execute("SELECT path FROM images")}
    assert paths == {f"kennel/run-a/{p.path.name}" for p in photos[:2]} | {loose.name}
    spool = var / "spool"
    assert not spool.exists() or not any(spool.iterdir())  # nothing was zipped or copied
    assert sorted(p.name for p in (folder / "run-a").iterdir()) == sorted(
        p.path.name for p in photos[:2]
    )  # and nothing read in place was deleted
    assert loose.is_file()


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


def _children(pid: int) -> dict[int, str]:
    """Child processes of ``pid`` and their command lines."""
    found = {}
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
            cmdline = (status.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found[int(status.parent.name)] = cmdline
    return found


def test_serve_restarts_an_embedded_worker_that_died(tmp_path):
    env = base_env(tmp_path / "var", PAWDEX_BATCH_SIZE="4")
    with running_stack(env, tmp_path / "logs", embedded=True) as stack:
        inference = [p for p, cmd in _children(stack.api.pid).items() if "inference" in cmd]
        assert len(inference) == 1
        os.kill(inference[0], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = [p for p, cmd in _children(stack.api.pid).items() if "inference" in cmd]
            if now and now != inference:
                break
            time.sleep(0.5)
        assert now and now != inference, "the dead inference worker was not started again"
        with httpx.Client(base_url=stack.url, headers=stack.headers, timeout=60) as client:
            files = [("file", (f"{i}.jpg", jpeg_bytes(seed=i), "image/jpeg")) for i in range(3)]
            job_id = client.post("/v1/images", files=files).json()["job_id"]
            job = wait_job(client, job_id, timeout=300)
    assert (job["status"], job["done"]) == ("succeeded", 3)
    assert "event=worker_restarted queue=inference" in (tmp_path / "logs" / "api.log").read_text()
