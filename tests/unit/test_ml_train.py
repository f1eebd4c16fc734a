"""ml.train and ml.features on tiny synthetic problems: learning, checkpoints, exact resume,
early stopping, heads on cached features, the feature cache."""

from __future__ import annotations

import csv

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from pawdex.ml.features import cache_key, extract_features
from pawdex.ml.models import build_model
from pawdex.ml.train import TrainConfig, fit, fit_head, seed_everything

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def colour_images(n: int, seed: int) -> TensorDataset:
    """Two separable classes of 3x32x32 noisy images: reddish (0) and bluish (1)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = torch.randn(n, 3, 32, 32, generator=g) * 0.5
    images[:, 0] += torch.where(labels == 0, 1.0, -1.0)[:, None, None]
    images[:, 2] += torch.where(labels == 1, 1.0, -1.0)[:, None, None]
    return TensorDataset(images, labels)


def separable_features(n: int, classes: int, dim: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=torch.Generator().manual_seed(99)) * 3
    labels = torch.arange(n) % classes
    return centres[labels] + torch.randn(n, dim, generator=g), labels


def config(**overrides) -> TrainConfig:
    values = {"epochs": 4, "lr": 3e-3, "batch_size": 16, "device": "cpu", "progress": False}
    return TrainConfig(**(values | overrides))


def same_history(a: list[dict], b: list[dict]) -> bool:
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in a]
    return strip == [{k: v for k, v in row.items() if k != "seconds"} for row in b]


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def lenet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("lenet5", 2, dropout=0.3)


class Crashing(Dataset):
    """Wraps a dataset and raises once ``after`` items have been read (a killed run)."""

    def __init__(self, inner: Dataset, after: int) -> None:
        self.inner, self.after, self.reads = inner, after, 0

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i):
        self.reads += 1
        if self.reads > self.after:
            raise KeyboardInterrupt("simulated crash")
        return self.inner[i]


@pytest.fixture(scope="module")
def data() -> tuple[TensorDataset, TensorDataset]:
    return colour_images(64, seed=1), colour_images(32, seed=2)


def test_fit_learns_and_writes_checkpoints(tmp_path, data) -> None:
    train, val = data
    model = lenet()
    result = fit(model, train, val, config(epochs=5), tmp_path)
    assert result.best_val_acc > 0.8
    assert result.epochs_run == 5 and len(result.history) == 5
    assert not result.stopped_early
    assert result.seconds_per_epoch > 0
    for name in ("best.pt", "last.pt", "metrics.csv"):
        assert (tmp_path / name).is_file()
    assert not list(tmp_path.glob("*.part"))
    with (tmp_path / "metrics.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == [
        "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"
    ]  # fmt: skip
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5]
    assert float(rows[0]["lr"]) == pytest.approx(3e-3)  # cosine: full lr first, lower later
    assert float(rows[-1]["lr"]) < float(rows[0]["lr"])
    best = min(result.history, key=lambda r: r["val_loss"])
    assert result.best_epoch == best["epoch"]
    assert result.best_val_loss == pytest.approx(best["val_loss"])
    # the model ends with the best weights, not the last ones
    assert same_weights(model.state_dict(), torch.load(tmp_path / "best.pt"))


def test_resume_extends_a_finished_run_exactly(tmp_path, data) -> None:
    train, val = data
    cfg = {"schedule": "step", "step_size": 1, "gamma": 0.7}
    whole = lenet()
    whole_result = fit(whole, train, val, config(epochs=4, **cfg), tmp_path / "whole")

    fit(lenet(), train, val, config(epochs=2, **cfg), tmp_path / "split")
    resumed = lenet(seed=123)  # its own initial weights are replaced by last.pt's
    resumed_result = fit(
        resumed, train, val, config(epochs=4, **cfg), tmp_path / "split", resume=True
    )

    assert resumed_result.epochs_run == 4
    assert same_history(resumed_result.history, whole_result.history)
    assert same_weights(resumed.state_dict(), whole.state_dict())
    last_whole = torch.load(tmp_path / "whole" / "last.pt", weights_only=False)["model"]
    last_split = torch.load(tmp_path / "split" / "last.pt", weights_only=False)["model"]
    assert same_weights(last_whole, last_split)


def test_resume_after_a_crash_matches_an_uninterrupted_run(tmp_path, data) -> None:
    train, val = data
    reference = lenet()
    reference_result = fit(reference, train, val, config(epochs=4), tmp_path / "reference")

    crashing = Crashing(train, after=2 * len(train) + 5)  # dies early in epoch 3
    with pytest.raises(KeyboardInterrupt):
        fit(lenet(), crashing, val, config(epochs=4), tmp_path / "run")
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert last["epoch"] == 2

    resumed = lenet(seed=7)
    result = fit(resumed, train, val, config(epochs=4), tmp_path / "run", resume=True)
    assert same_history(result.history, reference_result.history)
    assert same_weights(resumed.state_dict(), reference.state_dict())


def test_early_stopping_when_validation_cannot_improve(tmp_path, data) -> None:
    train, val = data
    result = fit(lenet(), train, val, config(epochs=10, lr=0.0, patience=1), tmp_path)
    assert result.stopped_early
    assert result.epochs_run == 2
    assert result.best_epoch == 1
    with (tmp_path / "metrics.csv").open(newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 2


def test_sgd_and_unknown_settings() -> None:
    assert TrainConfig(optimizer="sgd").optimizer == "sgd"
    with pytest.raises(ValueError, match="adamw"):
        TrainConfig(optimizer="adam")
    with pytest.raises(ValueError, match="cosine"):
        TrainConfig(schedule="linear")


def test_fine_tuning_trains_the_backbone_at_a_lower_rate(tmp_path) -> None:
    model = build_model("resnet10t", 2, pretrained=False)
    model.freeze_backbone(1)
    images = TensorDataset(torch.randn(8, 3, 32, 32), torch.arange(8) % 2)
    fit(model, images, images, config(epochs=1, optimizer="sgd", schedule="none"), tmp_path)
    optimizer = torch.load(tmp_path / "last.pt", weights_only=False)["optimizer"]
    assert sorted({group["lr"] for group in optimizer["param_groups"]}) == pytest.approx(
        [3e-4, 3e-3]
    )
    # frozen blocks got no update, their BN statistics included
    fresh = build_model("resnet10t", 2, pretrained=False)
    fresh.load_state_dict(torch.load(tmp_path / "last.pt", weights_only=False)["model"])
    assert torch.equal(
        fresh.backbone.layer1[0].bn1.running_mean, model.backbone.layer1[0].bn1.running_mean
    )


def test_fit_head_on_separable_features_beats_chance(tmp_path) -> None:
    x, y = separable_features(120, classes=4, dim=16, seed=1)
    vx, vy = separable_features(40, classes=4, dim=16, seed=2)
    head, result = fit_head(x, y, vx, vy, 4, config(epochs=15, lr=1e-2), tmp_path)
    assert isinstance(head, nn.Linear)
    assert result.best_val_acc > 0.9
    assert (tmp_path / "best.pt").is_file()
    mlp, result = fit_head(
        x, y, vx, vy, 4, config(epochs=15, lr=1e-2), tmp_path / "mlp", hidden=32, dropout=0.1
    )
    assert isinstance(mlp, nn.Sequential)
    assert result.best_val_acc > 0.9


def test_fit_head_starts_from_init(tmp_path) -> None:
    x, y = separable_features(40, classes=3, dim=8, seed=1)
    weight, bias = torch.randn(3, 8), torch.randn(3)
    head, result = fit_head(
        x, y, x, y, 3, config(epochs=1, lr=0.0, weight_decay=0.0), tmp_path, init=(weight, bias)
    )
    assert torch.equal(head.weight.detach().cpu(), weight)
    assert torch.equal(head.bias.detach().cpu(), bias)
    expected = nn.functional.cross_entropy(x @ weight.T + bias, y).item()
    assert result.history[0]["val_loss"] == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="do not fit"):
        fit_head(x, y, x, y, 3, config(), tmp_path / "bad", init=(weight[:, :4], bias))
    with pytest.raises(ValueError, match="linear"):
        fit_head(x, y, x, y, 3, config(), tmp_path / "bad", hidden=4, init=(weight, bias))


def test_seed_everything_repeats_random_draws() -> None:
    seed_everything(5)
    a = torch.rand(3)
    seed_everything(5)
    assert torch.equal(a, torch.rand(3))


class CountingBackbone(nn.Module):
    """A tiny feature extractor (N, 3, H, W) → (N, 6) that counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.conv(x).mean(dim=(2, 3))


def test_extract_features_shapes_and_order() -> None:
    images = TensorDataset(torch.randn(10, 3, 16, 16), torch.arange(10) % 3)
    backbone = CountingBackbone().train()
    features, labels = extract_features(backbone, images, batch_size=4, progress=False)
    assert features.shape == (10, 6) and features.dtype == torch.float32
    assert labels.dtype == torch.int64 and torch.equal(labels, torch.arange(10) % 3)
    assert backbone.calls == 3
    assert backbone.training  # left as it came
    with torch.no_grad():
        assert torch.allclose(features[7], backbone(images[7][0][None])[0], atol=1e-5)


def test_extract_features_uses_a_transfer_models_features() -> None:
    model = build_model("resnet10t", 4, pretrained=False)
    images = TensorDataset(torch.randn(3, 3, 32, 32), torch.zeros(3, dtype=torch.long))
    features, _ = extract_features(model, images, progress=False)
    assert features.shape == (3, model.num_features)


def test_feature_cache_hit_skips_the_backbone(tmp_path) -> None:
    images = TensorDataset(torch.randn(6, 3, 16, 16), torch.arange(6))
    cache = tmp_path / "cache" / f"{cache_key('tiny', 'abc', 'eval')}.pt"
    backbone = CountingBackbone()
    first = extract_features(backbone, images, batch_size=4, cache=cache, progress=False)
    assert backbone.calls == 2 and cache.is_file()
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # no temporary left
    second = extract_features(backbone, images, batch_size=4, cache=cache, progress=False)
    assert backbone.calls == 2
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    # a cache for other data (different length) is recomputed
    extract_features(backbone, TensorDataset(*images[:5]), cache=cache, progress=False)
    assert backbone.calls == 3


def test_feature_cache_is_written_atomically(tmp_path, monkeypatch) -> None:
    images = TensorDataset(torch.randn(4, 3, 16, 16), torch.arange(4))
    cache = tmp_path / "features.pt"
    cache.write_bytes(b"not a torch file")  # a corrupt cache is a miss
    backbone = CountingBackbone()

    def crash(obj, f, *args, **kwargs):
        with open(f, "wb") as fh:
            fh.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        extract_features(backbone, images, cache=cache, progress=False)
    assert cache.read_bytes() == b"not a torch file"  # never replaced by a half-written file
    assert [p.name for p in tmp_path.iterdir()] == ["features.pt"]
    monkeypatch.undo()
    features, _ = extract_features(backbone, images, cache=cache, progress=False)
    assert torch.load(cache)["features"].shape == features.shape == (4, 6)


def test_cache_key_is_short_stable_and_unambiguous() -> None:
    key = cache_key("efficientnet_lite0", "f00d", "eval")
    assert key == cache_key("efficientnet_lite0", "f00d", "eval")
    assert len(key) == 16 and int(key, 16) >= 0
    assert cache_key("ab", "c") != cache_key("a", "bc")
