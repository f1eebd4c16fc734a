"""core.imaging: every accepted photo comes out upright and RGB; everything else is refused."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from pawdex.core.errors import UnsupportedImage
from pawdex.core.imaging import (
    ALLOWED_FORMATS,
    ImageInfo,
    decode_for_model,
    make_thumbnail,
    open_image,
    sha256_bytes,
)
from tests.corpus import image_bytes, jpeg_bytes, png_header_only

MAX_PIXELS = 80_000_000
RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def close_to(pixel, expected, tolerance=12):
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=True))


def animated_gif() -> bytes:
    out = io.BytesIO()
    first, second = Image.new("RGB", (40, 30), RED), Image.new("RGB", (40, 30), BLUE)
    first.save(out, format="GIF", save_all=True, append_images=[second], duration=100, loop=0)
    return out.getvalue()


def with_orientation(orientation: int, size=(400, 200)) -> bytes:
    """A JPEG stored ``size`` wide with a red top-left corner and an EXIF orientation tag."""
    img = Image.new("RGB", size, WHITE)
    img.paste(RED, (0, 0, 40, 40))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return jpeg_bytes_of(img, exif=exif.tobytes())


def jpeg_bytes_of(img: Image.Image, **save) -> bytes:
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=95, **save)
    return out.getvalue()


# ---------------------------------------------------------------- accepted formats


@pytest.mark.parametrize(
    ("fmt", "save"),
    [
        ("JPEG", {}),
        ("PNG", {}),
        ("WEBP", {"quality": 90}),
        ("BMP", {}),
        ("TIFF", {}),
        ("GIF", {}),
    ],
)
def test_accepted_formats_open_as_rgb(fmt, save):
    img, info = open_image(image_bytes(fmt, (64, 48), color=(200, 120, 40), **save), MAX_PIXELS)

    assert info.format == fmt
    assert (info.width, info.height) == img.size == (64, 48)
    assert info.mime == Image.MIME[fmt]
    assert img.mode == "RGB"


def test_heic_opens():
    try:
        data = image_bytes("HEIF", (64, 48), quality=90)
    except Exception as exc:  # libheif built without an HEVC encoder
        pytest.skip(f"pillow-heif cannot encode HEIF here: {exc}")
    img, info = open_image(data, MAX_PIXELS)

    assert info == ImageInfo(format="HEIF", width=64, height=48, mime="image/heif")
    assert img.mode == "RGB"


def test_mpo_opens_as_its_first_picture_served_as_jpeg():
    out = io.BytesIO()
    Image.new("RGB", (64, 48), RED).save(
        out, format="MPO", save_all=True, append_images=[Image.new("RGB", (64, 48), BLUE)]
    )
    img, info = open_image(out.getvalue(), MAX_PIXELS)

    assert (info.format, info.mime) == ("MPO", "image/jpeg")
    assert close_to(img.getpixel((10, 10)), RED)


def test_animated_gif_gives_its_first_frame():
    img, info = open_image(animated_gif(), MAX_PIXELS)

    assert info.format == "GIF"
    assert img.mode == "RGB"
    assert close_to(img.getpixel((5, 5)), RED)


def test_allow_list():
    assert set(ALLOWED_FORMATS) == {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "MPO"}


# ---------------------------------------------------------------- modes


def test_cmyk_becomes_rgb():
    img, _ = open_image(image_bytes("JPEG", mode="CMYK", color=(0, 255, 255, 0)), MAX_PIXELS)
    assert img.mode == "RGB"
    assert close_to(img.getpixel((5, 5)), RED, tolerance=20)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_sixteen_bit_grey_is_scaled_not_clipped(fmt):
    img, _ = open_image(image_bytes(fmt, mode="I;16", color=32768), MAX_PIXELS)
    assert img.mode == "RGB"
    assert close_to(img.getpixel((5, 5)), (128, 128, 128), tolerance=1)


def test_palette_transparency_becomes_white():
    palette = Image.new("P", (32, 32), 0)
    palette.putpalette([*RED, *BLUE] + [0] * 762)
    palette.paste(1, (0, 0, 16, 32))
    out = io.BytesIO()
    palette.save(out, format="PNG", transparency=0)
    img, _ = open_image(out.getvalue(), MAX_PIXELS)

    assert img.mode == "RGB"
    assert img.getpixel((4, 4)) == BLUE
    assert img.getpixel((28, 4)) == WHITE  # was transparent red


@pytest.mark.parametrize(("mode", "color"), [("RGBA", (255, 0, 0, 0)), ("LA", (0, 0))])
def test_alpha_is_composited_on_white(mode, color):
    img, _ = open_image(image_bytes("PNG", mode=mode, color=color), MAX_PIXELS)
    assert img.mode == "RGB"
    assert img.getpixel((5, 5)) == WHITE


def test_opaque_rgba_keeps_its_colour():
    img, _ = open_image(image_bytes("PNG", mode="RGBA", color=(0, 0, 255, 255)), MAX_PIXELS)
    assert img.getpixel((5, 5)) == BLUE


# ---------------------------------------------------------------- orientation


def test_exif_orientation_6_turns_the_photo_clockwise():
    img, info = open_image(with_orientation(6), MAX_PIXELS)

    assert (info.width, info.height) == img.size == (200, 400)
    assert close_to(img.getpixel((190, 10)), RED)  # top-left went to the top-right
    assert close_to(img.getpixel((10, 10)), WHITE)


def test_exif_orientation_8_turns_the_photo_anticlockwise():
    img, info = open_image(with_orientation(8), MAX_PIXELS)

    assert (info.width, info.height) == img.size == (200, 400)
    assert close_to(img.getpixel((10, 390)), RED)  # top-left went to the bottom-left
    assert close_to(img.getpixel((10, 10)), WHITE)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_broken_exif_does_not_refuse_the_photo():
    data = jpeg_bytes((64, 48), exif=b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\xff\xff")
    _, info = open_image(data, MAX_PIXELS)
    assert (info.width, info.height) == (64, 48)


# ---------------------------------------------------------------- refused input


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not an image"),
        (b"Hello, I am a text file named dog.jpg\n" * 10, "not an image"),
        (b"<!DOCTYPE html><html><body>dog</body></html>", "not an image"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', "not an image"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "not an image"),
        (bytes(range(256)) * 4, "not an image"),
        (image_bytes("PPM"), "unsupported image format: PPM"),
        (jpeg_bytes((640, 480))[:2000], "truncated or corrupt image"),
        (jpeg_bytes((64, 48))[:200], "truncated or corrupt image"),
        (b"\xff\xd8\xff\xe0" + bytes(200), "truncated or corrupt image"),
        (image_bytes("PNG", (64, 48))[:60], "truncated or corrupt image"),
    ],
    ids=[
        "empty",
        "text",
        "html",
        "svg-xml",
        "svg",
        "binary",
        "ppm",
        "cut-jpeg",
        "cut-jpeg-header",
        "jpeg-magic-only",
        "cut-png",
    ],
)
def test_refused_with_a_clear_message(data, message):
    with pytest.raises(UnsupportedImage, match=message):
        open_image(data, MAX_PIXELS)


def test_pixel_limit_is_checked_before_decoding():
    # The header says 4000x3000 but no real pixels follow: a decode would fail as "truncated".
    with pytest.raises(UnsupportedImage, match="too large: 4000x3000"):
        open_image(png_header_only(4000, 3000), max_pixels=1_000_000)


@pytest.mark.parametrize("side", [10_000, 30_000])
def test_decompression_bombs_are_refused(side):
    with pytest.raises(UnsupportedImage, match="too large"):
        open_image(png_header_only(side, side), MAX_PIXELS)


@pytest.mark.parametrize("chunk", [b"zTXt", b"iCCP"])
def test_a_png_chunk_that_inflates_without_limit_is_refused_as_a_bomb(chunk):
    from tests.hostile import png_with_chunk_bomb

    with pytest.raises(UnsupportedImage, match="metadata is too large"):
        open_image(png_with_chunk_bomb(chunk, seed=1), MAX_PIXELS)


def test_a_photo_at_the_pixel_limit_is_fine():
    _, info = open_image(jpeg_bytes((100, 50)), max_pixels=5000)
    assert (info.width, info.height) == (100, 50)


# ---------------------------------------------------------------- thumbnails, model input


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1600, 1200), (341, 256)),  # shorter side brought to 256
        ((1200, 1600), (256, 341)),
        ((800, 400), (512, 256)),
        ((3000, 500), (512, 85)),  # a panorama: the longer side is capped at twice
        ((200, 150), (200, 150)),  # never enlarged
    ],
)
def test_thumbnail_is_a_jpeg_with_its_shorter_side_at_the_size(size, expected):
    img, _ = open_image(jpeg_bytes(size), MAX_PIXELS)
    thumb = Image.open(io.BytesIO(make_thumbnail(img, 256)))

    assert thumb.format == "JPEG"
    assert thumb.size == expected


def test_reduced_decode_keeps_the_full_size_in_the_info():
    img, info = open_image(jpeg_bytes((1600, 1200)), MAX_PIXELS, min_side=256)
    assert img.size == (400, 300)  # libjpeg decoded at 1/4
    assert (info.width, info.height) == (1600, 1200)

    img, info = open_image(with_orientation(6, size=(1600, 1200)), MAX_PIXELS, min_side=256)
    assert img.width < img.height
    assert (info.width, info.height) == (1200, 1600)


def test_reduced_decode_still_refuses_a_truncated_jpeg():
    with pytest.raises(UnsupportedImage):
        open_image(jpeg_bytes((1600, 1200))[:20_000], MAX_PIXELS, min_side=256)


def test_decode_for_model_uses_the_reduced_jpeg_decode(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(jpeg_bytes((1600, 1200)))
    img = decode_for_model(path, min_side=224)

    assert img.mode == "RGB"
    assert 224 <= min(img.size) < 1200
    assert img.size == (400, 300)  # libjpeg's 1/4 scale


def test_decode_for_model_keeps_orientation(tmp_path):
    path = tmp_path / "turned.jpg"
    path.write_bytes(with_orientation(6, size=(1600, 1200)))
    img = decode_for_model(path, min_side=224)

    assert img.width < img.height
    assert 224 <= img.width < 1200


@pytest.mark.parametrize("mode", ["RGBA", "P"])
def test_decode_for_model_reduces_other_formats(tmp_path, mode):
    path = tmp_path / "photo.png"
    path.write_bytes(image_bytes("PNG", (1600, 1200), mode=mode, color=0 if mode == "P" else RED))
    img = decode_for_model(path, min_side=224)

    assert img.mode == "RGB"
    assert 224 <= min(img.size) < 1200


def test_decode_for_model_refuses_a_damaged_file(tmp_path):
    path = tmp_path / "cut.jpg"
    path.write_bytes(jpeg_bytes((640, 480))[:2000])
    with pytest.raises(UnsupportedImage):
        decode_for_model(path, min_side=224)


def test_sha256_bytes():
    digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_bytes(b"abc") == digest
