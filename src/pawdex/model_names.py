"""The names of the models pawdex ships, stdlib-only so the settings read them without torch.

``pawdex.ml.registry`` builds the classifiers under these names; ``pawdex.core.settings``
serves ``DEFAULT_MODEL`` until a model is activated.
"""

from __future__ import annotations

DEFAULT_MODEL = "lite1-imagenet-dogs"
"""Served by default: Lite1 won the default-model study (docs/default-model.md)."""

FAST_MODEL = "lite0-imagenet-dogs"
"""The fastest shipped model (about 1.6x Lite1): what the tests and the bench harness load."""


def imagenet_dogs_name(backbone: str) -> str:
    """The zero-training classifier's name over an ImageNet backbone:
    ``efficientnet_lite1`` → ``lite1-imagenet-dogs``."""
    return f"{backbone.removeprefix('efficientnet_')}-imagenet-dogs"
