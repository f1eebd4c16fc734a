"""Where models run and in which precision: decided here, nowhere else."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch


def resolve_device(spec: str = "auto") -> torch.device:
    """`auto`: CUDA when available, else CPU; otherwise a torch device string ("cpu", "cuda:1")."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {spec!r} requested but CUDA is not available")
    return device


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """Reduced precision on this device (inference and training), or None for full float32."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device) -> AbstractContextManager[object]:
    """Mixed precision on CUDA (bf16 where supported, else fp16); a no-op on CPU."""
    dtype = amp_dtype(device)
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling for training under ``autocast(device)``: on only when that is float16
    (bf16 has float32's range and needs none); disabled, it passes everything through."""
    return torch.amp.GradScaler(device.type, enabled=amp_dtype(device) == torch.float16)
