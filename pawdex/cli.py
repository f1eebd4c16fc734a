"""The ``pawdex`` command line: it wires the api, worker, core and ml packages together."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from core.settings import get_settings

app = typer.Typer(
    help="Index an animal shelter's photo archive by dog breed.", no_args_is_help=True
)

DEFAULT_SERVER = os.environ.get("PAWDEX_SERVER", "http://127.0.0.1:8000")


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema to the newest revision."""
    from core.migrate import upgrade_to_head

    settings = get_settings()
    upgrade_to_head(settings)
    typer.echo(f"database at head: {settings.resolved_database_url.split('@')[-1]}")


def _die_with_parent() -> None:
    """Linux: the kernel sends SIGTERM to this child when ``pawdex serve`` dies, however it
    dies (uvicorn re-raises SIGTERM after its shutdown, which skips ``finally`` blocks)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _embedded_workers() -> list[subprocess.Popen]:
    # Two solo workers: ingest (I/O and decoding) overlaps with inference (the model).
    base = [sys.executable, "-m", "pawdex", "worker", "--concurrency", "1"]
    return [
        subprocess.Popen(
            [*base, "--queues", queue, "--name", f"{queue}@%h"], preexec_fn=_die_with_parent
        )
        for queue in ("ingest", "inference")
    ]


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    embedded_worker: Annotated[bool, typer.Option(help="Start workers beside the API.")] = True,
    migrate_first: Annotated[bool, typer.Option("--migrate/--no-migrate")] = True,
) -> None:
    """Run the API (and, by default, workers beside it: the embedded mode)."""
    import uvicorn

    _logging()
    settings = get_settings()
    if migrate_first:
        from core.migrate import upgrade_to_head

        upgrade_to_head(settings)
    workers = _embedded_workers() if embedded_worker else []
    typer.secho(f"pawdex is running at http://{host}:{port}  (API docs: /docs)", fg="green")
    try:
        uvicorn.run("api.main:create_app", factory=True, host=host, port=port, log_level="info")
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@app.command()
def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues.")] = "ingest,inference",
    concurrency: Annotated[int, typer.Option(min=1)] = 1,
    name: Annotated[str, typer.Option(help="Celery node name.")] = "pawdex@%h",
    loglevel: str = "INFO",
) -> None:
    """Run a Celery worker (one model per process)."""
    from worker.celery_app import app as celery_app

    pool = "solo" if concurrency == 1 else "prefork"
    if "inference" in queues.split(","):
        from worker.model_cache import preload

        if pool == "solo":
            preload(get_settings())
        else:  # load in each forked child, never before the fork (torch threads)
            from celery.signals import worker_process_init

            worker_process_init.connect(lambda **_: preload(get_settings()), weak=False)
    celery_app.worker_main(
        ["worker", "--pool", pool, "--concurrency", str(concurrency), "--queues", queues,
         "--hostname", name, "--loglevel", loglevel, "--without-gossip", "--without-mingle"]
    )  # fmt: skip


@app.command()
def predict(
    photos: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False)],
    top: Annotated[int, typer.Option(min=1, max=5, help="Also list the N most likely breeds.")] = 1,
    model: Annotated[str | None, typer.Option(help="Model name (default: PAWDEX_MODEL).")] = None,
) -> None:
    """Print each photo's most probable breed and its probability (%)."""
    from pawdex.predicting import predict_files

    settings = get_settings()
    failures = predict_files(photos, top, model or settings.model, settings)
    raise typer.Exit(1 if failures else 0)


@app.command()
def index(
    paths: Annotated[list[Path], typer.Argument(exists=True)],
    server: Annotated[str, typer.Option(help="URL of a running pawdex.")] = DEFAULT_SERVER,
    local: Annotated[bool, typer.Option(help="Index in this process, without a server.")] = False,
    wait: Annotated[bool, typer.Option(help="Show progress until the jobs end.")] = True,
) -> None:
    """Send folders, photos or archives for indexing and follow the jobs to the end."""
    from pawdex.indexing import index_local, index_remote

    ok = index_local(paths, get_settings()) if local else index_remote(paths, server, wait)
    raise typer.Exit(0 if ok else 1)
