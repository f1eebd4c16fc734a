"""The training pipeline through its CLI, on a small tree in Stanford Dogs' real layout built
from the real photos: train a head, evaluate it, register and activate it, re-index the
archive through a real worker; plus tune, experiment and the augmentation grid."""

from __future__ import annotations

import json
import re
import time
import zipfile

import httpx
import pytest

from tests.stack import base_env, pawdex, running_stack, wait_job
from tests.stanford_tree import build_stanford_tree

pytestmark = pytest.mark.realphotos

BREEDS = 4


@pytest.fixture(scope="module")
def tree(labelled_photos, tmp_path_factory):
    root = tmp_path_factory.mktemp("stanford") / "StanfordDogs"
    return build_stanford_tree(root, labelled_photos, breeds=BREEDS, per_breed=6, lists="mat")


def _top1(output: str) -> float:
    match = re.search(r"top-1 (\d\.\d+)", output)
    assert match, output
    return float(match.group(1))


def test_train_evaluate_activate_and_reindex_through_the_worker(tree, tmp_path):
    env = base_env(tmp_path / "var", PAWDEX_BATCH_SIZE="4")
    trained = pawdex(
        "train", str(tree), "--breeds", str(BREEDS), "--epochs", "8", "--name", "dogs4",
        "--batch-size", "16", env=env, timeout=900,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stdout + trained.stderr
    model_dir = tmp_path / "var" / "models" / "dogs4"
    assert _top1(trained.stdout) >= 0.5  # held-out test list; chance is 0.25
    assert "features:" in trained.stdout
    for name in ("weights.pt", "classes.json", "preprocessing.json", "metrics.json",
                 "card.md", "card.json", "confusion.png", "curves.png"):  # fmt: skip
        assert (model_dir / name).is_file(), name
    card = json.loads((model_dir / "card.json").read_text())
    assert card["data"]["layout"] == "stanford-dogs" and card["evaluated_on"] == "test"
    assert len(card["weights_sha256"]) == 64
    assert (model_dir / "checkpoints" / "head" / "metrics.csv").is_file()

    evaluated = pawdex("evaluate", "dogs4", str(tree), env=env, timeout=600)
    assert evaluated.returncode == 0, evaluated.stderr
    assert _top1(evaluated.stdout) >= 0.5
    listed = pawdex("models", "list", env=env, timeout=120).stdout
    assert "dogs4" in listed and "lite0-imagenet-dogs" in listed

    archive = tmp_path / "kennel.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for photo in sorted((tree / "Images").rglob("*.jpg"))[::3]:
            zf.write(photo, f"kennel/{photo.name}")
    with (
        running_stack(env, tmp_path / "logs", embedded=True) as stack,
        httpx.Client(base_url=stack.url, headers=stack.headers, timeout=60) as client,
    ):
        with archive.open("rb") as fh:
            job_id = client.post("/v1/archives", files={"file": ("k.zip", fh)}).json()["job_id"]
        first = wait_job(client, job_id, timeout=600)
        assert first["status"] == "succeeded"

        activated = pawdex("models", "activate", "dogs4", env=env, timeout=300)
        assert activated.returncode == 0, activated.stderr
        version = activated.stdout.split("active: ")[1].strip()
        assert version.startswith("dogs4@")
        reindex = client.post("/v1/admin/reindex", json={}).json()
        assert reindex["total"] == first["done"]
        assert wait_job(client, reindex["id"], timeout=600)["status"] == "succeeded"
        animals = client.get("/v1/photos", params={"limit": 500}).json()["items"]
        classes = json.loads((model_dir / "classes.json").read_text())
        assert len(animals) == first["done"]
        assert {a["model_version"] for a in animals} == {version}
        assert {a["breed"] for a in animals} <= set(classes)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            workers = client.get("/v1/admin/overview").json()["workers"]
            served = {w["model_version"] for w in workers if "inference" in w["queues"]}
            if served == {version}:
                break
            time.sleep(1)
        assert served == {version}


def test_tune_searches_heads_and_saves_the_best_config(tree, tmp_path):
    env = base_env(tmp_path / "var")
    out = tmp_path / "tune"
    tuned = pawdex(
        "tune", str(tree), "--trials", "4", "--epochs", "3", "--out", str(out),
        env=env, timeout=600,
    )  # fmt: skip
    assert tuned.returncode == 0, tuned.stdout + tuned.stderr
    best = json.loads((out / "best.json").read_text())
    assert {"lr", "weight_decay", "dropout", "hidden", "label_smoothing"} <= set(best["params"])
    rows = (out / "trials.csv").read_text().splitlines()
    assert rows[0].startswith("trial,state,val_loss,val_acc") and len(rows) == 5


def test_experiment_writes_the_study_table(tree, tmp_path):
    from pawdex.ml.experiment import run
    from pawdex.ml.train import TrainConfig

    rows, table = run(
        tree, tmp_path / "exp",
        rows=((4, "lenet5"), (4, "smallcnn"), (4, "efficientnet_lite0"), (4, "vgg16"),
              (20, "efficientnet_lite0")),
        config=TrainConfig(epochs=2, batch_size=8, progress=False),
    )  # fmt: skip
    text = table.read_text()
    assert text.count("\n| 4 |") == 4 and "| 20 |" in text
    by_arch = {(r.breeds, r.arch): r for r in rows}
    assert by_arch[(4, "vgg16")].note.startswith("skipped: no local ImageNet weights")
    assert by_arch[(20, "efficientnet_lite0")].note == "skipped: the data has 4 breeds"
    for arch in ("lenet5", "smallcnn", "efficientnet_lite0"):
        row = by_arch[(4, arch)]
        assert 0 <= row.top1 <= 1 and row.seconds_per_epoch > 0, row
    assert by_arch[(4, "efficientnet_lite0")].feature_s_per_1000 > 0


def test_augment_grid_writes_a_png(tree, tmp_path):
    photos = sorted((tree / "Images").rglob("*.jpg"))[:2]
    out = tmp_path / "grid.png"
    result = pawdex(
        "augment-grid", *map(str, photos), "--preset", "trivialaugment+flip", "--out", str(out),
        env=base_env(tmp_path / "var"), timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    bad = pawdex("augment-grid", str(photos[0]), "--preset", "sepia", env=base_env(tmp_path / "v"))
    assert bad.returncode != 0 and "known options" in bad.stderr


def test_a_head_starts_from_the_imagenet_rows_of_its_breeds():
    from pawdex.ml.classes import breed_wnid, imagenet_index
    from pawdex.ml.models import build_model
    from pawdex.ml.pipeline import _imagenet_init

    model = build_model("efficientnet_lite0", 3)
    weight, _bias = _imagenet_init(model, ["beagle", "_not_a_dog", "Chihuahua"])
    rows = model.imagenet_classifier.weight
    assert weight.shape == (3, rows.shape[1])
    assert (weight[0] == rows[imagenet_index(breed_wnid("beagle"))]).all()
    assert (weight[2] == rows[imagenet_index(breed_wnid("Chihuahua"))]).all()
    assert not any((weight[1] == row).all() for row in rows)  # a fresh row for a non-breed
    assert _imagenet_init(build_model("efficientnet_lite0", 1), ["tabby"]) is None
