"""core.imaging's decode budget: photos whose cost is out of all proportion to their bytes
(a 1 x 40,000 strip, a JPEG of thousands of scans) are refused from the header, per file."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pawdex.core.errors import UnsupportedImage
from pawdex.core.imaging import DecodeBudget, decode_for_model, open_image
from pawdex.core.settings import Settings
from tests.corpus import image_bytes, png_header_only

MAX_PIXELS = 80_000_000
THIN = "one side is more than 10 times the other"
SCANS = "JPEG with more than 100 scans"


def png(size: tuple[int, int]) -> bytes:
    return image_bytes("PNG", size)


def progressive_jpeg(size: tuple[int, int] = (64, 64)) -> bytes:
    return image_bytes("JPEG", size, progressive=True, quality=90)


def many_scan_jpeg(repeats: int = 400, size: tuple[int, int] = (64, 64)) -> bytes:
    """A progressive JPEG whose last scan (with the Huffman table before it) comes again
    ``repeats`` times: libjpeg decodes each repeat, a pass over the whole image (it warns)."""
    data = progressive_jpeg(size)
    tail = data[data.rindex(b"\xff\xc4", 0, data.rindex(b"\xff\xda")) : -2]  # up to EOI
    return data[:-2] + tail * repeats + b"\xff\xd9"


def stored(tmp_path: Path, data: bytes, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------- aspect ratio


@pytest.mark.parametrize("size", [(1, 40_000), (40_000, 1), (100, 1001)])
def test_a_thin_image_is_refused_with_a_clear_message(tmp_path, size):
    data = png(size)
    width, height = size
    with pytest.raises(UnsupportedImage, match=f"image is {width}x{height} pixels: {THIN}"):
        open_image(data, MAX_PIXELS, min_side=256)
    with pytest.raises(UnsupportedImage, match=THIN):
        decode_for_model(stored(tmp_path, data, "thin.png"), min_side=256)


def test_the_aspect_ratio_is_checked_before_decoding(tmp_path):
    # Header only: decoding would fail as "truncated".
    data = png_header_only(1, 40_000)
    with pytest.raises(UnsupportedImage, match=THIN):
        open_image(data, MAX_PIXELS)
    with pytest.raises(UnsupportedImage, match=THIN):
        decode_for_model(stored(tmp_path, data, "thin.png"), min_side=256)


@pytest.mark.parametrize("size", [(800, 100), (100, 800), (1000, 100)])
def test_panoramas_up_to_the_ratio_are_accepted(tmp_path, size):
    img, info = open_image(png(size), MAX_PIXELS, min_side=256)
    assert img.size == (info.width, info.height) == size
    assert decode_for_model(stored(tmp_path, png(size), "pano.png"), min_side=256).size == size


def test_the_ratio_is_a_setting():
    data = png((100, 1500))
    with pytest.raises(UnsupportedImage, match="more than 10 times"):
        open_image(data, MAX_PIXELS)
    img, _ = open_image(data, MAX_PIXELS, budget=DecodeBudget(max_aspect_ratio=20))
    assert img.size == (100, 1500)


# ---------------------------------------------------------------- JPEG scans


def test_a_jpeg_of_many_scans_is_refused_before_decoding(tmp_path):
    data = many_scan_jpeg()
    with pytest.raises(UnsupportedImage, match=SCANS):
        open_image(data, MAX_PIXELS, min_side=256)
    with pytest.raises(UnsupportedImage, match=SCANS):
        decode_for_model(stored(tmp_path, data, "scans.jpg"), min_side=256)
    # A valid JPEG all the same: refused by the budget, not as corrupt.
    img, _ = open_image(data, MAX_PIXELS, budget=DecodeBudget(max_jpeg_scans=10_000))
    assert img.size == (64, 64)


def test_only_the_scans_libjpeg_decodes_count():
    """SOS bytes in metadata (an EXIF thumbnail, ICC) or after EOI (a motion photo's video,
    an MPO's other frames) are never decoded: they do not count."""
    sos_bytes = b"\xff\xda\x00\x02" * 500
    in_metadata = image_bytes("JPEG", (64, 48), progressive=True, icc_profile=sos_bytes)
    after_eoi = progressive_jpeg() + many_scan_jpeg() + sos_bytes
    for data in (in_metadata, after_eoi):
        assert data.count(b"\xff\xda") > 500
        img, _ = open_image(data, MAX_PIXELS)
        assert img.size in ((64, 48), (64, 64))


def test_a_normal_progressive_jpeg_is_accepted(tmp_path):
    data = progressive_jpeg((1600, 1200))
    assert 5 <= data.count(b"\xff\xda") <= 20
    img, info = open_image(data, MAX_PIXELS, min_side=256)
    assert (info.width, info.height) == (1600, 1200)
    assert img.size == (400, 300)
    assert decode_for_model(stored(tmp_path, data, "p.jpg"), min_side=224).size == (400, 300)


# ---------------------------------------------------------------- settings, README


def test_the_budget_defaults_are_the_settings_and_documented():
    settings = Settings()
    assert DecodeBudget.of(settings) == DecodeBudget()
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(PAWDEX_\w+)` \| ([^|]+) \|", readme, re.MULTILINE))
    assert float(rows["PAWDEX_MAX_ASPECT_RATIO"]) == settings.max_aspect_ratio
    assert int(rows["PAWDEX_MAX_JPEG_SCANS"]) == settings.max_jpeg_scans


# ---------------------------------------------------------------- peak memory

PEAK_RSS = textwrap.dedent(
    """
    import io, json, resource, sys
    from pathlib import Path
    from PIL import Image
    from pawdex.core.errors import UnsupportedImage
    from pawdex.core.imaging import decode_for_model, make_thumbnail, open_image
    from pawdex.ml.presets import EvalPreset

    preset = EvalPreset(224)  # resize to 256, then crop 224: the default models' geometry
    out, outcome = Path(sys.argv[1]), {}
    files = {}
    for width, height in ((1, 40_000), (400, 4_000)):
        buf = io.BytesIO()
        Image.new("RGB", (width, height), (120, 90, 60)).save(buf, "PNG")
        files[f"{width}x{height}"] = buf.getvalue()
    # A regression must fail here, not eat the machine: 1 GiB of address space beyond now.
    with open("/proc/self/statm") as fh:
        now = int(fh.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (now + 2**30, now + 2**30))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for name, data in files.items():
        path = out / f"{name}.png"
        path.write_bytes(data)
        try:  # ingest: decode once, thumbnail; classify: the original, the model's resize
            img, _ = open_image(data, 80_000_000, min_side=256)
            make_thumbnail(img, 256)
            outcome[name] = list(preset.resize_crop(decode_for_model(path, 256)).size)
        except UnsupportedImage as exc:
            outcome[name] = str(exc)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    print(json.dumps({"grown_kib": grown, "outcome": outcome}))
    """
)


def test_peak_memory_of_a_thin_image_stays_small(tmp_path):
    """Measured in a fresh interpreter: before the budget, 1 x 40,000 grew it by ~10 GiB."""
    run = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout.splitlines()[-1])
    assert THIN in report["outcome"]["1x40000"]
    assert report["outcome"]["400x4000"] == [224, 224]
    assert report["grown_kib"] < 100 * 1024, report


# ---------------------------------------------------------------- through the real ingest


def test_an_archive_with_pathological_photos_ends_partial(eager_client, tmp_path):
    from tests.factories import jpeg_bytes, make_zip

    entries = {
        "thin.png": png((1, 40_000)),
        "scans.jpg": many_scan_jpeg(),
        "rex.jpg": jpeg_bytes(seed=71),
    }
    path = make_zip(tmp_path / "odd.zip", entries)
    with path.open("rb") as fh:
        response = eager_client.post("/v1/archives", files={"file": ("odd.zip", fh)})
    job = eager_client.get(f"/v1/jobs/{response.json()['job_id']}").json()

    assert (job["status"], job["total"], job["done"], job["failed"]) == ("partial", 3, 1, 2)
    errors = {e["name"]: e["error"] for e in job["errors"]}
    assert re.search(THIN, errors["thin.png"]) and re.search(SCANS, errors["scans.jpg"])
    animals = eager_client.get("/v1/photos", params={"job_id": job["id"]}).json()["items"]
    assert [a["filename"] for a in animals] == ["rex.jpg"]
