"""Features of a frozen backbone, computed once and cached: heads then train in seconds."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from pawdex.fileio import atomic_path
from pawdex.ml.devices import autocast, resolve_device

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


def cache_key(*parts: str) -> str:
    """A short, stable name for what the features depend on (backbone, weights sha256,
    preset, file list…): the first 16 hex digits of the sha256 of the parts."""
    digest = hashlib.sha256()
    for part in parts:
        data = str(part).encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))  # ("ab", "c") ≠ ("a", "bc")
        digest.update(data)
    return digest.hexdigest()[:16]


def _load_cache(path: Path, expected: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The cached (features, labels), or None when absent, unreadable or not for this data."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        features, labels = payload["features"], payload["labels"]
        valid = (
            payload.get("format") == CACHE_FORMAT
            and isinstance(features, torch.Tensor)
            and isinstance(labels, torch.Tensor)
            and features.ndim == 2
            and labels.shape == (features.shape[0],)
            and features.shape[0] == expected
        )
    except Exception as exc:  # a truncated or foreign file is a cache miss, not a failure
        log.warning("event=feature_cache_unreadable path=%s error=%r", path, exc)
        return None
    if not valid:
        log.warning("event=feature_cache_stale path=%s", path)
        return None
    return features.float(), labels.long()


def extract_features(
    backbone: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 64,
    device: str = "cpu",
    cache: Path | None = None,
    desc: str = "features",
    num_workers: int = 0,
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, F) float32 features and (N,) int64 labels of ``dataset`` (items ``(image, label)``).

    ``backbone`` maps a batch to pooled features (a timm model with ``num_classes=0``, or a
    ``TransferModel``, whose ``features`` are used). With ``cache``, a valid cached file is
    loaded without running the backbone; otherwise the result is saved there atomically.
    The backbone is left in the mode and on the device it came in."""
    if cache is not None:
        cached = _load_cache(Path(cache), len(dataset))
        if cached is not None:
            log.info("event=feature_cache_hit path=%s n=%d", cache, cached[0].shape[0])
            return cached

    target = resolve_device(device)
    embed = getattr(backbone, "features", None)
    forward = embed if callable(embed) and not isinstance(embed, nn.Module) else backbone
    was_training = backbone.training
    first = next(backbone.parameters(), None)
    home = first.device if first is not None else torch.device("cpu")
    backbone.eval().to(target, memory_format=torch.channels_last)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=target.type == "cuda",
    )
    chunks: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    try:
        with torch.inference_mode(), autocast(target):
            for images, targets in tqdm(loader, desc=desc, unit="batch", disable=not progress):
                images = images.to(target, non_blocking=True)
                if images.ndim == 4:
                    images = images.contiguous(memory_format=torch.channels_last)
                out = forward(images)
                if out.ndim > 2:  # an unpooled feature map: average it
                    out = out.flatten(2).mean(dim=2)
                chunks.append(out.float().cpu())
                labels.append(torch.as_tensor(targets).long().cpu())
    finally:
        backbone.to(home).train(was_training)
    if chunks:
        features, all_labels = torch.cat(chunks), torch.cat(labels)
    else:
        features, all_labels = torch.empty(0, 0), torch.empty(0, dtype=torch.long)
    if cache is not None:
        payload = {"format": CACHE_FORMAT, "features": features, "labels": all_labels}
        with atomic_path(Path(cache)) as tmp:
            torch.save(payload, tmp)
        log.info("event=feature_cache_saved path=%s n=%d", cache, features.shape[0])
    return features, all_labels
