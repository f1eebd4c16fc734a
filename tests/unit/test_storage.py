"""The storage interface: a local folder and an S3 bucket answer the same calls the same way
(the bucket here is moto's in-process S3; tests/integration/test_s3_storage.py runs the whole
service against a real S3-protocol server)."""

from __future__ import annotations

import stat

import pytest
from pydantic import ValidationError

from pawdex.core.settings import Settings
from pawdex.core.storage import LocalStorage, S3Storage, Storage, open_storage, prepare_storage
from tests.conftest import import_or_skip

BUCKET = "pawdex-unit"
KEY = Storage.image_key("ab" * 32, "JPEG")


@pytest.fixture
def in_memory_s3(s3_env):
    with import_or_skip("moto", "moto").mock_aws():
        yield


def _s3_settings(tmp_path, **more) -> Settings:
    url = more.pop("storage_url", f"s3://{BUCKET}/shelter")
    return Settings(data_dir=tmp_path / "var", storage_url=url, s3_region="eu-west-1", **more)


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path) -> Storage:
    if request.param == "local":
        return open_storage(Settings(data_dir=tmp_path / "var"))
    request.getfixturevalue("in_memory_s3")
    settings = _s3_settings(tmp_path)
    prepare_storage(settings)
    return open_storage(settings)


def test_a_stored_file_reads_back_streams_and_goes(storage):
    assert not storage.exists(KEY)
    storage.put(KEY, b"the photo")
    assert storage.exists(KEY)
    assert storage.read(KEY) == b"the photo"
    with storage.open(KEY) as stream:
        assert stream.size == len(b"the photo")
        assert stream.read(4) + stream.read() == b"the photo"
    storage.delete(KEY)
    assert not storage.exists(KEY)
    storage.delete(KEY)  # missing: fine


def test_a_key_is_written_once_and_kept(storage):
    """Keys name the content: a second put of the same key keeps what is there."""
    storage.put(KEY, b"first")
    storage.put(KEY, b"second")
    assert storage.read(KEY) == b"first"


def test_a_missing_file_is_a_storage_fault(storage):
    """FileNotFoundError, an OSError: classify makes it a per-file error, as a lost file."""
    with pytest.raises(FileNotFoundError):
        storage.read(KEY)
    with pytest.raises(FileNotFoundError):
        storage.open(KEY)


@pytest.mark.parametrize("key", ["../escape.jpg", "images/../../escape.jpg", "/etc/passwd"])
def test_no_key_reaches_outside_the_storage(storage, key):
    with pytest.raises(ValueError, match="escapes"):
        storage.put(key, b"x")


def test_local_storage_is_the_data_dirs_folder_with_files_on_disk(tmp_path):
    storage = open_storage(Settings(data_dir=tmp_path / "var"))
    assert isinstance(storage, LocalStorage)
    assert storage.root == (tmp_path / "var" / "storage").resolve()
    written = storage.put(KEY, b"bytes")
    assert written == storage.local_path(KEY) == storage.root / KEY
    assert written.read_bytes() == b"bytes"
    assert stat.S_IMODE(written.stat().st_mode) == 0o644
    assert prepare_storage(Settings(data_dir=tmp_path / "var")) is None


def test_object_storage_keeps_objects_under_the_prefix_and_has_no_local_path(
    tmp_path, in_memory_s3
):
    settings = _s3_settings(tmp_path)
    assert prepare_storage(settings) == f"bucket {BUCKET} created"
    assert prepare_storage(settings) == f"bucket {BUCKET} exists"
    storage = open_storage(settings)
    assert isinstance(storage, S3Storage)
    storage.put(KEY, b"jpeg bytes")
    thumb = Storage.thumbnail_key("ab" * 32)
    storage.put(thumb, b"thumb")
    listed = storage.client.list_objects_v2(Bucket=BUCKET)["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted([f"shelter/{KEY}", f"shelter/{thumb}"])
    head = storage.client.head_object(Bucket=BUCKET, Key=f"shelter/{KEY}")
    assert head["ContentType"] == "image/jpeg"
    assert storage.local_path(KEY) is None
    settings.ensure_dirs()
    assert not settings.storage_dir.exists()  # nothing of the storage on this disk


def test_a_bucket_url_without_prefix_stores_at_the_top(tmp_path, in_memory_s3):
    settings = _s3_settings(tmp_path, storage_url=f"s3://{BUCKET}")
    prepare_storage(settings)
    storage = open_storage(settings)
    storage.put(KEY, b"x")
    assert storage.client.head_object(Bucket=BUCKET, Key=KEY)["ContentLength"] == 1


def test_a_missing_bucket_fails_loudly_not_as_a_missing_file(tmp_path, in_memory_s3):
    """Nothing but ``pawdex migrate`` creates the bucket; without it every call fails as a
    fault of the deployment, never as one file error per photo."""
    from botocore.exceptions import ClientError

    storage = open_storage(_s3_settings(tmp_path))
    with pytest.raises(ClientError, match="NoSuchBucket"):
        storage.put(KEY, b"x")
    with pytest.raises(ClientError, match="NoSuchBucket"):
        storage.read(KEY)


def test_the_s3_client_has_bounded_timeouts_and_retries(tmp_path, s3_env):
    storage = open_storage(_s3_settings(tmp_path, s3_endpoint_url="http://127.0.0.1:9"))
    config = storage.client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (5, 30)
    assert config.retries == {"total_max_attempts": 5, "mode": "standard"}
    assert storage.client.meta.endpoint_url == "http://127.0.0.1:9"
    assert storage.client.meta.region_name == "eu-west-1"


@pytest.mark.parametrize("url", ["http://minio:9000/pawdex", "s3://", "s3://Bad_Bucket/x", "/data"])
def test_a_storage_url_is_an_s3_bucket_or_nothing(tmp_path, url):
    with pytest.raises(ValidationError, match="storage_url"):
        Settings(data_dir=tmp_path, storage_url=url)
