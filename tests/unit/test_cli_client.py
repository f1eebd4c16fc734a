"""The client side the CLI, the bench and the tests share (pawdex.cli.client): one loop that
follows a job to its end, the finished statuses from the JobStatus enum; the CLI never
imports the API; ``pawdex bench`` runs the checkout's bench or says how."""

from __future__ import annotations

import ast
import io
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pawdex.cli import client as cli_client
from pawdex.cli.client import read_job, wait_job
from pawdex.core.models import FINISHED_STATUSES, JobKind, JobStatus

ROOT = Path(__file__).resolve().parents[2]


def _jobs_api(statuses: list[str], seen: list[str] | None = None) -> httpx.Client:
    """A fake API whose GET /v1/jobs/j1 answers these statuses in turn (429 as such)."""
    answers = iter(statuses)

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/jobs/j1"
        status = next(answers)
        if seen is not None:
            seen.append(status)
        if status == "429":
            return httpx.Response(429, headers={"Retry-After": "3"}, json={"detail": "slow"})
        return httpx.Response(200, json={"id": "j1", "status": status, "done": 0})

    return httpx.Client(transport=httpx.MockTransport(handler), base_url="http://pawdex")


@pytest.fixture
def no_sleep(monkeypatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(cli_client.time, "sleep", waits.append)
    return waits


@pytest.mark.parametrize("final", sorted(FINISHED_STATUSES))
def test_wait_job_ends_at_every_finished_status_of_the_enum(final, no_sleep):
    progress: list[str] = []
    job = wait_job(
        _jobs_api(["queued", "running", final.value]),
        "j1",
        interval=0.2,
        on_progress=lambda doc: progress.append(doc["status"]),
    )
    assert job["status"] == final
    assert progress == ["queued", "running"]  # every unfinished state, never the final one
    assert no_sleep == [0.2, 0.2]


def test_the_unfinished_statuses_are_exactly_queued_and_running():
    assert set(JobStatus) - FINISHED_STATUSES == {JobStatus.queued, JobStatus.running}


def test_wait_job_waits_out_the_rate_limit_and_times_out(no_sleep, monkeypatch):
    seen: list[str] = []
    assert wait_job(_jobs_api(["429", "succeeded"], seen), "j1")["status"] == "succeeded"
    assert seen == ["429", "succeeded"] and no_sleep == [3.0]

    clock = iter(range(0, 1000, 10))
    monkeypatch.setattr(cli_client.time, "monotonic", lambda: next(clock))
    with pytest.raises(TimeoutError, match="j1 still running after 25s"):
        wait_job(_jobs_api(["running"] * 10), "j1", timeout=25)


def test_the_tests_finished_set_is_the_enums():
    from tests.stack import FINISHED

    assert FINISHED is FINISHED_STATUSES


def test_a_local_job_reads_as_the_api_tells_it(embedded_settings):
    from pawdex.core.uploads import IncomingFile, submit

    job = submit(
        JobKind.images, [IncomingFile("a.jpg", io.BytesIO(b"x"))], embedded_settings, enqueue=False
    )
    doc = read_job(embedded_settings, job.id)
    assert doc == {
        "id": job.id, "name": "a.jpg", "kind": "images", "status": "queued", "total": 0,
        "done": 0, "failed": 0, "duplicates": 0, "skipped": 0, "message": None, "errors": [],
    }  # fmt: skip


def test_the_cli_never_imports_the_api():
    imported: set[str] = set()
    for path in (ROOT / "src" / "pawdex" / "cli").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
    assert not {m for m in imported if m.startswith("pawdex.api")}


# ---------------------------------------------------------------------------- pawdex bench


def _pawdex(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pawdex", *args], cwd=cwd, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def test_pawdex_bench_outside_a_checkout_says_how_to_run_it(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from pawdex.cli import app

    monkeypatch.chdir(tmp_path)  # no bench/ here nor above
    result = CliRunner().invoke(app, ["bench", "--photos", "8"])
    assert result.exit_code == 2
    assert "not part of the installed package" in result.output
    assert "python -m bench --help" in result.output


def test_pawdex_bench_at_the_checkout_root_runs_its_bench():
    done = _pawdex("bench", "--help", cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "python -m bench" in done.stdout  # the bench's own help, not pawdex's
    assert "--photos" in done.stdout and "--rss-photos" in done.stdout


@pytest.mark.parametrize("where", ["outside", "docs"])
def test_pawdex_bench_as_a_command_outside_the_checkout_root(where, tmp_path):
    done = _pawdex("bench", "--help", cwd=tmp_path if where == "outside" else ROOT / where)
    if where == "outside":
        assert done.returncode == 2, done.stderr
        assert "not part of the installed package" in done.stderr
    else:  # found above the working directory
        assert done.returncode == 0, done.stderr
        assert "python -m bench" in done.stdout
