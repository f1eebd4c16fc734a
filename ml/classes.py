"""The 120 Stanford Dogs classes and their place among the ImageNet-1k classes.

Importing this module is cheap (no torch, no timm); the ImageNet look-ups import timm's
label table on first use.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

# Contiguous ImageNet-1k index ranges (in timm's standard class order).
# 151..268 are the domestic dogs (Chihuahua … Mexican hairless); 269..272 are wolves and the
# coyote, left out; 273..275 are dingo, dhole and African hunting dog (in Stanford Dogs).
IMAGENET_DOG_INDICES: tuple[int, ...] = (*range(151, 269), 273, 274, 275)
# Tabby, tiger cat, Persian, Siamese, Egyptian cat.
IMAGENET_CAT_INDICES: tuple[int, ...] = tuple(range(281, 286))
# The whole cat family: domestic cats plus cougar, lynx, leopard, … cheetah (286..293).
# ImageNet models often call a house cat "lynx" or "cougar"; in a shelter those are cats.
IMAGENET_FELID_INDICES: tuple[int, ...] = tuple(range(281, 294))


def _read_classes() -> list[tuple[str, str]]:
    text = files("ml.data").joinpath("stanford_dogs_classes.txt").read_text(encoding="utf-8")
    pairs = []
    for line in text.splitlines():
        if line.strip():
            wnid, name = line.strip().split("-", 1)
            pairs.append((wnid, name))
    return pairs


STANFORD_DOGS: list[tuple[str, str]] = _read_classes()
"""(wnid, name) per class, in the file's order, e.g. ("n02099601", "golden_retriever")."""

BREED_NAMES: list[str] = [name for _, name in STANFORD_DOGS]
BREED_WNIDS: list[str] = [wnid for wnid, _ in STANFORD_DOGS]


def breed_wnid(name: str) -> str:
    """The ImageNet synset id of a Stanford Dogs breed name; KeyError if unknown."""
    return dict(zip(BREED_NAMES, BREED_WNIDS, strict=True))[name]


@cache
def imagenet_wnids() -> tuple[str, ...]:
    """ImageNet-1k synset ids by class index (timm's standard order)."""
    from timm.data import ImageNetInfo

    return tuple(ImageNetInfo().label_names())


def imagenet_index(wnid: str) -> int:
    """The ImageNet-1k class index of a synset id; KeyError if not an ImageNet-1k class."""
    index = {w: i for i, w in enumerate(imagenet_wnids())}
    return index[wnid]


@cache
def stanford_dogs_imagenet_indices() -> tuple[int, ...]:
    """ImageNet-1k index of each Stanford Dogs class, in STANFORD_DOGS order."""
    return tuple(imagenet_index(wnid) for wnid in BREED_WNIDS)
