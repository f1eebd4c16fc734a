"""The Stanford Dogs breeds (``pawdex.taxonomy``) and their place among the ImageNet-1k classes.

The ImageNet look-ups import timm's label table on first use.
"""

from __future__ import annotations

from functools import cache

from pawdex.taxonomy import BREED_NAMES, BREED_WNIDS, STANFORD_DOGS, breed_wnid

__all__ = [
    "BREED_NAMES",
    "BREED_WNIDS",
    "IMAGENET_DOG_INDICES",
    "IMAGENET_FELID_INDICES",
    "STANFORD_DOGS",
    "breed_wnid",
    "imagenet_index",
    "imagenet_wnids",
    "stanford_dogs_imagenet_indices",
]

# Contiguous ImageNet-1k index ranges (in timm's standard class order).
# 151..268 are the domestic dogs (Chihuahua … Mexican hairless); 269..272 are wolves and the
# coyote, left out; 273..275 are dingo, dhole and African hunting dog (in Stanford Dogs).
IMAGENET_DOG_INDICES: tuple[int, ...] = (*range(151, 269), 273, 274, 275)
# The whole cat family: the domestic cats (281..285: tabby, tiger cat, Persian, Siamese,
# Egyptian cat) plus cougar, lynx, leopard, … cheetah (286..293).
# ImageNet models often call a house cat "lynx" or "cougar"; in a shelter those are cats.
IMAGENET_FELID_INDICES: tuple[int, ...] = tuple(range(281, 294))


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
