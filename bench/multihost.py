"""``python -m bench.multihost``: photos per second end to end with 1 and 2 inference hosts.

The topology of the multi-host test (:mod:`tests.multihost`, Linux network namespaces: root
needed): a database host (private PostgreSQL and Redis), an API host (``pawdex serve`` and
one ingest worker) and N inference hosts, each with an empty data dir, fetching thumbnails
from the API over HTTP. For each N, a fresh cluster classifies the same real photos (one zip
upload), timed from the start of the upload to the job's ``finished_at``.

Per N it prints photos/s (and the ratio to N=1), each inference host's own forward rate (from
its presence row: photos / seconds in the model), and the bytes an inference host received
per photo: the thumbnails' payload (their stored sizes, plus the tar headers the batch
endpoint adds) and everything its link received (thumbnails, PostgreSQL, Redis, HTTP).

On one machine every "host" shares the same cores: past the core count the figures show the
CPU saturating, not what separate machines would do (docs/scaling.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import zipfile
from datetime import datetime
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from bench.archive import source_photos
from pawdex.cli.client import wait_job
from pawdex.core.models import Image, JobImage
from pawdex.model_names import DEFAULT_MODEL
from tests.multihost import Cluster, running_cluster

PHOTOS_DIR = Path(__file__).resolve().parents[2] / "shared" / "photos"
TAR_HEADER = 512  # each member of the thumbnails' tar: a header block, then 512-byte padding


def _archive(photos: list[Path], path: Path) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for photo in photos:
            zf.write(photo, f"shelter/{photo.name}")
    return path


def _thumbnail_payload(cluster: Cluster, job_id: str) -> int:
    """What the tar of the job's thumbnails carries: each file with its header and padding."""
    storage = cluster.data_dirs["api"] / "storage"
    with cluster.db.connect() as conn:
        keys = conn.scalars(
            select(Image.thumbnail_path)
            .join(JobImage, JobImage.image_id == Image.id)
            .where(JobImage.job_id == job_id, JobImage.duplicate.is_(False))
        ).all()
    total = 0
    for key in keys:
        size = (storage / key).stat().st_size
        total += TAR_HEADER + -(-size // 512) * 512
    return total


def measure(archive: Path, hosts: int, workdir: Path, settings: dict[str, str]) -> dict:
    with running_cluster(workdir, inference_hosts=hosts, **settings) as cluster:
        received = {h.role: h.received_bytes() for h in cluster.inference_hosts}
        with httpx.Client(base_url=cluster.api_url, headers=cluster.headers, timeout=120) as c:
            began = datetime.now().astimezone()
            with archive.open("rb") as fh:
                response = c.post("/v1/archives", files={"file": (archive.name, fh)})
            response.raise_for_status()
            job = wait_job(c, response.json()["job_id"], timeout=3600, interval=0.25)
        time.sleep(2)  # the presence rows' last reports
        presence = cluster.presence()
        forward = {}
        for host in cluster.inference_hosts:
            row = presence[cluster.node(host)]
            seconds = row["batch_seconds_total"] or 0
            forward[host.role] = (row["photos"], row["photos"] / seconds if seconds else 0.0)
        rx = sum(h.received_bytes() - received[h.role] for h in cluster.inference_hosts)
        payload = _thumbnail_payload(cluster, job["id"])
    finished = datetime.fromisoformat(job["finished_at"])
    elapsed = (finished - began).total_seconds()
    done = job["done"]
    return {
        "hosts": hosts,
        "photos": done,
        "status": job["status"],
        "seconds": elapsed,
        "photos_s": done / elapsed,
        "forward": forward,
        "thumb_bytes_per_photo": payload / done,
        "rx_bytes_per_photo": rx / done,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.multihost", description=__doc__)
    parser.add_argument("--photos-dir", type=Path, default=PHOTOS_DIR)
    parser.add_argument("--hosts", default="1,2", help="inference host counts, e.g. 1,2")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    args = parser.parse_args(argv)

    from tests.netns import unavailable_reason

    if reason := unavailable_reason():
        sys.exit(f"bench.multihost needs network namespaces: {reason}")
    photos = source_photos(args.photos_dir)
    settings = {
        "PAWDEX_MODEL": args.model,
        "PAWDEX_BATCH_SIZE": str(args.batch_size),
        "PAWDEX_PRESENCE_INTERVAL": "0.5",  # the per-host figures are read from these rows
    }
    err = Console(stderr=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="pawdex-multihost-") as tmp:
        archive = _archive(photos, Path(tmp) / "photos.zip")
        for hosts in [int(n) for n in args.hosts.split(",")]:
            err.print(f"[dim]{hosts} inference host(s): {len(photos)} photos…[/]")
            results.append(measure(archive, hosts, Path(tmp) / f"n{hosts}", settings))

    base = results[0]["photos_s"]
    table = Table(
        title=f"{len(photos)} real photos, {args.model}, batch {args.batch_size}, "
        f"{os.cpu_count()} cores shared by every host"
    )
    columns = ("inference hosts", "photos", "seconds", "photos/s", "vs first",
               "forward photos/s per host", "thumbnail B/photo", "received B/photo")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right")
    for r in results:
        forward = ", ".join(f"{n} @ {rate:.0f}/s" for n, rate in r["forward"].values())
        table.add_row(
            str(r["hosts"]), f"{r['photos']} ({r['status']})", f"{r['seconds']:.1f}",
            f"{r['photos_s']:.1f}", f"{r['photos_s'] / base:.2f}x", forward,
            f"{r['thumb_bytes_per_photo']:,.0f}", f"{r['rx_bytes_per_photo']:,.0f}",
        )  # fmt: skip
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
