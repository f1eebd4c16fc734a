"""The Stanford Dogs layout on disk: folder names, VOC boxes, the official split lists.

Pure readers (paths and tuples, no torch): ``ml.data.datasets`` turns them into samples.
The real archive unpacks to ``Images/<wnid>-<Name>/<wnid>_<n>.jpg``, the boxes to
``Annotation/<wnid>-<Name>/<wnid>_<n>`` (Pascal VOC XML without an extension) and the
official split to ``train_list.mat`` / ``test_list.mat`` (MATLAB v5).
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from pathlib import Path

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]

IMAGES_DIR = "Images"
ANNOTATION_DIR = "Annotation"
LIST_NAMES = {"train": "train_list", "test": "test_list"}

_FOLDER = re.compile(r"^(n\d{8})-(.+)$")


def is_stanford_dogs(root: Path) -> bool:
    return (root / IMAGES_DIR).is_dir()


def split_folder_name(name: str) -> tuple[str, str]:
    """``"n02085620-Chihuahua"`` → ``("n02085620", "Chihuahua")``; ValueError otherwise."""
    match = _FOLDER.match(name)
    if match is None:
        raise ValueError(f"not a Stanford Dogs class folder (wnid-Name): {name!r}")
    return match.group(1), match.group(2)


def read_voc_box(path: Path) -> Box | None:
    """The union of all object boxes in a VOC annotation, or None when there is none.

    The union rather than the largest box: the label is per photo and the few photos with
    several objects show several dogs of the same breed, so cropping to one would cut
    the others in half. A missing, unreadable or box-less file gives None (the photo stays
    usable uncropped); an unreadable one is logged.
    """
    if not path.is_file():
        return None
    try:
        boxes = [_bndbox(b) for b in ET.parse(path).getroot().iter("bndbox")]
    except (ET.ParseError, ValueError, TypeError) as exc:
        log.warning("event=bad_annotation path=%s error=%s", path, exc)
        return None
    boxes = [b for b in boxes if b[2] > b[0] and b[3] > b[1]]
    if not boxes:
        return None
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _bndbox(element: ET.Element) -> Box:
    # Some VOC writers store floats ("12.0"); the coordinates are pixels either way.
    def coord(tag: str) -> int:
        return int(float(element.findtext(tag)))

    return max(0, coord("xmin")), max(0, coord("ymin")), coord("xmax"), coord("ymax")


def find_split_lists(root: Path) -> tuple[Path, Path] | None:
    """The official (train, test) list files: the ``.mat`` pair, else the ``.txt`` pair."""
    for ext in (".mat", ".txt"):
        train, test = (root / f"{LIST_NAMES[k]}{ext}" for k in ("train", "test"))
        if train.is_file() and test.is_file():
            return train, test
        if train.is_file() or test.is_file():
            raise ValueError(f"{root}: found only one of {train.name} and {test.name}")
    return None


def read_split_list(path: Path) -> list[str]:
    """Image paths relative to ``Images/`` (``"n02085620-Chihuahua/n02085620_10074.jpg"``)."""
    if path.suffix == ".mat":
        from scipy.io import loadmat

        # file_list is an (N, 1) cell array: each cell a 1-element array holding the string.
        cells = loadmat(path)["file_list"]
        entries = [str(cell[0]) if len(cell) else "" for cell in cells.ravel()]
    else:
        entries = path.read_text(encoding="utf-8").splitlines()
    entries = [e.strip().replace("\\", "/").removeprefix(f"{IMAGES_DIR}/") for e in entries]
    return [e for e in entries if e]
