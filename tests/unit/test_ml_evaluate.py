"""ml.evaluate and ml.artifacts: metrics checked by hand, plots, model card, model directories."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import TensorDataset

from pawdex.ml import backbones
from pawdex.ml.artifacts import ModelDirError, load_model_dir, save_model_dir, weights_sha256
from pawdex.ml.evaluate import (
    classification_metrics,
    confusion_matrix_png,
    learning_curves_png,
    predict_logits,
    write_model_card,
)
from pawdex.ml.models import build_model, data_config

PNG = b"\x89PNG\r\n\x1a\n"
CLASSES = ["a", "b", "c"]
# 7 samples; predictions a b b b c a a against targets a a b b c c c.
TARGETS = torch.tensor([0, 0, 1, 1, 2, 2, 2])
PREDICTED = torch.tensor([0, 1, 1, 1, 2, 0, 0])


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def hand_made_logits() -> torch.Tensor:
    return torch.nn.functional.one_hot(PREDICTED, 3).float() * 5 + torch.tensor([0.1, 0.2, 0.3])


def test_metrics_match_the_hand_computed_values() -> None:
    m = classification_metrics(hand_made_logits(), TARGETS, CLASSES)
    # a: TP 1, FP 2, FN 1 · b: TP 2, FP 1, FN 0 · c: TP 1, FP 0, FN 2
    assert m["top1"] == pytest.approx(4 / 7)
    assert m["top5"] == pytest.approx(1.0)  # top-min(5, 3): every class is in the top 3
    assert m["top5_k"] == 3
    assert m["macro_precision"] == pytest.approx((1 / 3 + 2 / 3 + 1) / 3)
    assert m["macro_recall"] == pytest.approx((1 / 2 + 1 + 1 / 3) / 3)
    assert m["macro_f1"] == pytest.approx((0.4 + 0.8 + 0.5) / 3)
    assert m["per_class"] == [
        {"class": "a", "precision": pytest.approx(1 / 3), "recall": 0.5, "f1": pytest.approx(0.4),
         "support": 2},
        {"class": "b", "precision": pytest.approx(2 / 3), "recall": 1.0, "f1": pytest.approx(0.8),
         "support": 2},
        {"class": "c", "precision": 1.0, "recall": pytest.approx(1 / 3), "f1": pytest.approx(0.5),
         "support": 3},
    ]  # fmt: skip
    assert m["top_confusions"] == [
        {"true": "c", "predicted": "a", "count": 2},
        {"true": "a", "predicted": "b", "count": 1},
    ]
    assert m["samples"] == 7
    json.dumps(m)  # plain Python values only


def test_top5_counts_the_true_class_among_the_five_best() -> None:
    classes = [f"breed{i}" for i in range(6)]
    logits = torch.tensor(
        [
            [0.0, 1, 2, 3, 4, 5],  # true 0 ranks 6th: missed by top-5
            [5.0, 1, 4, 3, 2, 0],  # true 1 ranks 5th: top-5 hit, top-1 miss
            [0.0, 1, 5, 3, 4, 2],  # true 2 ranks 1st
        ]
    )
    m = classification_metrics(logits, torch.tensor([0, 1, 2]), classes)
    assert m["top1"] == pytest.approx(1 / 3)
    assert m["top5"] == pytest.approx(2 / 3)
    assert m["top5_k"] == 5


def test_macro_scores_skip_classes_never_seen() -> None:
    logits = torch.cat([hand_made_logits(), torch.full((7, 1), -9.0)], dim=1)
    m = classification_metrics(logits, TARGETS, [*CLASSES, "d"])
    assert m["macro_f1"] == pytest.approx((0.4 + 0.8 + 0.5) / 3)
    assert m["per_class"][3]["support"] == 0


def test_predict_logits_in_dataset_order() -> None:
    model = torch.nn.Linear(4, 3)
    x = torch.randn(10, 4)
    logits, targets = predict_logits(model, TensorDataset(x, torch.arange(10) % 3), batch_size=3)
    assert logits.shape == (10, 3) and logits.dtype == torch.float32
    assert torch.equal(targets, torch.arange(10) % 3)
    with torch.no_grad():
        assert torch.allclose(logits, model(x))


def test_plots_and_model_card(tmp_path) -> None:
    classes = [f"n0{i:07d}-breed_{i}" for i in range(12)]
    g = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 12, (80,), generator=g)
    logits = torch.randn(80, 12, generator=g)
    logits[torch.arange(80), targets] += 2.0
    confusion = confusion_matrix_png(logits, targets, classes, tmp_path / "confusion.png")
    assert confusion.read_bytes().startswith(PNG)

    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text(
        "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n"
        "1,2.0,0.3,1.8,0.35,0.001,1.0\n2,1.5,0.5,1.6,0.45,0.0009,1.0\n3,1.2,0.6,1.65,0.44,0.0005,1.0\n"
    )
    curves = learning_curves_png(csv_path, tmp_path / "curves.png")
    assert curves.read_bytes().startswith(PNG)

    metrics = classification_metrics(logits, targets, classes)
    card = {
        "title": "lite0 head on 12 breeds",
        "arch": "efficientnet_lite0",
        "data": {"root": "/data/dogs", "images": 80, "classes": 12},
        "split": {"train": 0.8, "val": 0.1, "test": 0.1, "seed": 0},
        "preprocessing": data_config("efficientnet_lite0"),
        "config": {"epochs": 3, "lr": 0.001},
        "metrics": metrics,
        "weights_sha256": "ab" * 32,
    }
    json_path, md_path = write_model_card(tmp_path, card)
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(card))
    md = md_path.read_text()
    assert md.startswith("# lite0 head on 12 breeds")
    assert f"{metrics['top1']:.4f}" in md and f"{metrics['macro_f1']:.4f}" in md
    assert "| n00000003-breed_3 |" in md  # per-breed table
    top = metrics["top_confusions"][0]
    assert f"| {top['true']} | {top['predicted']} | {top['count']} |" in md
    assert "ab" * 32 in md
    assert "![Confusion matrix](confusion.png)" in md and "![Learning curves](curves.png)" in md


def test_lenet_model_directory_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    model = build_model("lenet5", 3).eval()
    out = save_model_dir(
        tmp_path / "lenet", model, arch="lenet5", classes=CLASSES,
        preprocessing={"preset": "eval"}, config={"epochs": 1}, metrics={"top1": 0.5},
    )  # fmt: skip
    loaded, classes, preprocessing, meta = load_model_dir(out)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert not loaded.training
    assert classes == CLASSES
    assert preprocessing["input_size"] == [3, 32, 32] and preprocessing["preset"] == "eval"
    assert meta["arch"] == "lenet5" and meta["num_classes"] == 3 and meta["format"] == 1
    assert meta["input_size"] == 32
    assert meta["weights_sha256"] == weights_sha256(out / "weights.pt") == weights_sha256(out)
    assert json.loads((out / "metrics.json").read_text()) == {"top1": 0.5}
    assert json.loads((out / "config.json").read_text()) == {"epochs": 1}


def test_transfer_model_directory_needs_no_backbone_weights_file(tmp_path, monkeypatch) -> None:
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", 3, hidden=16).eval()
    out = save_model_dir(
        tmp_path / "lite0", model, arch="efficientnet_lite0", classes=CLASSES,
        preprocessing=data_config("efficientnet_lite0"), config={},
    )  # fmt: skip

    def no_shipped_weights(self):
        raise AssertionError("the shipped weights file must not be read")

    monkeypatch.setattr(backbones.BackboneSpec, "shipped_weights", no_shipped_weights)
    loaded, _, preprocessing, meta = load_model_dir(out)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
        assert torch.equal(loaded.imagenet_logits(x), model.imagenet_logits(x))
    assert meta["hidden"] == 16 and meta["imagenet_classifier"] is True
    assert preprocessing["mean"] == [0.5, 0.5, 0.5]
    assert not (out / "metrics.json").exists()


def test_tampered_or_incomplete_model_directory_is_refused(tmp_path) -> None:
    model = build_model("lenet5", 3)
    out = save_model_dir(
        tmp_path / "m", model, arch="lenet5", classes=CLASSES, preprocessing={}, config={}
    )
    state = torch.load(out / "weights.pt")
    state["classifier.6.bias"] += 1
    torch.save(state, out / "weights.pt")
    with pytest.raises(ModelDirError, match="sha256"):
        load_model_dir(out)
    with pytest.raises(ModelDirError, match=r"model\.json"):
        load_model_dir(tmp_path / "empty")
    with pytest.raises(ValueError, match="classes"):
        save_model_dir(tmp_path / "x", model, arch="lenet5", classes=["a"], preprocessing={},
                       config={})  # fmt: skip
