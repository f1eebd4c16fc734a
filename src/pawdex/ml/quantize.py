"""Static int8 quantization of an exported float graph, calibrated on real photos.

ONNX Runtime's ``quantize_static``: QDQ format, int8 weights per output channel, uint8
activations whose ranges are the MinMax of the calibration photos. Measured on Lite1 and the
real photos (fp32 top-1 0.808), calibrated on 108 of them: Entropy ranges gave the same
predictions as MinMax and Percentile (99.999) lost a photo, so MinMax, the cheapest. Three
choices are not the library's defaults:

- ``reduce_range`` (7-bit weights). Without VNNI, ONNX Runtime's x86 uint8 x int8 kernels add
  pairs of products in int16 (VPMADDUBSW), which saturates with full 8-bit weights: top-1
  fell to 0.744; with 7 bits, 0.793. Int8 activations were worse (0.788); uint8 weights kept
  0.808 but ran at a quarter of the float graph's speed (no fast kernel for them).
- The fully connected heads (Gemm, MatMul) stay float: little of the compute, and their
  outputs are logits of close breeds that an 8-bit grid would tie (with them quantized,
  0.788).
- ``quant_pre_process`` first (shape inference, constant folding, BN folded into the convs:
  635 nodes become 124); without it, 0.773.

Calibration photos are never invented: without them ``onnx-int8`` refuses to load.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from pawdex.fileio import atomic_path, file_sha256
from pawdex.formats import PHOTO_EXTENSIONS

CALIBRATION_PHOTOS = 128
"""Photos calibrated on, at most: MinMax ranges settle within a few dozen photos, and each
batch of 8 costs the quantizer about a second on two cores."""


class CalibrationMissing(RuntimeError):
    """``onnx-int8`` was asked for without calibration photos."""


def calibration_photos(folder: Path, limit: int = CALIBRATION_PHOTOS) -> list[Path]:
    """A fixed subset of the photos under ``folder`` (recursively, hidden files and folders
    skipped): ``limit`` of them evenly spread over their sorted relative paths, so the same
    folder always gives the same photos, in the same order."""
    found = sorted(
        (
            path
            for path in folder.rglob("*")
            if path.suffix.lower() in PHOTO_EXTENSIONS
            and not any(part.startswith(".") for part in path.relative_to(folder).parts)
            and path.is_file()
        ),
        key=lambda path: path.relative_to(folder).as_posix(),
    )
    if len(found) <= limit:
        return found
    return [found[i * len(found) // limit] for i in range(limit)]


@dataclass(frozen=True)
class Calibration:
    """What a graph is calibrated on: ``digest`` names the int8 graph in the cache;
    ``images`` gives the preprocessed photos (N, 3, H, W) and is only called when the graph
    is not cached yet."""

    digest: str
    images: Callable[[], torch.Tensor]

    @classmethod
    def of_photos(
        cls, photos: Sequence[Path], preprocess: Callable[[Image.Image], torch.Tensor]
    ) -> Calibration:
        """Photo files, in this order; the digest is of their bytes, wherever they lie."""
        if not photos:
            raise CalibrationMissing("no calibration photos given")
        digest = hashlib.sha256("\n".join(map(file_sha256, photos)).encode()).hexdigest()

        def images() -> torch.Tensor:
            from pawdex.ml.data.datasets import open_rgb

            return torch.stack([preprocess(open_rgb(path)) for path in photos])

        return cls(digest[:12], images)

    @classmethod
    def of_tensors(cls, images: torch.Tensor) -> Calibration:
        """Photos already preprocessed."""
        if not len(images):
            raise CalibrationMissing("no calibration photos given")
        data = images.float().contiguous()
        return cls(hashlib.sha256(data.numpy().tobytes()).hexdigest()[:12], lambda: data)


def _batches(images: torch.Tensor, batch: int) -> Iterator[dict]:
    """Feeds of exactly ``batch`` rows (the graph's fixed batch). The last is completed with
    the first photos again, not with blank images: MinMax ranges are those of the photos."""
    images = images.float().contiguous()
    short = -len(images) % batch
    if short:
        again = images.repeat(-(-short // len(images)), 1, 1, 1)[:short]
        images = torch.cat([images, again])
    for chunk in images.split(batch):
        yield {"images": chunk.numpy()}


def quantize_int8(fp32: Path, out: Path, images: torch.Tensor, batch: int) -> Path:
    """The int8 graph of ``fp32`` (float, batch fixed at ``batch``) calibrated on ``images``,
    written atomically at ``out``."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = _batches(images, batch)

        def get_next(self) -> dict | None:
            return next(self.feeds, None)

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".quantize-") as work:
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared))
        heads = [
            node.name
            for node in onnx.load(str(prepared)).graph.node
            if node.op_type in ("Gemm", "MatMul")
        ]
        with atomic_path(out, mode=0o644) as tmp:
            quantize_static(
                str(prepared),
                str(tmp),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                nodes_to_exclude=heads,
            )
    return out
