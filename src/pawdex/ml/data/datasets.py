"""Training data: which photos, which labels, which split; and a torch Dataset over them.

Two layouts: Stanford Dogs as it unpacks (with its boxes and official train/test lists)
and any ImageFolder tree (``root/<class>/<photo>``). Both give a ``DatasetSplit`` whose
labels index ``classes``, re-indexed 0..k-1 after a breed selection, so a model trained on
"3 breeds" (as the study did) has a 3-way head.
"""

from __future__ import annotations

import difflib
import random
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pillow_heif
import torch.utils.data
from PIL import Image, ImageOps

from pawdex.formats import PHOTO_EXTENSIONS
from pawdex.ml.data import stanford_dogs as sd

pillow_heif.register_heif_opener()  # HEIC photos, as the service accepts them

STANFORD_DOGS = "stanford-dogs"
IMAGEFOLDER = "imagefolder"


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int
    box: tuple[int, int, int, int] | None = None  # xmin, ymin, xmax, ymax from the VOC XML


@dataclass
class DatasetSplit:
    classes: list[str]
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]  # the official test list for Stanford Dogs; [] otherwise
    layout: str  # STANFORD_DOGS or IMAGEFOLDER
    # Provenance for the model card; defaults keep the five fields above enough to build one.
    seed: int = 0
    val_fraction: float = 0.2
    source: str = ""  # where the split came from: a list file, or "stratified"
    root: Path | None = None
    wnids: list[str] = field(default_factory=list)  # per class, Stanford Dogs only

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary for the model card: sizes per split and per class."""
        splits = {"train": self.train, "val": self.val, "test": self.test}
        per_class = {name: dict.fromkeys(splits, 0) for name in self.classes}
        for split, samples in splits.items():
            for sample in samples:
                per_class[self.classes[sample.label]][split] += 1
        return {
            "layout": self.layout,
            "root": str(self.root) if self.root else None,
            "source": self.source,
            "seed": self.seed,
            "val_fraction": self.val_fraction,
            "num_classes": len(self.classes),
            "classes": list(self.classes),
            "wnids": list(self.wnids),
            "counts": {split: len(samples) for split, samples in splits.items()},
            "per_class": per_class,
        }


def load_dataset(
    root: Path,
    breeds: str | None = None,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    official_split: bool = True,
) -> DatasetSplit:
    """Read a Stanford Dogs tree (``root/Images`` exists) or an ImageFolder tree.

    ``breeds`` selects classes (see ``parse_breeds``). Stanford Dogs with its official lists
    (and ``official_split``): train = the train list minus a stratified validation part,
    test = the test list, images in neither list are ignored. Otherwise train/val is a
    stratified split of every image and test is empty.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    if sd.is_stanford_dogs(root):
        return _load_stanford(root, breeds, val_fraction, seed, official_split)
    return _load_imagefolder(root, breeds, val_fraction, seed)


def _load_stanford(
    root: Path, breeds: str | None, val_fraction: float, seed: int, official_split: bool
) -> DatasetSplit:
    folders = sorted(
        (d.name for d in (root / sd.IMAGES_DIR).iterdir() if d.is_dir() and _visible(d)),
        key=sd.split_folder_name,
    )
    pairs = [sd.split_folder_name(name) for name in folders]
    names = [name for _, name in pairs]
    selected = parse_breeds(breeds, names)
    label_of = {folders[names.index(name)]: label for label, name in enumerate(selected)}

    def sample(relative: str) -> Sample:
        folder, filename = relative.split("/", 1)
        annotation = root / sd.ANNOTATION_DIR / folder / Path(filename).stem
        return Sample(
            root / sd.IMAGES_DIR / relative, label_of[folder], sd.read_voc_box(annotation)
        )

    lists = sd.find_split_lists(root) if official_split else None
    if lists is None:
        every = [
            f"{folder}/{p.name}"
            for folder in label_of
            for p in _images_in(root / sd.IMAGES_DIR / folder)
        ]
        train, val = stratified_split([sample(r) for r in every], val_fraction, seed)
        test: list[Sample] = []
        source = "stratified"
    else:
        train_list, test_list = (
            [r for r in sd.read_split_list(path) if r.split("/", 1)[0] in label_of]
            for path in lists
        )
        _check_exist(root / sd.IMAGES_DIR, train_list + test_list, lists)
        train, val = stratified_split([sample(r) for r in train_list], val_fraction, seed)
        test = [sample(r) for r in test_list]
        source = " + ".join(path.name for path in lists)
    wnid_of = {name: wnid for wnid, name in pairs}
    return DatasetSplit(
        classes=selected,
        train=train,
        val=val,
        test=test,
        layout=STANFORD_DOGS,
        seed=seed,
        val_fraction=val_fraction,
        source=source,
        root=root,
        wnids=[wnid_of[name] for name in selected],
    )


def _check_exist(images: Path, relatives: list[str], lists: tuple[Path, Path]) -> None:
    # A list naming missing files means a partial download: say so rather than train on less.
    missing = [r for r in relatives if not (images / r).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} image(s) named in {lists[0].name}/{lists[1].name} are missing "
            f"under {images}, e.g. {', '.join(missing[:3])}"
        )


def _load_imagefolder(
    root: Path, breeds: str | None, val_fraction: float, seed: int
) -> DatasetSplit:
    # Folders without a photo directly inside (an __MACOSX, a folder of folders) are no class.
    folders = sorted(d for d in root.iterdir() if d.is_dir() and _visible(d) and _images_in(d))
    if not folders:
        raise ValueError(f"no class folders with images under {root} (expected root/<class>/*)")
    selected = parse_breeds(breeds, [d.name for d in folders])
    samples = [
        Sample(path, label)
        for label, name in enumerate(selected)
        for path in _images_in(root / name)
    ]
    train, val = stratified_split(samples, val_fraction, seed)
    return DatasetSplit(
        classes=selected,
        train=train,
        val=val,
        test=[],
        layout=IMAGEFOLDER,
        seed=seed,
        val_fraction=val_fraction,
        source="stratified",
        root=root,
    )


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _images_in(folder: Path) -> list[Path]:
    """Photos directly in ``folder`` (not nested), by extension, hidden files skipped."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and _visible(p) and p.suffix.lower() in PHOTO_EXTENSIONS
    )


def _normalise(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name).casefold()


def parse_breeds(spec: str | None, available: Sequence[str]) -> list[str]:
    """The classes a ``--breeds`` value selects, in dataset order.

    None or "" → all; "N" → the first N (the study used 3, 4, 20 and 120); otherwise a
    comma list of names, matched case-insensitively and ignoring ``-``/``_``/space, or
    ImageNet wnids (``n02085620``). Unknown names raise ValueError with close matches.
    """
    available = list(available)
    if spec is None or not spec.strip():
        return available
    if spec.strip().isdigit():
        count = int(spec)
        if not 1 <= count <= len(available):
            raise ValueError(f"--breeds {count}: choose between 1 and {len(available)} classes")
        return available[:count]
    aliases = _aliases(available)
    wanted, unknown = set(), []
    for name in (part.strip() for part in spec.split(",")):
        if name:
            key = _normalise(name)
            if key in aliases:
                wanted.add(aliases[key])
            else:
                unknown.append(name)
    if unknown:
        raise ValueError("; ".join(_unknown_message(name, aliases) for name in unknown))
    if not wanted:
        raise ValueError(f"--breeds {spec!r} names no class")
    return [name for name in available if name in wanted]


def _aliases(available: Sequence[str]) -> dict[str, str]:
    """Normalised spelling or wnid → class name."""
    from pawdex.ml.classes import BREED_NAMES, breed_wnid

    aliases: dict[str, str] = {}
    for name in available:
        aliases.setdefault(_normalise(name), name)
        match = re.match(r"^(n\d{8})(?:-(.+))?$", name)  # ImageFolder of "wnid-Name" folders
        if match:
            aliases.setdefault(match.group(1), name)
            if match.group(2):
                aliases.setdefault(_normalise(match.group(2)), name)
        elif name in BREED_NAMES:
            aliases.setdefault(breed_wnid(name), name)
    return aliases


def _unknown_message(name: str, aliases: dict[str, str]) -> str:
    close = difflib.get_close_matches(_normalise(name), list(aliases), n=3, cutoff=0.6)
    names = list(dict.fromkeys(aliases[key] for key in close))
    if names:
        return f"unknown breed {name!r}: did you mean {', '.join(map(repr, names))}?"
    return f"unknown breed {name!r} (none of the {len(set(aliases.values()))} classes is close)"


def stratified_split(
    samples: Sequence[Sample], val_fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """(train, val), each class split on its own, in the input's order.

    The same seed gives the same split whatever order the samples come in (each class is
    shuffled from its paths in sorted order, with its own RNG), so adding a class does not
    reshuffle the others. Every class keeps at least one sample in train; one with two or
    more gives at least one to val when ``val_fraction`` > 0.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    by_class: dict[int, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_class[sample.label].append(sample)
    val_ids: set[int] = set()
    for label, members in by_class.items():
        members = sorted(members, key=lambda s: str(s.path))
        random.Random(f"{seed}:{label}").shuffle(members)
        count = round(len(members) * val_fraction)
        if val_fraction > 0 and len(members) >= 2:
            count = min(max(count, 1), len(members) - 1)
        val_ids.update(id(s) for s in members[:count])
    train = [s for s in samples if id(s) not in val_ids]
    val = [s for s in samples if id(s) in val_ids]
    return train, val


def open_rgb(path: Path) -> Image.Image:
    """A photo as the camera meant it: EXIF orientation applied, RGB."""
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        return img.convert("RGB")


def crop_box(img: Image.Image, box: tuple[int, int, int, int] | None) -> Image.Image:
    """Crop to ``box`` clipped to the image; the whole image if the box is None or empty."""
    if box is None:
        return img
    xmin, ymin = max(0, box[0]), max(0, box[1])
    xmax, ymax = min(img.width, box[2]), min(img.height, box[3])
    if xmax <= xmin or ymax <= ymin:
        return img
    return img.crop((xmin, ymin, xmax, ymax))


class PhotoDataset(torch.utils.data.Dataset):
    """(transformed photo, label) per sample, decoded with Pillow.

    ``crop_to_box`` crops to the dog's box first when the sample has one (the study's
    "crop to the annotation" preprocessing); boxes are taken in the photo's displayed
    orientation, which is the stored one for Stanford Dogs.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: Callable[[Image.Image], Any] | None = None,
        crop_to_box: bool = False,
    ) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.crop_to_box = crop_to_box

    @property
    def targets(self) -> list[int]:
        return [s.label for s in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        sample = self.samples[index]
        img = open_rgb(sample.path)
        if self.crop_to_box:
            img = crop_box(img, sample.box)
        return (self.transform(img) if self.transform else img), sample.label
