"""``pawdex models list|show|activate`` and ``pawdex reindex``: which model the service
serves, and classifying the archive again with it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pawdex.core.settings import Settings, get_settings

models_app = typer.Typer(help="Models: built-in and trained; which one is served.")


def _schema(settings: Settings) -> None:
    """The embedded database is created on first use (as ``pawdex serve`` does); a
    production database is migrated explicitly (``pawdex migrate``)."""
    if settings.database_url is None:
        from pawdex.core.migrate import upgrade_to_head

        upgrade_to_head(settings)


def _trained_dirs(settings: Settings) -> list[Path]:
    root = settings.models_dir
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "model.json").is_file())


def _metrics(path: Path) -> str:
    try:
        metrics = json.loads((path / "metrics.json").read_text())
    except (OSError, ValueError):
        return ""
    parts = [f"{k} {metrics[k]:.3f}" for k in ("top1", "top5", "macro_f1") if k in metrics]
    return ", ".join(parts)


def _resolve(ref: str, settings: Settings):
    """A classifier (not loaded) for a built-in name, a trained model's name in the models
    dir, or a trained model's directory."""
    from pawdex.ml import CLASSIFIERS, load_classifier
    from pawdex.ml.trained import TrainedClassifier

    if ref in CLASSIFIERS:
        return load_classifier(ref, device="cpu", runtime="torch")
    for candidate in (Path(ref), settings.models_dir / ref):
        if (candidate / "model.json").is_file():
            return TrainedClassifier(candidate, device="cpu", runtime="torch")
    known = [*CLASSIFIERS, *(p.name for p in _trained_dirs(settings))]
    raise typer.BadParameter(f"unknown model {ref!r}; known: {', '.join(known)}")


@models_app.command("list")
def models_list() -> None:
    """Built-in models, trained models in the models dir, and which version is active."""
    from pawdex.core.db import session_scope
    from pawdex.core.model_versions import active_version
    from pawdex.ml import CLASSIFIERS

    settings = get_settings()
    _schema(settings)
    with session_scope(settings) as session:
        active = active_version(session)
        active_name = active.name if active else settings.model
    for name in CLASSIFIERS:
        mark = "*" if name == active_name else " "
        typer.echo(f"{mark} {name:<32} built-in (ImageNet head restricted to the dog breeds)")
    for path in _trained_dirs(settings):
        mark = "*" if path.name == active_name else " "
        typer.echo(f"{mark} {path.name:<32} trained  {_metrics(path)}  {path}")
    source = "active version" if active else "PAWDEX_MODEL (nothing activated yet)"
    typer.echo(f"\n* served: {active.version if active else active_name} ({source})")


@models_app.command("show")
def models_show(ref: Annotated[str, typer.Argument(help="Name or directory.")]) -> None:
    """A model's version, classes, preprocessing and (for trained ones) its model card."""
    settings = get_settings()
    model = _resolve(ref, settings)
    typer.echo(f"name: {model.name}\nversion: {model.version}\nweights: {model.weights_file}")
    preset = model.preset
    typer.echo(f"input: {preset.input_size}px, mean {preset.mean}, std {preset.std}")
    card = getattr(model, "path", None) and Path(model.path) / "card.md"
    if card and card.is_file():
        typer.echo("")
        typer.echo(card.read_text())


@models_app.command("activate")
def models_activate(
    ref: Annotated[str, typer.Argument(help="Name or directory.")],
    reindex: Annotated[
        bool, typer.Option("--reindex", help="Then queue a job classifying every photo.")
    ] = False,
) -> None:
    """Serve this model: every worker switches at its next batch and records it on every
    prediction. Photos it has not classified yet show once re-indexed."""
    from pawdex.core.db import session_scope
    from pawdex.core.model_versions import register_version
    from pawdex.worker.model_cache import model_details

    settings = get_settings()
    model = _resolve(ref, settings)
    _schema(settings)
    with session_scope(settings) as session:
        row = register_version(
            session, model.version, model.name, model_details(model), activate=True
        )
        version = row.version
    typer.echo(f"active: {version}")
    if reindex:
        _reindex(settings, everything=False, wait=False)


def _reindex(settings: Settings, everything: bool, wait: bool) -> str:
    from pawdex.core.db import session_scope
    from pawdex.core.model_versions import create_reindex_job
    from pawdex.core.queue import enqueue_classify_batches

    with session_scope(settings) as session:
        plan = create_reindex_job(session, everything=everything, created_by="pawdex reindex")
        job_id, ids = plan.job.id, plan.image_ids
    enqueue_classify_batches(job_id, ids, settings)
    typer.echo(f"reindex job {job_id}: {len(ids)} photos queued")
    if wait and ids:
        _wait_local(settings, job_id, len(ids))
    return job_id


def _wait_local(settings: Settings, job_id: str, total: int) -> None:
    from rich.progress import Progress

    from pawdex.cli.client import poll_job, read_job

    with Progress(transient=False) as progress:
        task = progress.add_task("re-indexing", total=total)

        def fetch() -> dict:
            doc = read_job(settings, job_id)
            progress.update(task, completed=doc["done"] + doc["failed"])
            return doc

        final = poll_job(fetch, timeout=None, interval=1)
    typer.echo(f"job {job_id}: {final['status']}")


def reindex(
    everything: Annotated[
        bool, typer.Option("--all", help="Every photo again, not only those not yet classified.")
    ] = False,
    wait: Annotated[bool, typer.Option(help="Follow the job until it ends.")] = True,
) -> None:
    """Classify stored photos with the active model, as an ordinary job run by the workers
    (photos it has not classified yet, or --all)."""
    from pawdex.core.jobs import JobConflict

    _schema(get_settings())
    try:
        _reindex(get_settings(), everything, wait)
    except JobConflict as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None
