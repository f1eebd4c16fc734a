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

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, create_engine, select

from bench.harness import admin_headers, base_env, spawn, stop, wait_ready
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

    def log_text(self) -> str:
        return "".join(path.read_text(errors="replace") for path in sorted(self.logs.glob("*.log")))


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
    tmp: Path, inference_hosts: int = 2, *, inherit_settings: bool = False, **settings: str
) -> Iterator[Cluster]:
    """The hosts, their servers and workers, all ready (every worker has reported itself);
    everything killed and deleted on exit. ``settings``: ``PAWDEX_*`` for every host."""
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
        engine = create_engine(database.url, pool_pre_ping=True)
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
            proc = spawn(args, env, logs / f"{name}.log", prefix=host.prefix)
            cluster.procs[name] = proc
            stack.callback(stop, proc)

        start("api", api_host, ["serve", "--host", api_host.address, "--port", str(API_PORT),
                                "--no-embedded-worker"], api_env)  # fmt: skip
        wait_ready(api_url, [cluster.procs["api"]], timeout=180)  # migrated, admin key made
        cluster.headers = admin_headers(api_env)
        start("ingest", api_host, ["worker", "--queues", "ingest", "--name", "ingest@api"],
              api_env)  # fmt: skip
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
        nodes = {"ingest@api", *(cluster.node(host) for host in cluster.inference_hosts)}

        def all_reported() -> bool:
            for name, proc in cluster.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n"
                                       f"{(logs / f'{name}.log').read_text()[-3000:]}")  # fmt: skip
            return nodes <= set(cluster.presence())

        def not_reported() -> str:  # why, when they never do: what is there, and the logs
            seen = sorted(cluster.presence())
            tails = "\n".join(
                f"--- {name}.log\n{(logs / f'{name}.log').read_text(errors='replace')[-1500:]}"
                for name in cluster.procs
            )
            return f"workers never reported: {sorted(nodes)}; presence rows: {seen}\n{tails}"

        _wait(all_reported, not_reported, timeout=300)
        yield cluster
