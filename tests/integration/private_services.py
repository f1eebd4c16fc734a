"""A Redis and a PostgreSQL of the test's own, that the test kills and starts again (never the
machine's shared servers): outages on demand."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg
import redis

from tests.integration.conftest import _unavailable
from tests.stack import die_with_parent, free_port, stop


def _wait(condition, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)


class PrivateRedis:
    """``redis-server`` without persistence (as a default install runs): a restart is empty.

    ``host``: the address it listens on; ``prefix``: a command it runs under (e.g. ``ip netns
    exec <ns>``, :mod:`tests.netns`)."""

    def __init__(self, folder: Path, host: str = "127.0.0.1", prefix: Sequence[str] = ()) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            _unavailable("redis-server", FileNotFoundError("redis-server"))
        self.folder, self.port = folder, free_port()
        self.host, self.prefix = host, list(prefix)
        self.url = f"redis://{host}:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [*self.prefix, self.binary, "--port", str(self.port), "--bind", self.host, "--save", "",
             "--appendonly", "no", "--dir", str(self.folder),
             # bound to a private link's address (tests.netns): its hosts are its clients
             "--protected-mode", "yes" if self.host == "127.0.0.1" else "no"],
            stdout=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )  # fmt: skip
        _wait(self.pings, "redis-server did not start")

    def pings(self) -> bool:
        try:
            return redis.Redis.from_url(self.url, socket_connect_timeout=1).ping()
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """SIGKILL: every queued message is gone."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def depth(self, queue: str) -> int:
        return redis.Redis.from_url(self.url).llen(queue)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


class PrivatePostgres:
    """A throwaway cluster from ``initdb`` on a free port, run as the ``postgres`` user when
    the tests run as root (PostgreSQL refuses root). ``host`` and ``prefix`` as for
    :class:`PrivateRedis`."""

    def __init__(self, host: str = "127.0.0.1", prefix: Sequence[str] = ()) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins and not shutil.which("initdb"):
            _unavailable("initdb", FileNotFoundError("initdb"))
        self.bin = Path(bins[-1]).parent if bins else Path(shutil.which("initdb")).parent
        self.as_user: list[str] = []
        self.folder = Path(tempfile.mkdtemp(prefix="pawdex-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data, self.port = self.folder / "data", free_port()
        subprocess.run(
            [*self.as_user, str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
             "-A", "trust", "--no-sync", "-E", "UTF8"],
            check=True, capture_output=True,
        )  # fmt: skip
        self.host, self.prefix = host, list(prefix)
        if host != "127.0.0.1":  # initdb trusts loopback only; clients on the private link too
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.write("host all all 0.0.0.0/0 trust\n")
        self.url = f"postgresql+psycopg://postgres@{host}:{self.port}/postgres"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [*self.prefix, *self.as_user, str(self.bin / "postgres"), "-D", str(self.data),
             "-p", str(self.port), "-c", f"listen_addresses={self.host}",
             "-c", f"unix_socket_directories={self.folder}",
             "-c", "fsync=off", "-c", "max_connections=200"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent, start_new_session=True,  # its own group: killed whole
        )  # fmt: skip
        _wait(self.answers, "postgres did not start")

    def answers(self) -> bool:
        try:
            url = self.url.replace("+psycopg", "")
            with psycopg.connect(url, connect_timeout=1) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def kill(self) -> None:
        """An outage: the postmaster and every backend die at once (crash recovery on start)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        _wait(lambda: not self.answers(), "postgres did not stop")

    def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
