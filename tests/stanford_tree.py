"""A small Stanford Dogs tree, in the real archive's exact layout, built from the real photos.

Use it wherever code must read Stanford Dogs without the 750 MB download::

    from tests.stanford_tree import build_stanford_tree, pick_breeds

    def test_something(tmp_path, labelled_photos):
        root = build_stanford_tree(tmp_path / "dogs", labelled_photos, breeds=3, lists="mat")
        split = load_dataset(root)      # split.classes == pick_breeds(labelled_photos, 3)

The tree (``<wnid>`` and ``<Name>`` as in ``ml.classes``)::

    root/Images/<wnid>-<Name>/<wnid>_<1000+i>.jpg
    root/Annotation/<wnid>-<Name>/<wnid>_<1000+i>     VOC XML, one box: the central 80 %
    root/train_list.mat, root/test_list.mat            lists="mat" (scipy.io.savemat, as the
                                                       real files: file_list, annotation_list,
                                                       labels 1-based over the 120 classes)
    root/train_list.txt, root/test_list.txt            lists="txt": one relative path a line
                                                       lists="none": no list files

Per breed, the last ``test_per_breed`` photos (default a third) go to the test list. Photos
are re-encoded as JPEG into ``root`` (never into the repository); a breed with fewer photos
than ``per_breed`` reuses them, mirrored or cropped, so each file is distinct.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image, ImageOps
from scipy.io import savemat

from pawdex.ml.classes import BREED_NAMES, BREED_WNIDS, breed_wnid

BOX_FRACTION = 0.8  # the generated box: the central 80 % of each side


class _Photo(Protocol):  # tests.conftest.LabelledPhoto
    path: Path
    breed: str


def pick_breeds(photos: Sequence[_Photo], breeds: int) -> list[str]:
    """The ``breeds`` Stanford Dogs breeds with the most photos, in wnid (dataset) order."""
    counts = Counter(p.breed for p in photos if p.breed in BREED_NAMES)
    ranked = sorted(counts, key=lambda name: (-counts[name], name))
    if len(ranked) < breeds:
        raise ValueError(f"only {len(ranked)} Stanford Dogs breeds among the photos")
    return sorted(ranked[:breeds], key=breed_wnid)


def central_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The box the builder writes for an image of this size (xmin, ymin, xmax, ymax)."""
    margin_x = round(width * (1 - BOX_FRACTION) / 2)
    margin_y = round(height * (1 - BOX_FRACTION) / 2)
    return margin_x, margin_y, width - margin_x, height - margin_y


def build_stanford_tree(
    root: Path,
    photos: Sequence[_Photo],
    breeds: int = 4,
    per_breed: int = 6,
    lists: str = "mat",
    *,
    test_per_breed: int | None = None,
    max_side: int = 320,
) -> Path:
    """Write the tree under ``root`` (created) and return ``root``; see the module doc."""
    if lists not in ("mat", "txt", "none"):
        raise ValueError(f"lists must be 'mat', 'txt' or 'none', not {lists!r}")
    n_test = per_breed // 3 if test_per_breed is None else test_per_breed
    if not 0 <= n_test < per_breed:
        raise ValueError(f"test_per_breed must leave train photos: {n_test} of {per_breed}")
    root = Path(root)
    entries: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
    for name in pick_breeds(photos, breeds):
        wnid = breed_wnid(name)
        folder = f"{wnid}-{name}"
        sources = sorted((p.path for p in photos if p.breed == name), key=str)
        for i in range(per_breed):
            stem = f"{wnid}_{1000 + i}"
            img = _variant(sources[i % len(sources)], i // len(sources), max_side)
            _save(img, root / "Images" / folder / f"{stem}.jpg")
            _write_voc(root / "Annotation" / folder / stem, folder, stem, name, img.size)
            split = "test" if i >= per_breed - n_test else "train"
            entries[split].append((f"{folder}/{stem}.jpg", BREED_WNIDS.index(wnid) + 1))
    for split, rows in entries.items():
        if lists == "mat":
            _write_mat(root / f"{split}_list.mat", rows)
        elif lists == "txt":
            text = "".join(f"{path}\n" for path, _ in rows)
            (root / f"{split}_list.txt").write_text(text, encoding="utf-8")
    return root


def _variant(path: Path, repeat: int, max_side: int) -> Image.Image:
    with Image.open(path) as opened:
        img = ImageOps.exif_transpose(opened).convert("RGB")
    img.thumbnail((max_side, max_side))
    if repeat % 2 == 1:
        img = ImageOps.mirror(img)
    if repeat >= 2:  # a further reuse: trim the borders a little more each time
        inset = min(0.04 * (repeat // 2), 0.3)
        w, h = img.size
        img = img.crop(
            (round(w * inset), round(h * inset), w - round(w * inset), h - round(h * inset))
        )
    return img


def _save(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG", quality=90)


def _write_voc(path: Path, folder: str, stem: str, name: str, size: tuple[int, int]) -> None:
    xmin, ymin, xmax, ymax = central_box(*size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"""<annotation>
\t<folder>{escape(folder)}</folder>
\t<filename>{escape(stem)}</filename>
\t<source><database>ImageNet database</database></source>
\t<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>
\t<segment>0</segment>
\t<object>
\t\t<name>{escape(name)}</name>
\t\t<pose>Unspecified</pose>
\t\t<truncated>0</truncated>
\t\t<difficult>0</difficult>
\t\t<bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox>
\t</object>
</annotation>
""",
        encoding="utf-8",
    )


def _write_mat(path: Path, rows: list[tuple[str, int]]) -> None:
    def cells(strings: list[str]) -> np.ndarray:
        # MATLAB cell array (N, 1): each cell a 1-element char array, as in the real files.
        array = np.empty((len(strings), 1), dtype=object)
        for i, text in enumerate(strings):
            array[i, 0] = np.array([text])
        return array

    files = [relative for relative, _ in rows]
    savemat(
        path,
        {
            "file_list": cells(files),
            "annotation_list": cells([f.removesuffix(".jpg") for f in files]),
            "labels": np.array([[float(label)] for _, label in rows]).reshape(-1, 1),
        },
    )
