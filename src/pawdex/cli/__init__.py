"""The ``pawdex`` command line: it wires the api, worker, core and ml packages together."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from pawdex.cli.models import models_app, reindex
from pawdex.cli.processes import die_with_parent
from pawdex.cli.training import augment_grid, evaluate, experiment, train, tune
from pawdex.core.settings import get_settings

app = typer.Typer(
    help="Index an animal shelter's photo archive by dog breed.", no_args_is_help=True
)

DEFAULT_SERVER = os.environ.get("PAWDEX_SERVER", "http://127.0.0.1:8000")


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema to the newest revision; with object storage
    (`PAWDEX_STORAGE_URL=s3://…`), create its bucket if it is missing."""
    from pawdex.core.migrate import upgrade_to_head
    from pawdex.core.storage import prepare_storage

    settings = get_settings()
    upgrade_to_head(settings)
    typer.echo(f"database at head: {settings.resolved_database_url.split('@')[-1]}")
    if bucket := prepare_storage(settings):
        typer.echo(bucket)


EMBEDDED_QUEUES = ("ingest", "inference")


def _embedded_worker(queue: str) -> subprocess.Popen:
    # One solo worker per queue: ingest (I/O and decoding) overlaps with inference (the model).
    args = ["worker", "--concurrency", "1", "--queues", queue, "--name", f"{queue}@%h"]
    return subprocess.Popen([sys.executable, "-m", "pawdex", *args], preexec_fn=die_with_parent)


def _supervise(workers: dict[str, subprocess.Popen], stop: threading.Event) -> None:
    """Start again an embedded worker that died (killed, out of memory, a crash): its
    unacknowledged task is delivered again, and its sweeper comes back with it."""
    log = logging.getLogger("pawdex.serve")
    restarts: list[float] = []
    while not stop.wait(1.0):
        for queue, proc in list(workers.items()):
            if proc.poll() is None or stop.is_set():
                continue
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < 60]
            if len(restarts) >= 10:  # crashing in a loop: slow down, keep the API up
                continue
            restarts.append(now)
            log.error("event=worker_restarted queue=%s exit_code=%s", queue, proc.returncode)
            workers[queue] = _embedded_worker(queue)


def _bootstrap_admin_key(settings) -> bool:
    """On an empty database: the first admin key, written to the data dir's ``admin.key``.
    True when it was created (``_admin_key_notice`` then says where it is)."""
    from pawdex.core.db import session_scope
    from pawdex.core.keys import bootstrap_admin_key

    with session_scope(settings) as session:
        return bootstrap_admin_key(session, settings.admin_key_file) is not None


def _admin_key_notice(settings) -> None:
    # Where the key is, never the key: standard output ends up in logs (journald, docker),
    # and the file stays when the worker banners have scrolled this line away.
    typer.secho(
        f"created the first admin API key in {settings.admin_key_file} (mode 0600): "
        f"sign in to the web UI with it, send it as X-API-Key (cat {settings.admin_key_file}); "
        "pawdex index reads it there",
        fg="yellow",
    )


def _sweep_spool(settings) -> None:
    """Uploads a killed API left half-spooled (no job row points at them) are deleted."""
    from pawdex.core.uploads import sweep_spool

    deleted = sweep_spool(settings)
    if deleted:
        logging.getLogger("pawdex.serve").info(
            "event=spool_swept batches=%s names=%s", len(deleted), ",".join(deleted)
        )


keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


app.add_typer(models_app, name="models")
app.command()(reindex)
for command in (train, evaluate, tune, experiment):
    app.command()(command)
app.command("augment-grid")(augment_grid)

labels_app = typer.Typer(
    help="People's labels (corrections) as training data.", no_args_is_help=True
)
app.add_typer(labels_app, name="labels")


@labels_app.command("export")
def labels_export(
    out: Annotated[Path, typer.Argument(file_okay=False, help="Folder to write (ImageFolder).")],
) -> None:
    """Write every human-labelled photo as ``OUT/<breed>/<sha256>.<ext>`` (non-dogs under
    ``_not_a_dog``) plus ``labels.csv``: a tree ``pawdex train`` can learn from."""
    from pawdex.core.db import session_scope
    from pawdex.core.labels import export_image_folder
    from pawdex.core.storage import open_storage

    settings = get_settings()
    with session_scope(settings) as session:
        counts = export_image_folder(session, open_storage(settings), out)
    total = sum(counts.values())
    typer.echo(f"{total} labelled photos in {len(counts)} folders under {out}")
    for folder, n in sorted(counts.items()):
        typer.echo(f"  {folder}: {n}")


@labels_app.command("import")
def labels_import(
    file: Annotated[Path, typer.Argument(dir_okay=False, exists=True, help="A labels CSV.")],
) -> None:
    """Apply a labels CSV (``GET /v1/labels``'s columns, e.g. edited in a spreadsheet): rows
    found by image_id, else sha256; the bad ones are listed, the good ones apply."""
    import getpass
    from dataclasses import dataclass

    from pawdex.core.db import session_scope
    from pawdex.core.label_import import import_labels, read_labels_csv
    from pawdex.core.labels import InvalidLabel

    @dataclass(frozen=True)
    class CommandLine:
        id: None = None
        name: str = f"cli ({getpass.getuser()})"

    try:
        rows, unread = read_labels_csv(file.read_text(encoding="utf-8-sig"), max_rows=None)
    except (InvalidLabel, UnicodeDecodeError) as exc:
        typer.echo(f"{file}: {exc}", err=True)
        raise typer.Exit(2) from None
    with session_scope(get_settings()) as session:
        result = import_labels(session, rows, CommandLine())
    errors = sorted(unread + result.errors)
    typer.echo(f"{result.applied} photos labelled, {len(errors)} rows refused")
    for row, reason in errors:
        typer.echo(f"  row {row}: {reason}", err=True)
    if errors:
        raise typer.Exit(1)


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="viewer, archivist or admin")] = "viewer",
    name: Annotated[str, typer.Option(help="Who or what the key is for.")] = "",
) -> None:
    """Create a key and print it (it is shown only this once)."""
    from pawdex.core.db import session_scope
    from pawdex.core.keys import create_key
    from pawdex.core.models import Role

    try:
        chosen = Role(role)
    except ValueError:
        raise typer.BadParameter("role must be viewer, archivist or admin") from None
    with session_scope() as session:
        row, plain = create_key(session, chosen, name or f"{chosen.value} key")
        typer.echo(f"key {row.id} ({row.role.value}, {row.name}):")
    typer.echo(plain)


@keys_app.command("list")
def keys_list() -> None:
    """Every key with its role and state (never the key itself)."""
    from pawdex.core.db import session_scope
    from pawdex.core.keys import list_keys

    with session_scope() as session:
        for row in list_keys(session):
            state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
            used = f"{row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never"
            role = row.role.value
            typer.echo(f"{row.id:>4} {row.prefix}… {role:<9} {state:<18} used {used}  {row.name}")


@keys_app.command("revoke")
def keys_revoke(key_id: int) -> None:
    """Revoke a key by its id (see `pawdex keys list`)."""
    from pawdex.core.db import session_scope
    from pawdex.core.keys import revoke_key

    with session_scope() as session:
        if not revoke_key(session, key_id):
            typer.secho(f"no active key {key_id}", fg="red", err=True)
            raise typer.Exit(1)
    typer.echo(f"key {key_id} revoked")


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
        from pawdex.core.migrate import upgrade_to_head
        from pawdex.core.storage import prepare_storage

        upgrade_to_head(settings)
        prepare_storage(settings)
    created_admin_key = _bootstrap_admin_key(settings)
    _sweep_spool(settings)
    workers = {q: _embedded_worker(q) for q in EMBEDDED_QUEUES} if embedded_worker else {}
    stop = threading.Event()
    threading.Thread(target=_supervise, args=(workers, stop), daemon=True).start()
    typer.secho(f"pawdex is running at http://{host}:{port}  (API docs: /docs)", fg="green")
    if created_admin_key:  # last, after the workers started
        _admin_key_notice(settings)
    try:
        uvicorn.run(
            "pawdex.api.main:create_app",
            factory=True,
            host=host,
            port=port,
            log_level="info",
            workers=settings.api_processes if settings.api_processes > 1 else None,
        )
    finally:
        stop.set()
        for proc in workers.values():
            proc.terminate()
        for proc in workers.values():
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
    """Run a Celery worker (one model per process), and its sweeper of lost ingests."""
    from pawdex.worker.celery_app import app as celery_app

    pool = "solo" if concurrency == 1 else "prefork"
    celery_app.worker_main(
        ["worker", "--pool", pool, "--concurrency", str(concurrency), "--queues", queues,
         "--hostname", name, "--loglevel", loglevel, "--without-gossip", "--without-mingle"]
    )  # fmt: skip


def _read_key_file(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


@app.command()
def predict(
    photos: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False)],
    top: Annotated[int, typer.Option(min=1, max=5, help="Also list the N most likely breeds.")] = 1,
    model: Annotated[str | None, typer.Option(help="Model name (default: PAWDEX_MODEL).")] = None,
) -> None:
    """Print each photo's most probable breed and its probability (%)."""
    from pawdex.cli.predicting import predict_files

    settings = get_settings()
    failures = predict_files(photos, top, model or settings.model, settings)
    raise typer.Exit(1 if failures else 0)


@app.command()
def index(
    paths: Annotated[list[Path], typer.Argument(exists=True)],
    server: Annotated[str, typer.Option(help="URL of a running pawdex.")] = DEFAULT_SERVER,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="PAWDEX_API_KEY",
            help="An archivist or admin key (default: the data dir's admin.key, if any).",
        ),
    ] = None,
    local: Annotated[bool, typer.Option(help="Index in this process, without a server.")] = False,
    wait: Annotated[bool, typer.Option(help="Show progress until the jobs end.")] = True,
    batch_files: Annotated[
        int, typer.Option(min=1, help="Photos per upload request (a folder is sent in batches).")
    ] = 200,
    batch_mb: Annotated[
        float, typer.Option(min=0.01, help="Megabytes per upload request, at most.")
    ] = 256,
) -> None:
    """Send folders, photos or archives for indexing and follow the jobs to the end.

    A folder goes in batches, only the photos the server does not have yet, and an archive
    as a resumable upload (in chunks, any size): run the same command again after an
    interruption and it carries on."""
    from pawdex.cli.indexing import index_local, index_remote

    settings = get_settings()
    if local:
        ok = index_local(paths, settings)
    else:
        key = api_key or _read_key_file(settings.admin_key_file)
        ok = index_remote(paths, server, wait, key, batch_files, int(batch_mb * 1024 * 1024))
    raise typer.Exit(0 if ok else 1)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def bench(ctx: typer.Context) -> None:
    """Run the benchmark (``python -m bench``) of the source checkout this is run in."""
    root = next(
        (d for d in (Path.cwd(), *Path.cwd().parents) if (d / "bench" / "run.py").is_file()), None
    )
    if root is None:
        typer.secho(
            "the benchmark is not part of the installed package: run it from a pawdex source "
            "checkout, as `python -m bench --help` (or `pawdex bench`) in its root folder.",
            fg="red",
            err=True,
        )
        raise typer.Exit(2)
    raise typer.Exit(subprocess.call([sys.executable, "-m", "bench", *ctx.args], cwd=root))
