"""ml.models: every architecture builds and classifies; backbones freeze and load weights."""

from __future__ import annotations

import pytest
import timm
import torch
from timm.data import resolve_data_config

from pawdex.ml.backbones import BackboneWeightsError, create_backbone
from pawdex.ml.models import SCRATCH, TransferModel, build_model, data_config, model_input_size

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def trainable_names(model: torch.nn.Module) -> set[str]:
    return {name for name, param in model.named_parameters() if param.requires_grad}


@pytest.fixture(scope="module")
def lite0() -> TransferModel:
    """EfficientNet-Lite0 with its shipped ImageNet weights and a linear 7-way head."""
    torch.manual_seed(0)
    return build_model("efficientnet_lite0", 7)


@pytest.mark.parametrize(("arch", "size"), [("lenet5", 32), ("smallcnn", 64)])
def test_scratch_models_give_one_logit_per_class(arch: str, size: int) -> None:
    model = build_model(arch, 5)
    assert model(torch.randn(3, 3, size, size)).shape == (3, 5)
    assert arch in SCRATCH


def test_scratch_models_say_what_input_they_expect() -> None:
    assert model_input_size("lenet5") == 32
    assert model_input_size("smallcnn") == 224
    config = data_config("lenet5")
    assert config["input_size"] == (3, 32, 32)
    assert config["mean"] == pytest.approx((0.485, 0.456, 0.406))
    assert set(config) == {"input_size", "mean", "std", "crop_pct", "interpolation"}


def test_backbone_data_config_is_timms() -> None:
    lite = data_config("efficientnet_lite0")
    assert lite["input_size"] == (3, 224, 224)
    assert lite["mean"] == pytest.approx((0.5, 0.5, 0.5))
    assert model_input_size("efficientnet_lite2") == 260
    cfg = timm.models.get_pretrained_cfg("resnet50").to_dict()
    expected = resolve_data_config({}, pretrained_cfg=cfg)
    assert data_config("resnet50")["crop_pct"] == expected["crop_pct"]
    assert model_input_size("xception41") == 299


def test_unknown_architecture_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="no_such_net"):
        build_model("no_such_net", 3)
    with pytest.raises(ValueError, match="hidden"):
        build_model("lenet5", 3, hidden=64)


def test_shipped_backbone_gives_logits_and_keeps_its_imagenet_classifier(lite0) -> None:
    assert isinstance(lite0, TransferModel)
    assert lite0.num_features == 1280
    assert isinstance(lite0.head, torch.nn.Linear)
    lite0.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert lite0(x).shape == (2, 7)
        assert lite0.features(x).shape == (2, 1280)
        assert lite0.imagenet_logits(x).shape == (2, 1000)
    shipped = create_backbone("efficientnet_lite0")
    assert torch.equal(lite0.imagenet_classifier.weight, shipped.classifier.weight)
    assert torch.equal(lite0.backbone.conv_stem.weight, shipped.conv_stem.weight)
    state = lite0.state_dict()
    assert "imagenet_classifier.weight" in state
    assert not lite0.imagenet_classifier.weight.requires_grad


def test_mlp_head() -> None:
    model = build_model("efficientnet_lite0", 4, hidden=32, dropout=0.5).eval()
    head = model.head
    assert isinstance(head, torch.nn.Sequential)
    assert [type(m).__name__ for m in head] == ["Linear", "ReLU", "Dropout", "Linear"]
    assert head[0].out_features == 32
    assert head[2].p == 0.5
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 4)


def test_frozen_backbone_trains_only_the_head(lite0) -> None:
    lite0.freeze_backbone(0)
    lite0.train()
    assert trainable_names(lite0) == {"head.weight", "head.bias"}
    assert not lite0.backbone.training  # BN statistics stay those of ImageNet
    before = lite0.backbone.bn1.running_mean.clone()
    lite0(torch.randn(2, 3, 32, 32))
    assert torch.equal(lite0.backbone.bn1.running_mean, before)


def test_one_trainable_block_is_the_last_one_and_what_follows(lite0) -> None:
    lite0.freeze_backbone(1)
    lite0.train()
    last = len(lite0.backbone.blocks) - 1
    prefixes = {f"backbone.blocks.{last}.0.", "backbone.conv_head.", "backbone.bn2.", "head."}
    names = trainable_names(lite0)
    assert names and all(any(n.startswith(p) for p in prefixes) for n in names)
    assert all(any(n.startswith(p) for n in names) for p in prefixes)
    assert lite0.backbone.blocks[last].training
    assert not lite0.backbone.blocks[0].training
    lite0.freeze_backbone(-1)
    assert trainable_names(lite0) >= {"backbone.conv_stem.weight", "head.weight"}
    lite0.freeze_backbone(0)


def test_timm_name_without_weights_asks_for_a_weights_file() -> None:
    with pytest.raises(BackboneWeightsError, match="--weights"):
        build_model("resnet18", 3)


def test_local_weights_file_is_loaded(tmp_path) -> None:
    torch.manual_seed(1)
    source = timm.create_model("resnet10t", pretrained=False)  # with its 1000-way fc
    path = tmp_path / "resnet10t.pth"
    torch.save(source.state_dict(), path)
    model = build_model("resnet10t", 3, weights=path)
    assert model.imagenet_classifier is None
    assert torch.equal(model.backbone.conv1[0].weight, source.conv1[0].weight)
    assert torch.equal(model.backbone.layer4[0].conv1.weight, source.layer4[0].conv1.weight)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    model.freeze_backbone(1)
    assert {n.split(".")[1] for n in trainable_names(model) if n.startswith("backbone.")} == {
        "layer4"
    }


def test_weights_that_do_not_fit_are_refused(tmp_path) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), path)
    with pytest.raises(BackboneWeightsError, match="resnet10t"):
        build_model("resnet10t", 3, weights=path)
    with pytest.raises(BackboneWeightsError, match="not found"):
        build_model("resnet10t", 3, weights=tmp_path / "missing.pth")
