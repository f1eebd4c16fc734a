"""Choosing the forward's runtime, the exported ONNX graph cache, and the int8 graph."""

from __future__ import annotations

import onnx
import pytest
import torch
from PIL import Image
from torch import nn

from pawdex.ml import runtime
from pawdex.ml.quantize import Calibration, CalibrationMissing, calibration_photos
from pawdex.ml.runtime import make_forward, onnx_available, resolve_runtime

needs_onnx = pytest.mark.skipif(not onnx_available(), reason="onnxruntime not installed")
CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@needs_onnx
def test_auto_is_onnx_on_cpu_and_torch_on_cuda() -> None:
    assert resolve_runtime("auto", CPU) == "onnx"
    assert resolve_runtime("auto", CUDA) == "torch"
    assert resolve_runtime("torch", CPU) == "torch"
    assert resolve_runtime("onnx-int8", CPU) == "onnx-int8"


@needs_onnx
def test_auto_picks_int8_only_when_the_decision_allows_it_and_photos_are_given(
    monkeypatch,
) -> None:
    assert resolve_runtime("auto", CPU, calibrated=True) == (
        "onnx-int8" if runtime.AUTO_INT8 else "onnx"
    )
    monkeypatch.setattr(runtime, "AUTO_INT8", True)
    assert resolve_runtime("auto", CPU, calibrated=True) == "onnx-int8"
    assert resolve_runtime("auto", CPU, calibrated=False) == "onnx"
    assert resolve_runtime("auto", CUDA, calibrated=True) == "torch"


def test_onnx_on_cuda_and_unknown_runtimes_are_refused() -> None:
    for name in ("onnx", "onnx-int8"):
        with pytest.raises(RuntimeError, match="CPU only"):
            resolve_runtime(name, CUDA)
    with pytest.raises(ValueError, match="auto, torch, onnx, onnx-int8"):
        resolve_runtime("tensorrt", CPU)


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU6(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5),
    ).eval()  # fmt: skip


def must_not_build() -> nn.Module:
    raise AssertionError("the cached graph must be reused without building the model")


@needs_onnx
def test_a_graph_fixed_at_8_matches_torch_for_any_batch_and_is_exported_once(tmp_path) -> None:
    net = tiny_net()
    name = "tiny@abc/../x"
    forward = make_forward(
        lambda: net, CPU, "onnx", 32, cache_name=name, cache_dir=tmp_path, batch=8
    )
    (graph,) = tmp_path.glob("*.onnx")
    assert "/" not in graph.name.removesuffix(".onnx") and graph.name.startswith("tiny_abc")
    assert "-32px-b8-" in graph.name
    assert not list(tmp_path.glob("*.part"))
    (images,) = onnx.load(str(graph)).graph.input
    assert [d.dim_value for d in images.type.tensor_type.shape.dim] == [8, 3, 32, 32]
    for n in (1, 3, 8, 11):  # short, exact and longer than the graph's batch
        x = torch.randn(n, 3, 32, 32)
        with torch.inference_mode():
            expected = net(x)
        out = forward(x)
        assert out.shape == (n, 5)
        assert torch.allclose(out, expected, atol=1e-5)
    stamp = graph.stat().st_mtime_ns

    make_forward(must_not_build, CPU, "onnx", 32, cache_name=name, cache_dir=tmp_path, batch=8)
    assert graph.stat().st_mtime_ns == stamp
    make_forward(lambda: net, CPU, "onnx", 32, cache_name=name, cache_dir=tmp_path, batch=4)
    assert sorted("-b4-" in p.name for p in tmp_path.glob("*.onnx")) == [False, True]


def relu_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU6(),
        nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU6(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4),
    ).eval()  # fmt: skip


class Tensors:
    """Calibration images that count how often they are asked for."""

    def __init__(self, images: torch.Tensor) -> None:
        self.calls = 0
        self.calibration = Calibration.of_tensors(images)
        self._images = images

    def images(self) -> torch.Tensor:
        self.calls += 1
        return self._images

    def counted(self) -> Calibration:
        return Calibration(self.calibration.digest, self.images)


@needs_onnx
def test_int8_graph_is_calibrated_once_cached_by_calibration_and_close_to_float(
    tmp_path,
) -> None:
    net = relu_net()
    torch.manual_seed(1)
    photos = Tensors(torch.randn(13, 3, 16, 16))  # not a multiple of the batch
    args = dict(cache_name="tiny@abc", cache_dir=tmp_path, batch=8)
    int8 = make_forward(lambda: net, CPU, "onnx-int8", 16, **args, calibration=photos.counted())
    assert photos.calls == 1
    (graph,) = tmp_path.glob("*-int8-*.onnx")
    assert f"-16px-b8-int8-cal{photos.calibration.digest}-" in graph.name
    assert len(list(tmp_path.glob("*.onnx"))) == 2  # the float graph it came from
    assert not list(tmp_path.glob(".*"))  # no temporary files left
    ops = {node.op_type for node in onnx.load(str(graph)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Gemm"} <= ops
    x = torch.randn(11, 3, 16, 16)
    with torch.inference_mode():
        expected = net(x)
    out = int8(x)
    assert out.shape == (11, 4)
    assert torch.allclose(out, expected, atol=0.1 * float(expected.abs().max()))

    stamp = graph.stat().st_mtime_ns
    make_forward(must_not_build, CPU, "onnx-int8", 16, **args, calibration=photos.counted())
    assert photos.calls == 1 and graph.stat().st_mtime_ns == stamp
    other = Calibration.of_tensors(torch.randn(8, 3, 16, 16))
    make_forward(must_not_build, CPU, "onnx-int8", 16, **args, calibration=other)
    assert len(list(tmp_path.glob("*-int8-*.onnx"))) == 2


@needs_onnx
def test_int8_without_calibration_photos_refuses_to_load(tmp_path) -> None:
    with pytest.raises(CalibrationMissing, match="PAWDEX_CALIBRATION_DIR"):
        make_forward(tiny_net, CPU, "onnx-int8", 16, cache_name="t", cache_dir=tmp_path, batch=8)
    assert not list(tmp_path.iterdir())
    with pytest.raises(CalibrationMissing):
        Calibration.of_photos([], lambda img: torch.zeros(3, 16, 16))


def test_calibration_photos_are_a_fixed_sorted_spread_of_the_folder(tmp_path) -> None:
    for i in range(10):
        folder = tmp_path / ("b" if i % 2 else "a") / "deeper"
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(folder / f"{i:02d}.jpg")
    (tmp_path / "notes.txt").write_text("not a photo")
    (tmp_path / ".hidden").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / ".hidden" / "x.jpg")

    every = calibration_photos(tmp_path, limit=100)
    rel = [p.relative_to(tmp_path).as_posix() for p in every]
    assert rel == sorted(rel) and len(rel) == 10 and all(r.endswith(".jpg") for r in rel)
    some = calibration_photos(tmp_path, limit=4)
    assert some == [every[0], every[2], every[5], every[7]]
    assert calibration_photos(tmp_path, limit=4) == some

    digest = Calibration.of_photos(some, lambda img: torch.zeros(1)).digest
    assert Calibration.of_photos(list(some), lambda img: torch.ones(1)).digest == digest
    assert Calibration.of_photos(some[::-1], lambda img: torch.zeros(1)).digest != digest
