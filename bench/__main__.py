"""``python -m bench``: indexing throughput, query latency and worker memory in one run.

Run it from the root of a source checkout (``pawdex bench`` there does the same)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False)


@app.command()
def main(
    photos: Annotated[int, typer.Option(min=1, help="Photos in the timed archive (N).")] = 1000,
    rss_photos: Annotated[
        int, typer.Option(min=0, help="Photos of the second run for peak RSS (0: skip it).")
    ] = 10_000,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="Database of the e2e runs: a URL, or 'pg' for a fresh temporary database on "
            "--pg-admin-url. Default: SQLite in a temporary data dir (embedded)."
        ),
    ] = None,
    broker_url: Annotated[
        str | None, typer.Option(help="Broker of the e2e runs (default: filesystem, embedded).")
    ] = None,
    pg_admin_url: Annotated[
        str | None,
        typer.Option(
            help="PostgreSQL URL allowed to CREATE DATABASE: the query bench (and --database-url "
            "pg) create and drop pawdex_bench_<hex> there. Default: "
            "postgresql://postgres@127.0.0.1:5432/test, skipped when unreachable."
        ),
    ] = None,
    query_rows: Annotated[
        int, typer.Option(min=1, help="Rows seeded for the query bench.")
    ] = 100_000,
    queries: Annotated[int, typer.Option(min=20, help="Timed catalogue requests.")] = 200,
    naive_photos: Annotated[
        int, typer.Option(min=0, help="Photos sent to the naive demo server (0: skip it).")
    ] = 100,
    naive_device: Annotated[str, typer.Option(help="Device of the naive demo.")] = "cpu",
    source_photos: Annotated[
        Path | None,
        typer.Option(help="Real photos to upscale to camera size (default: ../shared/photos)."),
    ] = None,
    archive: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, help="Time this archive instead of building one."
        ),
    ] = None,
    batch_sizes: Annotated[
        str, typer.Option(help="Batch sizes tried for bare_img_s.")
    ] = "8,16,32,64",
    bare_seconds: Annotated[
        float, typer.Option(min=0, help="Seconds timed per batch size for bare_img_s.")
    ] = 3.0,
    workdir: Annotated[
        Path | None, typer.Option(help="Where the scratch dir goes (default: system temp).")
    ] = None,
    keep: Annotated[
        bool, typer.Option(help="Keep the scratch dir (archives, data, logs).")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Also print one JSON object as the last line.")
    ] = False,
) -> None:
    """Measure indexing throughput (bare model, end to end, naive demo), query latency and
    worker memory, in one run on this machine. Progress on stderr, the table on stdout."""
    from bench.run import DEFAULT_SOURCE_PHOTOS, BenchOptions, bench_main

    options = BenchOptions(
        photos=photos, rss_photos=rss_photos, database_url=database_url, broker_url=broker_url,
        pg_admin_url=pg_admin_url, query_rows=query_rows, queries=queries,
        naive_photos=naive_photos, naive_device=naive_device,
        source_photos=source_photos or DEFAULT_SOURCE_PHOTOS, archive=archive, workdir=workdir,
        keep=keep, batch_sizes=tuple(int(b) for b in batch_sizes.split(",") if b.strip()),
        bare_seconds=bare_seconds,
    )  # fmt: skip
    raise typer.Exit(bench_main(options, as_json))


if __name__ == "__main__":
    app(prog_name="python -m bench")
