"""``python -m bench.transport``: how an inference worker on another host should get the
model-ready thumbnails, measured (docs/transport-measurements.md).

(a) the thumbnails in the classify task message, (b) a short-lived Redis store (one value
per photo, the message carries ids), (c) the message carries ids, the worker fetches its
batch from the API (``POST /v1/images/thumbnails``).

- the real thumbnails: made from the shelter photos (../shared/photos) by pawdex's own
  ingest code at the default model's resize;
- the message per classify batch, as Celery writes it to Redis (the real app, sent to a
  private ``redis-server`` on a free port): 64 photos (CPU) and 256 (GPU);
- Redis memory for a backlog: messages (and values) really pushed, ``INFO memory`` read,
  scaled linearly from ``--sample`` photos to ``--backlog``;
- (c)'s fetch cost against a running API (``pawdex serve``, no workers), one client.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import redis

from bench.harness import admin_headers, base_env, die_with_parent, free_port, running_stack
from pawdex.core.imaging import DecodeBudget, make_thumbnail, open_image
from pawdex.core.queue import CLASSIFY_TASK, INFERENCE_QUEUE, make_celery
from pawdex.core.settings import Settings
from pawdex.model_names import DEFAULT_MODEL

PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "photos"
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
MiB = 1024 * 1024


def model_resize(model: str) -> int:
    """A shipped model's resize (the thumbnails' shorter side), from its data config:
    ``lite1-imagenet-dogs`` is ``efficientnet_lite1`` (``model_names.imagenet_dogs_name``)."""
    from pawdex.ml.models import data_config
    from pawdex.ml.presets import EvalPreset

    arch = "efficientnet_" + model.removesuffix("-imagenet-dogs")
    return EvalPreset.from_data_config(data_config(arch)).resize_size


def real_thumbnails(folder: Path, side: int) -> list[bytes]:
    settings = Settings()
    thumbs = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in SUFFIXES:
            continue
        data = path.read_bytes()
        img, _ = open_image(
            data, settings.max_image_pixels, min_side=side, budget=DecodeBudget.of(settings)
        )
        thumbs.append(make_thumbnail(img, side))
    return thumbs


def spread(values: list[int]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(values),
        "mean": statistics.fmean(values),
        "median": statistics.median(values),
        "p95": ordered[int(0.95 * (len(ordered) - 1))],
        "max": ordered[-1],
    }


class PrivateRedis:
    """``redis-server`` of our own on a free port, no persistence, gone at the end."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed")
        self.folder = Path(tempfile.mkdtemp(prefix="pawdex-transport-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, preexec_fn=die_with_parent,
        )  # fmt: skip
        self.client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)

    def used(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


def message_args(thumbs: list[bytes], first_id: int, batch: int, inline: bool) -> list:
    ids = list(range(first_id, first_id + batch))
    args: list = [uuid.uuid4().hex, ids]
    if inline:  # (a): JSON carries bytes as base64 text
        args.append([base64.b64encode(thumbs[i % len(thumbs)]).decode() for i in ids])
    return args


def broker_figures(thumbs: list[bytes], sample: int, backlog: int) -> dict:
    """Message sizes and Redis memory per option, measured on a private Redis."""
    server = PrivateRedis()
    try:
        settings = Settings(broker_url=server.url, data_dir=Path(server.folder))
        app = make_celery(settings)
        out: dict = {"message_bytes": {}, "redis_bytes_per_photo": {}, "redis_backlog_mib": {}}
        for batch in (64, 256):
            for option, inline in (("a_inline", True), ("c_ids", False)):
                server.client.flushall()
                app.send_task(
                    CLASSIFY_TASK, args=message_args(thumbs, 1, batch, inline),
                    queue=INFERENCE_QUEUE,
                )  # fmt: skip
                raw = server.client.lindex(INFERENCE_QUEUE, 0)
                out["message_bytes"][f"{option}_{batch}"] = len(raw)
        batch = 64
        for option in ("a_inline", "b_redis_store", "c_ids"):
            server.client.flushall()
            time.sleep(0.2)
            before = server.used()
            pipe = server.client.pipeline(transaction=False)
            for first in range(1, sample + 1, batch):
                n = min(batch, sample + 1 - first)
                app.send_task(
                    CLASSIFY_TASK, args=message_args(thumbs, first, n, option == "a_inline"),
                    queue=INFERENCE_QUEUE,
                )  # fmt: skip
                if option == "b_redis_store":
                    for image_id in range(first, first + n):
                        pipe.set(f"pawdex:thumb:{image_id}", thumbs[image_id % len(thumbs)],
                                 ex=3600)  # fmt: skip
                    pipe.execute()
            assert server.client.llen(INFERENCE_QUEUE) == -(-sample // batch)
            per_photo = (server.used() - before) / sample
            out["redis_bytes_per_photo"][option] = per_photo
            out["redis_backlog_mib"][option] = per_photo * backlog / MiB
        return out
    finally:
        server.close()


def seed_api(data_dir: Path, thumbs: list[bytes], rows: int) -> None:
    """``rows`` photos whose thumbnails are the real ones (cycled), straight into the
    database and storage of a migrated embedded data dir."""
    from pawdex.core.db import session_scope
    from pawdex.core.models import Image
    from pawdex.core.storage import open_storage

    settings = Settings(data_dir=data_dir)
    storage = open_storage(settings)
    with session_scope(settings) as session:
        for i in range(rows):
            sha = f"{i:064x}"
            key = storage.thumbnail_key(sha)
            storage.put(key, thumbs[i % len(thumbs)])
            session.add(
                Image(sha256=sha, filename=f"p{i}.jpg", path=f"p{i}.jpg", format="JPEG",
                      size_bytes=len(thumbs[i % len(thumbs)]), width=400, height=300,
                      thumbnail_path=key)
            )  # fmt: skip


def fetch_figures(thumbs: list[bytes], seconds: float) -> dict:
    """(c) against a running API: one client, back to back, for ``seconds`` per batch size;
    and one GET per photo (what the rate limit would cap)."""
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="pawdex-transport-api-") as tmp:
        data = Path(tmp) / "data"
        env = base_env(data)
        with running_stack(env, Path(tmp) / "logs", embedded=False) as stack:
            rows = 1024
            seed_api(data, thumbs, rows)
            headers = admin_headers(env)
            with httpx.Client(base_url=stack.url, headers=headers, timeout=30) as client:
                for batch in (64, 256):
                    done = requests = received = 0
                    latencies = []
                    began = time.perf_counter()
                    while time.perf_counter() - began < seconds:
                        first = (requests * batch) % (rows - batch) + 1
                        t0 = time.perf_counter()
                        response = client.post(
                            "/v1/images/thumbnails",
                            json={"image_ids": list(range(first, first + batch))},
                        )
                        latencies.append(time.perf_counter() - t0)
                        response.raise_for_status()
                        requests += 1
                        done += batch
                        received += len(response.content)
                    elapsed = time.perf_counter() - began
                    out[f"batch_{batch}"] = {
                        "requests": requests,
                        "photos_per_s": done / elapsed,
                        "ms_per_request_median": 1000 * statistics.median(latencies),
                        "response_bytes_per_photo": received / done,
                        "mib_per_s": received / elapsed / MiB,
                    }
                # One GET per photo: within the key's burst (300), so not yet limited.
                n, latencies = 250, []
                began = time.perf_counter()
                for image_id in range(1, n + 1):
                    t0 = time.perf_counter()
                    client.get(f"/v1/images/{image_id}/thumbnail").raise_for_status()
                    latencies.append(time.perf_counter() - t0)
                elapsed = time.perf_counter() - began
                out["get_per_photo"] = {
                    "photos_per_s_unthrottled": n / elapsed,
                    "ms_per_request_median": 1000 * statistics.median(latencies),
                    "photos_per_s_at_rate_limit": Settings().rate_limit_per_minute / 60,
                }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=PHOTOS)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--sample", type=int, default=10_000, help="photos really pushed")
    parser.add_argument("--backlog", type=int, default=100_000, help="queued photos to size")
    parser.add_argument("--seconds", type=float, default=5.0, help="per fetch measurement")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if not args.photos.is_dir():
        raise SystemExit(f"no photos at {args.photos} (see its README)")

    side = max(Settings().thumbnail_size, model_resize(args.model))
    thumbs = real_thumbnails(args.photos, side)
    figures = {
        "model": args.model,
        "thumbnail_side": side,
        "thumbnail_bytes": spread([len(t) for t in thumbs]),
        "sample": args.sample,
        "backlog": args.backlog,
        **broker_figures(thumbs, args.sample, args.backlog),
        "fetch": fetch_figures(thumbs, args.seconds),
    }
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
