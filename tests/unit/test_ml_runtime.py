"""Choosing the forward's runtime, and the exported ONNX graph cache."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pawdex.ml.runtime import make_forward, onnx_available, resolve_runtime

needs_onnx = pytest.mark.skipif(not onnx_available(), reason="onnxruntime not installed")
CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@needs_onnx
def test_auto_is_onnx_on_cpu_and_torch_on_cuda() -> None:
    assert resolve_runtime("auto", CPU) == "onnx"
    assert resolve_runtime("auto", CUDA) == "torch"
    assert resolve_runtime("torch", CPU) == "torch"


def test_onnx_on_cuda_and_unknown_runtimes_are_refused() -> None:
    with pytest.raises(RuntimeError, match="CPU only"):
        resolve_runtime("onnx", CUDA)
    with pytest.raises(ValueError, match="auto, torch, onnx"):
        resolve_runtime("tensorrt", CPU)


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU6(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5),
    ).eval()  # fmt: skip


@needs_onnx
def test_onnx_forward_matches_torch_for_any_batch_and_is_exported_once(tmp_path) -> None:
    net = tiny_net()
    name = "tiny@abc/../x"
    onnx = make_forward(lambda: net, CPU, "onnx", 32, cache_name=name, cache_dir=tmp_path)
    (graph,) = tmp_path.glob("*.onnx")
    assert "/" not in graph.name.removesuffix(".onnx") and graph.name.startswith("tiny_abc")
    assert not list(tmp_path.glob("*.part"))
    for n in (1, 3, 8):
        x = torch.randn(n, 3, 32, 32)
        with torch.inference_mode():
            expected = net(x)
        assert torch.allclose(onnx(x), expected, atol=1e-5)
    stamp = graph.stat().st_mtime_ns

    def must_not_build() -> nn.Module:
        raise AssertionError("the cached graph must be reused without building the model")

    make_forward(must_not_build, CPU, "onnx", 32, cache_name=name, cache_dir=tmp_path)
    assert graph.stat().st_mtime_ns == stamp
