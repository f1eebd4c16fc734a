"""The CUDA path on a GPU machine: the served classifier's forward (AMP, as the worker runs
it) against float32 and against the CPU, and its throughput by batch size.

``python -m bench.gpu --weights FILE`` needs only ``pawdex.ml`` and its own dependencies
(torch, timm, torchvision, Pillow), so it runs on a GPU host without the service installed.
Inputs are generated (smooth random images through the model's own preprocessing), so it
checks numbers, not accuracy: accuracy is the CPU's business (``tests/realphotos``) and the
path on both devices is the same code.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import torch
import typer
from PIL import Image, ImageFilter

from pawdex.ml.classifier import ImagenetDogsClassifier
from pawdex.ml.devices import amp_dtype, autocast


def smooth_images(count: int, side: int = 480, seed: int = 0) -> list[Image.Image]:
    """Blurred colour noise: natural-image-like statistics without any photo."""
    generator = torch.Generator().manual_seed(seed)
    images = []
    for _ in range(count):
        noise = torch.randint(0, 256, (side // 8, side // 8, 3), generator=generator)
        small = Image.fromarray(noise.to(torch.uint8).numpy(), "RGB")
        images.append(small.resize((side, side), Image.BICUBIC).filter(ImageFilter.BLUR))
    return images


def throughput(forward, batch: torch.Tensor, seconds: float) -> float:
    """Images per second of ``forward`` on ``batch`` (already on the device)."""
    for _ in range(3):
        forward(batch)
    torch.cuda.synchronize()
    runs, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        forward(batch)
        runs += 1
    torch.cuda.synchronize()
    return runs * batch.shape[0] / (time.perf_counter() - began)


def main(
    weights: Annotated[Path, typer.Option(help="The backbone's weights file.")],
    backbone: str = "efficientnet_lite1",
    batches: str = "32,64,128,256,512,1024",
    seconds: float = 3.0,
    parity_images: int = 64,
) -> None:
    if not torch.cuda.is_available():
        raise typer.Exit("no CUDA device here")
    gpu = ImagenetDogsClassifier(backbone, weights, device="cuda", runtime="torch")
    cpu = ImagenetDogsClassifier(backbone, weights, device="cpu", runtime="torch")
    crops = [gpu.prepare(img) for img in smooth_images(parity_images)]
    on_gpu, on_cpu = gpu.predict_prepared(crops), cpu.predict_prepared(crops)
    pairs = list(zip(on_gpu, on_cpu, strict=True))
    same_top1 = sum(a.breed == b.breed and a.species == b.species for a, b in pairs)
    diff = max(abs(a.confidence - b.confidence) for a, b in pairs)

    model = gpu._build().eval().to("cuda", memory_format=torch.channels_last)
    result: dict = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "backbone": backbone,
        "amp_dtype": str(amp_dtype(gpu.device)),
        "input_size": gpu.input_size,
        "parity_images": parity_images,
        "parity_same_decision": same_top1,
        "parity_max_confidence_diff": round(diff, 4),
        "img_s": {},
    }
    for size in (int(b) for b in batches.split(",")):
        batch = torch.randn(size, 3, gpu.input_size, gpu.input_size, device="cuda")
        batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            fp32 = throughput(model, batch, seconds)
            with autocast(gpu.device):
                amp = throughput(model, batch, seconds)
        result["img_s"][size] = {"amp": round(amp, 1), "fp32": round(fp32, 1)}
        print(f"batch {size}: amp {amp:.0f} img/s, fp32 {fp32:.0f} img/s", flush=True)
    # What the worker does per batch besides the forward: stack and normalise on the CPU.
    began = time.perf_counter()
    for _ in range(5):
        gpu.preset.batch(crops)
    result["cpu_batch_ms_per_image"] = round(
        (time.perf_counter() - began) / 5 / len(crops) * 1e3, 3
    )
    print(json.dumps(result))


if __name__ == "__main__":
    typer.run(main)
