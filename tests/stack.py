"""Run pawdex as real processes (API server, Celery workers) for integration and e2e tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

FINISHED = {"succeeded", "partial", "failed", "cancelled"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pawdex(*args: str, env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pawdex", *args], env=env, capture_output=True, text=True, **kwargs
    )


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    out = log.open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "pawdex", *args], env=env, stdout=out, stderr=subprocess.STDOUT
    )


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_ready(base_url: str, procs: list[subprocess.Popen], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{base_url} not ready after {timeout}s")


def wait_job(client: httpx.Client, job_id: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in FINISHED:
            return job
        time.sleep(0.5)
    raise TimeoutError(f"job {job_id} still {job['status']} after {timeout}s: {job}")


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAWDEX_")}
    env |= {"PAWDEX_DATA_DIR": str(data_dir), "PAWDEX_DEVICE": "cpu", "PYTHONUNBUFFERED": "1"}
    env |= extra
    return env


@contextmanager
def running_server(
    env: dict[str, str], logs: Path, embedded: bool, workers: list[list[str]] = ()
) -> Iterator[str]:
    """The API (with embedded workers or not) plus any separate workers; yields its URL."""
    port = free_port()
    logs.mkdir(parents=True, exist_ok=True)
    procs = [
        spawn(["worker", *args], env, logs / f"worker{i}.log") for i, args in enumerate(workers)
    ]
    flag = "--embedded-worker" if embedded else "--no-embedded-worker"
    procs.append(spawn(["serve", "--port", str(port), flag], env, logs / "api.log"))
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, procs)
        yield base_url
    finally:
        for proc in reversed(procs):
            stop(proc)
