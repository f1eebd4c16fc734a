"""Where a classifier's forward pass runs: eager PyTorch, or ONNX Runtime on CPU.

On CPU, ONNX Runtime runs the EfficientNet-Lite graphs about twice as fast as eager PyTorch
(fused conv + BN + ReLU6, better depthwise kernels): ``pawdex bench`` on two cores measured
Lite0 at 135-150 img/s against 60-75. The graph is exported from the loaded PyTorch model
once and cached under a name that pins the weights and the exporter, so the logits stay
those of the PyTorch model (max difference ~1e-5). On CUDA the forward stays in PyTorch
(AMP and large batches are what pay there).
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from pawdex.fileio import atomic_path

Runtime = Literal["auto", "torch", "onnx"]
RUNTIMES: tuple[str, ...] = ("auto", "torch", "onnx")
Forward = Callable[[torch.Tensor], torch.Tensor]


def onnx_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def resolve_runtime(runtime: str, device: torch.device) -> str:
    """``auto``: ONNX Runtime on CPU when it is installed, else PyTorch."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; known: {', '.join(RUNTIMES)}")
    if runtime == "torch" or (runtime == "auto" and (device.type != "cpu" or not onnx_available())):
        return "torch"
    if device.type != "cpu":
        raise RuntimeError(f"runtime 'onnx' runs on CPU only, not on {device}")
    if not onnx_available():
        raise RuntimeError("runtime 'onnx' requested but onnxruntime is not installed")
    return "onnx"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pawdex" / "onnx"


def torch_forward(model: nn.Module, device: torch.device) -> Forward:
    def forward(batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        return model(batch).float().cpu()

    return forward


def export_onnx(model: nn.Module, input_size: int, path: Path) -> Path:
    """Export ``model`` (CPU, eval) with a dynamic batch axis; atomic, so workers starting
    together never read a half-written file."""
    example = torch.zeros(1, 3, input_size, input_size)
    # Readable by all: the cache is shared by workers.
    with atomic_path(path, mode=0o644) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model.cpu().eval(),
            (example,),
            str(tmp),
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    return path


def onnx_forward(path: Path, threads: int | None = None) -> Forward:
    """A forward over ``path`` with as many intra-op threads as torch uses here."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle threads sleep instead of spinning: the worker shares its cores with decoding, and
    # spinning threads took CPU from it for no gain in the forward itself (bench: 146 img/s
    # either way alone).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def forward(batch: torch.Tensor) -> torch.Tensor:
        images = batch.float().contiguous().numpy()
        (logits,) = session.run(None, {"images": images})
        return torch.from_numpy(logits)

    return forward


def make_forward(
    build: Callable[[], nn.Module],
    device: torch.device,
    runtime: str,
    input_size: int,
    cache_name: str,
    cache_dir: Path | None = None,
) -> Forward:
    """The forward pass of the model that ``build`` makes (eval mode, CPU), on ``runtime``.
    ONNX graphs are exported on first use into ``cache_dir`` as ``cache_name`` (which must
    name the weights); once cached, the PyTorch model is not even built."""
    if runtime == "torch":
        model = build().to(device, memory_format=torch.channels_last)
        return torch_forward(model, device)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in cache_name)
    path = (cache_dir or default_cache_dir()) / (
        f"{safe}-{input_size}px-torch{torch.__version__.split('+')[0]}.onnx"
    )
    if not path.is_file():
        export_onnx(build(), input_size, path)
    return onnx_forward(path)
