"""Augmentation presets: names, shapes, what runs at eval, and the preview grid."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from pawdex.ml.augment import (
    OPTIONS,
    eval_transform,
    parse_preset,
    save_preset_grid,
    train_transform,
)
from pawdex.ml.data.datasets import open_rgb

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
RANDOM_ONLY = ("blur", "rotate", "flip", "affine", "crop", "trivialaugment")


@pytest.fixture(scope="module")
def photos(labelled_photos):
    dogs = [p.path for p in labelled_photos if p.is_dog]
    return dogs[:2]


@pytest.fixture(scope="module")
def photo(photos):
    return open_rgb(photos[0])


def test_parse_preset():
    assert parse_preset("trivialaugment+gray") == ["trivialaugment", "gray"]
    assert parse_preset(" Flip + ROTATE+flip ") == ["flip", "rotate"]
    assert parse_preset("none") == parse_preset("") == ["none"]
    assert parse_preset("none+gray") == ["gray"]
    with pytest.raises(ValueError, match=r"'sepia'.*known: none, gray, autocontrast"):
        parse_preset("flip+sepia")


def test_every_option_is_described():
    assert set(OPTIONS) == {
        "none", "gray", "autocontrast", "equalize", "standardize", "blur", "rotate", "flip",
        "affine", "crop", "trivialaugment",
    }  # fmt: skip
    assert all(OPTIONS.values())


@pytest.mark.parametrize("option", list(OPTIONS))
def test_every_option_in_train_and_eval(photo, option):
    for make in (train_transform, eval_transform):
        x = make(option, 64, MEAN, STD)(photo)
        assert (type(x), x.dtype, tuple(x.shape)) == (torch.Tensor, torch.float32, (3, 64, 64))
        assert torch.isfinite(x).all()


@pytest.mark.parametrize("size", [224, 299])
def test_study_sizes(photo, size):
    spec = "crop+flip+trivialaugment"
    assert train_transform(spec, size, MEAN, STD)(photo).shape == (3, size, size)
    assert eval_transform(spec, size, MEAN, STD)(photo).shape == (3, size, size)


def test_eval_is_deterministic_and_skips_random_ops(photo):
    torch.manual_seed(0)
    plain = eval_transform("none", 64, MEAN, STD)(photo)
    for option in RANDOM_ONLY:
        transform = eval_transform(option, 64, MEAN, STD)
        assert torch.equal(transform(photo), plain)
    every = "+".join(OPTIONS)
    transform = eval_transform(every, 64, MEAN, STD)
    assert torch.equal(transform(photo), transform(photo))


def test_deterministic_preprocessing_applies_at_eval(photo):
    plain = eval_transform("none", 64, MEAN, STD)(photo)
    for option in ("gray", "autocontrast", "equalize", "standardize"):
        assert not torch.equal(eval_transform(option, 64, MEAN, STD)(photo), plain), option
    gray = eval_transform("gray", 64, (0.5,) * 3, (0.5,) * 3)(photo)
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])


def test_train_draws_differ(photo):
    transform = train_transform("crop+flip+rotate", 64, MEAN, STD)
    torch.manual_seed(0)
    assert not torch.equal(transform(photo), transform(photo))


@pytest.mark.parametrize("make", [train_transform, eval_transform])
def test_standardize_gives_zero_mean_unit_std_per_image(photo, make):
    x = make("standardize+trivialaugment", 64, MEAN, STD)(photo)
    assert abs(x.mean().item()) < 1e-4
    assert abs(x.std(unbiased=False).item() - 1) < 1e-3
    flat = make("standardize", 32, MEAN, STD)(Image.new("RGB", (50, 40), (90, 90, 90)))
    assert torch.isfinite(flat).all() and flat.abs().max() == 0


def test_save_preset_grid(tmp_path, photos):
    out = save_preset_grid("trivialaugment+gray", photos, tmp_path / "grid" / "p.png", size=96)
    assert out == tmp_path / "grid" / "p.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 20_000
    with Image.open(out) as img:
        width, height = img.size
    assert width > height > 300  # 2 rows of 5 cells at 100 dpi, plus the title
