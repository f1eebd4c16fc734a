"""The Kubernetes example (deploy/kubernetes/, docs/scaling.md) is valid: each Kubernetes
resource against the API schemas of a pinned Kubernetes release (``kubernetes-validate``,
strict: an unknown field is an error), the KEDA ScaledObject against KEDA's CRD schema
(vendored in tests/schemas/, made strict the same way), and it names what pawdex really has:
the inference queue's Redis list, settings that exist."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from pawdex.core.queue import INFERENCE_QUEUE
from pawdex.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
KEDA_SCHEMA = ROOT / "tests" / "schemas" / "keda_scaledobject.yaml"
KUBERNETES_VERSION = "1.34.0"  # the newest kubernetes-validate 1.34.1 carries
# Not pawdex's: the S3 credentials boto3 reads, and the pod's own name for the node name.
FOREIGN_ENV = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "POD_NAME"}


def _documents() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return found


DOCUMENTS = _documents()
KEDA = [(name, doc) for name, doc in DOCUMENTS if doc["apiVersion"].startswith("keda.sh/")]
KUBERNETES = [(name, doc) for name, doc in DOCUMENTS if (name, doc) not in KEDA]


def _strict(schema: dict) -> dict:
    """A CRD's schema as the API server applies it with strict field validation: an object
    with listed properties and no ``additionalProperties`` admits nothing else."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def test_the_example_has_every_role():
    kinds = {(doc["kind"], doc["metadata"]["name"]) for _, doc in DOCUMENTS}
    assert {
        ("Deployment", "pawdex-api"), ("Service", "pawdex-api"),
        ("Deployment", "pawdex-ingest"), ("Deployment", "pawdex-inference"),
        ("ConfigMap", "pawdex-settings"), ("Secret", "pawdex-secrets"),
        ("Job", "pawdex-migrate"), ("ScaledObject", "pawdex-inference"),
    } <= kinds  # fmt: skip


@pytest.mark.parametrize(("name", "doc"), KUBERNETES, ids=[name for name, _ in KUBERNETES])
def test_kubernetes_resources_match_the_api_schema(name, doc):
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(("name", "doc"), KEDA, ids=[name for name, _ in KEDA])
def test_the_scaled_object_matches_kedas_schema(name, doc):
    schema = _strict(yaml.safe_load(KEDA_SCHEMA.read_text()))
    jsonschema.validate(doc, schema)
    with pytest.raises(jsonschema.ValidationError):  # the strict schema does bite
        jsonschema.validate({**doc, "spec": {**doc["spec"], "minReplicas": 1}}, schema)


def test_the_autoscaler_watches_the_inference_queue_and_scales_the_inference_workers():
    (_, scaled), *_ = KEDA
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    # kombu's Redis transport keeps a queue (no priorities) as a list named after it.
    assert trigger["metadata"]["listName"] == INFERENCE_QUEUE
    target = scaled["spec"]["scaleTargetRef"]["name"]
    (workers,) = [doc for _, doc in KUBERNETES if doc["metadata"]["name"] == target
                  and doc["kind"] == "Deployment"]  # fmt: skip
    (container,) = workers["spec"]["template"]["spec"]["containers"]
    queues = container["command"][container["command"].index("--queues") + 1]
    assert queues.split(",") == [INFERENCE_QUEUE]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"


def _env_names() -> set[str]:
    names = set()
    for _, doc in KUBERNETES:
        if doc["kind"] in ("ConfigMap", "Secret"):
            names |= set(doc.get("data", {})) | set(doc.get("stringData", {}))
        for container in _containers(doc):
            names |= {var["name"] for var in container.get("env", [])}
    return names


def _containers(doc: dict) -> list[dict]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return spec.get("containers", [])


def test_every_setting_named_exists():
    known = {f"PAWDEX_{name.upper()}" for name in Settings.model_fields}
    named = _env_names() - FOREIGN_ENV
    assert named and named <= known, named - known
    for _, doc in KUBERNETES:  # every command is a pawdex command line
        for container in _containers(doc):
            assert container["command"][0] == "pawdex"
            assert not re.search(r"\$\((?!POD_NAME\))", " ".join(container["command"]))
