"""The bench's pipeline limit runs the service's own per-photo code (no timing checks)."""

from __future__ import annotations

import pytest

from tests.factories import jpeg_bytes, make_zip


def test_the_limit_pipeline_stores_and_classifies_every_photo_as_the_service_does(
    tmp_path, classifier
):
    from bench.run import _pipeline
    from pawdex.core.imaging import sha256_bytes
    from pawdex.core.settings import Settings
    from pawdex.core.storage import LocalStorage

    photos = {
        f"shelter/{i}.jpg": jpeg_bytes(width=640, height=480, seed=900 + i) for i in range(11)
    }
    archive = make_zip(tmp_path / "photos.zip", photos)
    storage = LocalStorage(tmp_path / "storage")

    count = _pipeline(classifier, archive, Settings(data_dir=tmp_path), storage, threads=2)

    assert count == len(photos)  # two full forward chunks of 8 and one of 3 (Lite0 on CPU)
    for data in photos.values():
        sha = sha256_bytes(data)
        assert storage.path(storage.image_key(sha, "JPEG")).read_bytes() == data
        assert storage.path(storage.thumbnail_key(sha)).is_file()


def test_the_limit_pipeline_stops_at_a_photo_the_service_refuses(tmp_path, classifier):
    from bench.run import BenchError, _pipeline
    from pawdex.core.settings import Settings
    from pawdex.core.storage import LocalStorage

    entries = {"a.jpg": jpeg_bytes(seed=1), "b.jpg": b"not a photo at all"}
    archive = make_zip(tmp_path / "photos.zip", entries)
    with pytest.raises(BenchError, match=r"photos\.zip: b\.jpg: not an image"):
        _pipeline(
            classifier, archive, Settings(data_dir=tmp_path), LocalStorage(tmp_path), threads=2
        )
