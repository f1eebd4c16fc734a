"""pawdex laid out on separate network hosts (:mod:`tests.netns`), for the multi-host test
and ``python -m bench.multihost``:

- ``db``: a private PostgreSQL and a private Redis listening only on this host's address
  (never the machine's shared servers);
- ``api``: ``pawdex serve`` (the API, no embedded workers) and one ingest worker, with the
  data dir (uploads, originals, thumbnails);
- ``inference-1`` … ``inference-N``: ``pawdex worker --queues inference`` each, with an empty
  data dir of its own: thumbnails come from the API over HTTP (``PAWDEX_THUMBNAIL_SOURCE=api``
  with a viewer key made by ``pawdex keys create`` on the API host).

Every process runs under ``ip netns exec`` and is given only the link's addresses.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, select, text

from bench.harness import admin_headers, base_env, spawn, stop, wait_ready
from pawdex.core.db import make_engine
from pawdex.core.models import WorkerPresence
from tests.integration.private_services import PrivatePostgres, PrivateRedis
from tests.netns import Host, Network, network

API_PORT = 8000


@dataclass
class Cluster:
    net: Network
    database: PrivatePostgres
    broker: PrivateRedis
    db: Engine  # the private PostgreSQL, from the test process (root namespace)
    api_url: str
    headers: dict[str, str]  # the admin key `pawdex serve` bootstrapped
    data_dirs: dict[str, Path]  # per host role
    logs: Path
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)  # by name
    started: dict[str, float] = field(default_factory=dict)  # by name: when it was spawned
    nodes: dict[str, str] = field(default_factory=dict)  # by name: a worker's Celery node

    @property
    def inference_hosts(self) -> list[Host]:
        return [host for role, host in self.net.hosts.items() if role.startswith("inference-")]

    def node(self, host: Host) -> str:
        """The Celery node name (and presence row) of the inference worker on ``host``."""
        return f"inference@{host.role}"

    def presence(self) -> dict[str, WorkerPresence]:
        with self.db.connect() as conn:
            rows = conn.execute(select(WorkerPresence.__table__)).mappings().all()
        return {row["hostname"]: row for row in rows}

    def log_text(self, name: str | None = None) -> str:
        """One process's log, or every log."""
        paths = [self.logs / f"{name}.log"] if name else sorted(self.logs.glob("*.log"))
        return "".join(path.read_text(errors="replace") for path in paths)

    def startup_report(self) -> str:
        """Why the workers have not all reported: each process's log tail, then, last (a CI
        log keeps only its tail), where each worker's presence thread stands, what the
        database is doing, and one line per process."""
        reported = set(self.presence())
        silent = [
            name for name, node in self.nodes.items()
            if node not in reported and self.procs[name].poll() is None
        ]  # fmt: skip
        for name in silent:  # Celery's SIGUSR1 handler prints every thread's stack
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.procs[name].pid, signal.SIGUSR1)
        time.sleep(2)
        logs = {name: self.log_text(name) for name in self.procs}  # the dumps included
        tails = [f"--- {name}.log\n{log[-1500:]}" for name, log in logs.items()]
        stacks = [f"{name}'s presence thread: {_thread_stack(logs[name])}" for name in silent]
        lines = []
        for name, proc in self.procs.items():
            state = "running" if proc.poll() is None else f"exited {proc.returncode}"
            ready = _ready_after(logs[name], self.started[name])
            node = self.nodes.get(name)
            row = "" if node is None else f", presence row {'yes' if node in reported else 'no'}"
            lines.append(f"{name}: {state}, {ready}{row}")
        return "\n".join([*tails, *stacks, *self.database_activity(), *lines])

    def database_activity(self) -> list[str]:
        """The private PostgreSQL's sessions (``PGAPPNAME`` names each process's)."""
        try:
            with self.db.connect() as conn:
                rows = conn.execute(text(
                    "SELECT application_name, state, wait_event_type, wait_event,"
                    " extract(epoch FROM now() - xact_start)::int, left(query, 80)"
                    " FROM pg_stat_activity WHERE datname IS NOT NULL"
                    " AND pid <> pg_backend_pid()"
                )).all()  # fmt: skip
        except Exception as exc:  # a report, not a check
            return [f"pg_stat_activity unreadable: {exc!r}"]
        return [f"db session: {' | '.join(map(str, row))}" for row in rows]


_READY = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/MainProcess\] \S+ ready\.",
                    re.MULTILINE)  # fmt: skip


def _ready_after(log: str, spawned: float) -> str:
    """How long after its spawn a Celery worker logged "ready." (its local time)."""
    found = _READY.search(log)
    if found is None:
        return "not ready"
    at = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return f"ready {at - spawned:.1f} s after its start"


def _thread_stack(log: str, thread: str = "pawdex-presence", frames: int = 4) -> str:
    """The innermost ``frames`` of ``thread``'s stack in the last dump Celery's SIGUSR1
    handler wrote to ``log``."""
    dump = log.rsplit(f"\n{thread}\n", 1)
    if len(dump) == 1:
        return "no stack dumped (no such thread, or the signal was not handled)"
    stack = dump[1].split("LOCAL VARIABLES", 1)[0]
    calls = [line.strip() for line in stack.splitlines() if line.strip().startswith("File ")]
    return " <- ".join(reversed(calls[-frames:])) or "empty stack"


def _wait(condition, why_not: Callable[[], str], timeout: float) -> None:
    """Until ``condition``; after ``timeout`` seconds, a TimeoutError says ``why_not()``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(why_not())
        time.sleep(0.2)


def viewer_key(host: Host, env: dict[str, str]) -> str:
    """A viewer key made with ``pawdex keys create`` on ``host`` (its last line is the key)."""
    made = subprocess.run(
        [*host.prefix, sys.executable, "-m", "pawdex", "keys", "create", "--role", "viewer",
         "--name", "inference hosts"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]


@contextmanager
def running_cluster(
    tmp: Path,
    inference_hosts: int = 2,
    *,
    inherit_settings: bool = False,
    ready_timeout: float = 300,
    **settings: str,
) -> Iterator[Cluster]:
    """The hosts, their servers and workers, all ready (every worker has reported itself
    within ``ready_timeout`` seconds); everything killed and deleted on exit. ``settings``:
    ``PAWDEX_*`` for every host."""
    roles = ["db", "api", *(f"inference-{i}" for i in range(1, inference_hosts + 1))]
    logs = tmp / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        net = stack.enter_context(network(roles))
        db_host, api_host = net["db"], net["api"]
        (tmp / "redis").mkdir(exist_ok=True)
        database = PrivatePostgres(host=db_host.address, prefix=db_host.prefix)
        stack.callback(database.stop)
        database.start()
        broker = PrivateRedis(tmp / "redis", host=db_host.address, prefix=db_host.prefix)
        stack.callback(broker.stop)
        broker.start()
        engine = make_engine(database.url)
        stack.callback(engine.dispose)

        placement = dict(PAWDEX_DATABASE_URL=database.url, PAWDEX_BROKER_URL=broker.url)
        data_dirs = {role: tmp / role for role in roles if role != "db"}
        api_env = base_env(
            data_dirs["api"], inherit_settings=inherit_settings, **placement, **settings,
            PAWDEX_WORKER_HOST="api",
        )  # fmt: skip
        api_url = f"http://{api_host.address}:{API_PORT}"
        cluster = Cluster(net, database, broker, engine, api_url, {}, data_dirs, logs)

        def start(name: str, host: Host, args: list[str], env: dict[str, str]) -> None:
            cluster.started[name] = time.time()
            env = env | {"PGAPPNAME": name}  # its sessions in pg_stat_activity
            proc = spawn(args, env, logs / f"{name}.log", prefix=host.prefix)
            cluster.procs[name] = proc
            stack.callback(stop, proc)

        start("api", api_host, ["serve", "--host", api_host.address, "--port", str(API_PORT),
                                "--no-embedded-worker"], api_env)  # fmt: skip
        wait_ready(api_url, [cluster.procs["api"]], timeout=180)  # migrated, admin key made
        cluster.headers = admin_headers(api_env)
        start("ingest", api_host, ["worker", "--queues", "ingest", "--name", "ingest@api"],
              api_env)  # fmt: skip
        cluster.nodes["ingest"] = "ingest@api"
        key = viewer_key(api_host, api_env)
        for host in cluster.inference_hosts:
            env = base_env(
                data_dirs[host.role], inherit_settings=inherit_settings, **placement, **settings,
                PAWDEX_THUMBNAIL_SOURCE="api", PAWDEX_API_URL=api_url, PAWDEX_API_KEY=key,
                PAWDEX_WORKER_HOST=host.role,
            )  # fmt: skip
            data_dirs[host.role].mkdir(parents=True, exist_ok=True)
            start(host.role, host, ["worker", "--queues", "inference", "--name",
                                    cluster.node(host)], env)  # fmt: skip
            cluster.nodes[host.role] = cluster.node(host)
        nodes = set(cluster.nodes.values())

        def all_reported() -> bool:
            for name, proc in cluster.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n"
                                       f"{(logs / f'{name}.log').read_text()[-3000:]}")  # fmt: skip
            return nodes <= set(cluster.presence())

        def not_reported() -> str:
            return f"workers never reported: {sorted(nodes)}\n{cluster.startup_report()}"

        _wait(all_reported, not_reported, timeout=ready_timeout)
        yield cluster
