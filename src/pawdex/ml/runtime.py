"""Where a classifier's forward pass runs: eager PyTorch, or ONNX Runtime on CPU (float32, or
int8 calibrated on real photos).

On CPU, ONNX Runtime runs the EfficientNet-Lite graphs about twice as fast as eager PyTorch
(fused conv + BN + ReLU6, better depthwise kernels): ``pawdex bench`` on two cores measured
Lite0 at 135-150 img/s against 60-75. The graph is exported from the loaded PyTorch model
once, with the batch fixed at the classifier's ``forward_batch``, and cached under a name that
pins the weights, the batch and the exporter, so the logits stay those of the PyTorch model
(max difference ~1e-5). A fixed batch lets ONNX Runtime fold the shape arithmetic of
TensorFlow's "same" padding into constants, which a dynamic batch axis makes it redo on every
call: the forward alone ran 1.2-1.4x faster on Lite1 and 1.2-1.6x on Lite0 (``python -m
bench.int8``, two shared cores, batch 8). A call's last, short chunk is padded with zeros up
to the batch and the padded rows dropped.

``onnx-int8`` quantizes that graph statically (``ml.quantize``): about 1.1x the float graph's
img/s (1.07-1.21x, once 1.36x) on two cores of an AVX2 machine without VNNI, 5-7 % of the top
breeds changed, and it is only served on request (``AUTO_INT8``). On CUDA the forward stays in
PyTorch (AMP and large batches are what pay there).
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
from pawdex.ml.quantize import Calibration, CalibrationMissing, quantize_int8

Runtime = Literal["auto", "torch", "onnx", "onnx-int8"]
RUNTIMES: tuple[str, ...] = ("auto", "torch", "onnx", "onnx-int8")
ONNX_RUNTIMES: tuple[str, ...] = ("onnx", "onnx-int8")
Forward = Callable[[torch.Tensor], torch.Tensor]

AUTO_INT8 = False
"""Whether ``auto`` picks ``onnx-int8`` on CPU when calibration photos are given. The rule
(issue 13): only if int8 keeps top-1 within 1 point and dog / not-dog within 0.5 point of the
float graph on the real labelled photos, including those it was not calibrated on. Not met
(``python -m bench.int8``): Lite1 calibrated on 64 photos, top-1 0.793 against 0.808 on all
216 and 0.780 against 0.809 on the 152 held out; on 128, 0.798 against 0.808 on all but 0.778
against 0.790 on the 88 held out. Lite0 kept top-1 (0.764 against 0.768) but lost dog /
not-dog (0.991 against 1.000)."""


def onnx_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def resolve_runtime(runtime: str, device: torch.device, calibrated: bool = False) -> str:
    """``auto``: ONNX Runtime on CPU when it is installed (int8 when ``AUTO_INT8`` and
    ``calibrated``), else PyTorch."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; known: {', '.join(RUNTIMES)}")
    if runtime == "torch" or (runtime == "auto" and (device.type != "cpu" or not onnx_available())):
        return "torch"
    if runtime == "auto":
        return "onnx-int8" if AUTO_INT8 and calibrated else "onnx"
    if device.type != "cpu":
        raise RuntimeError(f"runtime {runtime!r} runs on CPU only, not on {device}")
    if not onnx_available():
        raise RuntimeError(f"runtime {runtime!r} requested but onnxruntime is not installed")
    return runtime


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pawdex" / "onnx"


def graph_path(
    cache_name: str,
    input_size: int,
    batch: int | None,
    cache_dir: Path | None = None,
    calibration: Calibration | None = None,
) -> Path:
    """Where the graph of ``cache_name`` (which must name the weights) is cached: float32 at
    a fixed ``batch`` (None: a dynamic batch axis), or int8 calibrated on ``calibration``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in cache_name)
    name = f"{safe}-{input_size}px-b{batch or 'dyn'}"
    if calibration is not None:
        import onnxruntime as ort

        # The quantizer is ONNX Runtime's: its version can change the int8 graph.
        name += f"-int8-cal{calibration.digest}-ort{ort.__version__}"
    exporter = torch.__version__.split("+")[0]
    return (cache_dir or default_cache_dir()) / f"{name}-torch{exporter}.onnx"


def torch_forward(model: nn.Module, device: torch.device) -> Forward:
    def forward(batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        return model(batch).float().cpu()

    return forward


def export_onnx(model: nn.Module, input_size: int, path: Path, batch: int | None) -> Path:
    """Export ``model`` (CPU, eval) with the batch fixed at ``batch`` (None: a dynamic batch
    axis); atomic, so workers starting together never read a half-written file."""
    example = torch.zeros(batch or 1, 3, input_size, input_size)
    dynamic = {"images": {0: "batch"}, "logits": {0: "batch"}} if batch is None else None
    # Readable by all: the cache is shared by workers.
    with atomic_path(path, mode=0o644) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model.cpu().eval(),
            (example,),
            str(tmp),
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,
        )
    return path


def onnx_forward(path: Path, threads: int | None = None) -> Forward:
    """A forward over ``path`` with as many intra-op threads as torch uses here. Any number
    of rows: a graph with a fixed batch runs them that many at a time, the last chunk padded
    with zeros (rows are independent in eval mode, so padding changes no other row)."""
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
    fixed = session.get_inputs()[0].shape[0]
    fixed = fixed if isinstance(fixed, int) else None

    def run(images: torch.Tensor) -> torch.Tensor:
        (logits,) = session.run(None, {"images": images.numpy()})
        return torch.from_numpy(logits)

    def forward(batch: torch.Tensor) -> torch.Tensor:
        batch = batch.float().contiguous()
        if fixed is None:
            return run(batch)
        out = []
        for chunk in batch.split(fixed):
            rows = chunk.shape[0]
            if rows < fixed:
                chunk = torch.cat([chunk, chunk.new_zeros(fixed - rows, *chunk.shape[1:])])
            out.append(run(chunk)[:rows])
        return torch.cat(out)

    return forward


def make_forward(
    build: Callable[[], nn.Module],
    device: torch.device,
    runtime: str,
    input_size: int,
    cache_name: str,
    cache_dir: Path | None = None,
    *,
    batch: int,
    calibration: Calibration | None = None,
) -> Forward:
    """The forward pass of the model that ``build`` makes (eval mode, CPU), on ``runtime``.
    ONNX graphs are exported on first use into ``cache_dir`` (see ``graph_path``) with the
    batch fixed at ``batch``; ``onnx-int8`` also quantizes on ``calibration`` then. Once
    cached, the PyTorch model is not even built, nor the calibration photos read."""
    if runtime == "torch":
        model = build().to(device, memory_format=torch.channels_last)
        return torch_forward(model, device)
    if runtime == "onnx-int8" and calibration is None:
        raise CalibrationMissing(
            "runtime 'onnx-int8' needs calibration photos and found none: set "
            "PAWDEX_CALIBRATION_DIR to a folder of photos like the ones the service "
            "classifies (read recursively; a fixed subset of up to 128 is used), or pass "
            "calibration photos to the classifier; or use runtime 'onnx'"
        )
    int8 = calibration if runtime == "onnx-int8" else None
    fp32 = graph_path(cache_name, input_size, batch, cache_dir)
    path = graph_path(cache_name, input_size, batch, cache_dir, int8)
    if not path.is_file():
        if not fp32.is_file():
            export_onnx(build(), input_size, fp32, batch)
        if int8 is not None:
            quantize_int8(fp32, path, int8.images(), batch)
    return onnx_forward(path)
