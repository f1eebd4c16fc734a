"""``pawdex bench --json`` on a tiny N: every figure is there and consistent (no timing checks)."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import PHOTOS_DIR
from tests.stack import base_env, pawdex

pytestmark = [pytest.mark.integration, pytest.mark.realphotos, pytest.mark.slow]

PG_ADMIN_URL = os.environ.get("PAWDEX_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
FIGURES = ("bare_img_s", "limit_img_s", "e2e_img_s", "naive_img_s", "query_p95_ms", "peak_rss_mb")
RATIOS = ("ratio_e2e_vs_bare", "ratio_e2e_vs_limit", "ratio_e2e_vs_naive")


@pytest.fixture
def pg_admin_url() -> str:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is not reachable ({exc}); see DESIGN.md to start it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return PG_ADMIN_URL


def test_bench_json_reports_every_figure(labelled_photos, pg_admin_url, tmp_path):
    scratch = tmp_path / "bench"
    result = pawdex(
        "bench", "--photos", "8", "--rss-photos", "0", "--naive-photos", "4",
        "--query-rows", "2000", "--pg-admin-url", pg_admin_url, "--source-photos",
        str(PHOTOS_DIR), "--batch-sizes", "4,8", "--bare-seconds", "0", "--workdir",
        str(scratch), "--json",
        env=base_env(tmp_path / "var"), timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    figures = json.loads(result.stdout.strip().splitlines()[-1])
    for key in (*FIGURES, *RATIOS, "query_p50_ms"):
        value = figures[key]
        assert isinstance(value, int | float) and value > 0, (key, value)
    assert figures["photos"] == 8 and figures["naive_photos"] == 4
    assert figures["query_rows"] == 2000 and figures["query_count"] >= 200
    assert figures["ratio_e2e_vs_bare"] == pytest.approx(
        figures["e2e_img_s"] / figures["bare_img_s"], rel=1e-2, abs=1e-3
    )
    assert figures["ratio_e2e_vs_limit"] == pytest.approx(
        figures["e2e_img_s"] / figures["limit_img_s"], rel=1e-2, abs=1e-3
    )
    by_process = figures["e2e_cpu_ms_per_photo_by_process"]
    assert set(by_process) == {"api", "ingest", "inference"}
    assert figures["e2e_cpu_ms_per_photo"] == pytest.approx(sum(by_process.values()), abs=0.2)
    assert figures["limit_cpu_ms_per_photo"] > 0
    assert figures["ratio_e2e_vs_naive"] == pytest.approx(
        figures["e2e_img_s"] / figures["naive_img_s"], rel=1e-2, abs=1e-3
    )
    # e2e_seconds is rounded to the millisecond and e2e_img_s to 0.01: the rate lies between
    # what the shortest and the longest unrounded duration give (a few photos take ~0.2 s).
    photos, seconds = figures["photos"], figures["e2e_seconds"]
    fastest, slowest = photos / (seconds - 0.0005), photos / (seconds + 0.0005)
    assert slowest - 0.005 <= figures["e2e_img_s"] <= fastest + 0.005, figures
    assert figures["bare_img_s"] == max(figures["bare_by_batch"].values())
    assert set(figures["peak_rss_mb_by_worker"]) == {"ingest", "inference"}
    assert figures["peak_rss_mb"] == max(figures["peak_rss_mb_by_worker"].values())
    assert figures["large_photos"] == 0 and figures["rss_growth"] is None
    assert "predictions" in figures["query_sql"] and figures["query_explain"].strip()
    assert figures["machine"]["device"] == "cpu" and figures["machine"]["cpu_count"] >= 1
    # The human table comes first, on stdout; progress goes to stderr.
    assert "bare_img_s" in result.stdout and "query_p95_ms" in result.stdout
    assert "ratio_e2e_vs_limit" in result.stdout
    assert "bench" in result.stderr
    # The scratch dir (archives, data dirs, logs) is removed at the end.
    assert not any(scratch.iterdir())


def test_the_query_bench_seeds_rows_with_the_storage_layout(pg_admin_url, tmp_path):
    """The seeded catalogue looks like an indexed one: the keys are Storage's own."""
    from sqlalchemy import select

    from bench.run import seed_catalog, temp_database
    from pawdex.core.db import session_scope
    from pawdex.core.migrate import upgrade_to_head
    from pawdex.core.models import Image
    from pawdex.core.settings import Settings
    from pawdex.core.storage import LocalStorage

    with temp_database(pg_admin_url) as url:
        settings = Settings(data_dir=tmp_path, database_url=url)
        upgrade_to_head(settings)
        storage = LocalStorage(settings.storage_dir)
        seed_catalog(url, 20, storage)
        with session_scope(settings) as session:
            images = session.scalars(select(Image)).all()
            seeded = [(i.sha256, i.format, i.stored_path, i.thumbnail_path) for i in images]
    assert len(seeded) == 20
    for sha256, image_format, stored_path, thumbnail_path in seeded:
        assert stored_path == storage.image_key(sha256, image_format)
        assert thumbnail_path == storage.thumbnail_key(sha256)
        assert storage.path(stored_path).is_relative_to(storage.root)
