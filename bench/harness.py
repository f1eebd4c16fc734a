"""pawdex as real processes (API server, Celery workers): start, wait for, stop. (Following
a job is :func:`pawdex.cli.client.wait_job`.)

Used by ``pawdex serve`` (embedded workers), ``pawdex bench`` and the integration and e2e
tests. Children started here never outlive their parent: they are stopped in ``finally`` and,
on Linux, the kernel sends them SIGTERM if the parent dies first (``die_with_parent``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pawdex.cli.processes import die_with_parent
from pawdex.model_names import FAST_MODEL

# The settings a stack started here always decides itself (never inherited from the caller).
_PLACEMENT = ("PAWDEX_DATA_DIR", "PAWDEX_DATABASE_URL", "PAWDEX_BROKER_URL")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(
    args: Sequence[str],
    env: dict[str, str],
    log: Path,
    *,
    module: str = "pawdex",
    prefix: Sequence[str] = (),
) -> subprocess.Popen:
    """``python -m <module> <args>`` with its output in ``log``; dies with this process.
    ``prefix``: a command it runs under (``ip netns exec <ns>``: another host, tests.netns)."""
    with log.open("w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [*prefix, sys.executable, "-m", module, *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_ready(
    base_url: str, procs: Sequence[subprocess.Popen], timeout: float = 120, path: str = "/readyz"
) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            if httpx.get(f"{base_url}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{base_url} not ready after {timeout}s")


def base_env(data_dir: Path, *, inherit_settings: bool = False, **extra: str) -> dict[str, str]:
    """The environment of a stack whose data lives in ``data_dir``.

    By default every ``PAWDEX_*`` variable of this process is dropped, the device is the CPU
    and the model Lite0 (tests). With ``inherit_settings`` the caller's settings (model,
    device, batch size …) are kept, all but where the data lives (data dir, database,
    broker)."""
    drop = _PLACEMENT if inherit_settings else None
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PAWDEX_") or (drop is not None and k not in drop)
    }
    env |= {"PAWDEX_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    if not inherit_settings:
        env["PAWDEX_DEVICE"] = "cpu"
        env["PAWDEX_MODEL"] = FAST_MODEL  # tests need speed
    env |= extra
    return env


@dataclass
class Stack:
    """A running API and its separate workers."""

    url: str
    api: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # the bootstrap admin key


def admin_headers(env: dict[str, str]) -> dict[str, str]:
    """``X-API-Key`` with the admin key that ``pawdex serve`` wrote on an empty database."""
    key_file = Path(env["PAWDEX_DATA_DIR"]) / "admin.key"
    return {"X-API-Key": key_file.read_text().strip()} if key_file.is_file() else {}


@contextmanager
def running_stack(
    env: dict[str, str],
    logs: Path,
    embedded: bool,
    workers: Sequence[Sequence[str]] = (),
    serve_args: Sequence[str] = (),
    timeout: float = 120,
) -> Iterator[Stack]:
    """The API (with embedded workers or not) plus any separate workers, until the block ends."""
    port = free_port()
    logs.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen] = []
    try:
        for i, args in enumerate(workers):
            procs.append(spawn(["worker", *args], env, logs / f"worker{i}.log"))
        flag = "--embedded-worker" if embedded else "--no-embedded-worker"
        api = spawn(["serve", "--port", str(port), flag, *serve_args], env, logs / "api.log")
        procs.append(api)
        base_url = f"http://127.0.0.1:{port}"
        wait_ready(base_url, procs, timeout=timeout)
        yield Stack(url=base_url, api=api, workers=procs[:-1], headers=admin_headers(env))
    finally:
        for proc in reversed(procs):
            stop(proc)


@contextmanager
def running_server(
    env: dict[str, str], logs: Path, embedded: bool, workers: Sequence[Sequence[str]] = ()
) -> Iterator[str]:
    """``running_stack`` that yields only the API's URL."""
    with running_stack(env, logs, embedded, workers) as stack:
        yield stack.url


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set size so far (Linux ``VmHWM``), in MiB."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, every thread) the process has used so far."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
