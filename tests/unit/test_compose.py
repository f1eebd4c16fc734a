"""docker-compose.yml describes the production layout (``make compose-config`` validates it
with Docker where a Compose plugin is installed)."""

from pathlib import Path

import yaml

COMPOSE = yaml.safe_load((Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text())


def test_services_of_the_production_layout():
    assert {"postgres", "redis", "migrate", "api", "worker-gpu", "worker-cpu", "flower"} <= set(
        COMPOSE["services"]
    )


def test_long_running_services_have_healthchecks_and_wait_for_healthy_dependencies():
    for name, service in COMPOSE["services"].items():
        if name != "migrate":
            assert service["healthcheck"]["test"], name
        for dep, spec in service.get("depends_on", {}).items():
            wanted = "service_completed_successfully" if dep == "migrate" else "service_healthy"
            assert spec["condition"] == wanted, (name, dep)


def test_gpu_worker_reserves_a_gpu_and_serves_inference():
    gpu = COMPOSE["services"]["worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert "inference" in gpu["command"]
    assert gpu["environment"]["PAWDEX_DEVICE"] == "cuda"


def test_stored_photos_are_objects_in_minio_whose_bucket_migrate_creates():
    services = COMPOSE["services"]
    minio = services["minio"]
    assert minio["image"].startswith("minio/minio")
    for name in ("migrate", "api", "worker-gpu", "worker-cpu"):
        env = services[name]["environment"]
        assert env["PAWDEX_STORAGE_URL"].startswith("s3://"), name
        assert env["PAWDEX_S3_ENDPOINT_URL"] == "http://minio:9000", name
        assert env["AWS_ACCESS_KEY_ID"] == minio["environment"]["MINIO_ROOT_USER"], name
        assert env["AWS_SECRET_ACCESS_KEY"] == minio["environment"]["MINIO_ROOT_PASSWORD"], name
    assert services["migrate"]["command"] == ["pawdex", "migrate"]  # it creates the bucket
    assert services["migrate"]["depends_on"]["minio"]["condition"] == "service_healthy"
