"""Routing on a real Redis broker: each task reaches its own queue, and only that one."""

import pytest
import redis

from pawdex.core.queue import enqueue_classify, enqueue_ingest, make_celery
from pawdex.core.settings import Settings

pytestmark = pytest.mark.integration


def test_each_task_lands_in_its_own_queue_once(redis_url, tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path, broker_url=redis_url)
    app = make_celery(settings)
    monkeypatch.setattr("pawdex.core.queue.get_celery", lambda _settings=None: app)
    enqueue_ingest("job-a", settings)
    enqueue_classify("job-a", [1, 2, 3], settings)
    enqueue_classify("job-a", [4], settings)
    client = redis.Redis.from_url(redis_url)
    assert client.llen("ingest") == 1
    assert client.llen("inference") == 2


def test_embedded_filesystem_broker_routes_the_same_way(tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path)
    app = make_celery(settings)
    monkeypatch.setattr("pawdex.core.queue.get_celery", lambda _settings=None: app)
    enqueue_ingest("job-b", settings)
    enqueue_classify("job-b", [1], settings)
    queues = sorted(p.name.rsplit(".", 2)[1] for p in (settings.broker_dir / "out").iterdir())
    assert queues == ["inference", "ingest"]
    assert not any(tmp_path.parent.glob("control")), "no broker files outside the data dir"
