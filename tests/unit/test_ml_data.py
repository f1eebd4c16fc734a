"""Reading training data: Stanford Dogs (official lists or not), ImageFolder, splits, boxes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from pawdex.ml.augment import eval_transform, train_transform
from pawdex.ml.classes import breed_wnid
from pawdex.ml.data import (
    DatasetSplit,
    PhotoDataset,
    Sample,
    load_dataset,
    parse_breeds,
    stratified_split,
)
from tests.stanford_tree import build_stanford_tree, central_box, pick_breeds

BREEDS, PER_BREED, TEST_PER_BREED = 4, 6, 2  # the builder's defaults: 4 train + 2 test a breed


@pytest.fixture(scope="module", params=["mat", "txt", "none"])
def tree(request, tmp_path_factory, labelled_photos):
    """(root, lists) for each list format; read-only, shared by the module's tests."""
    lists = request.param
    root = tmp_path_factory.mktemp(f"dogs-{lists}")
    return build_stanford_tree(root, labelled_photos, lists=lists), lists


@pytest.fixture(scope="module")
def mat_tree(tmp_path_factory, labelled_photos):
    return build_stanford_tree(tmp_path_factory.mktemp("dogs"), labelled_photos, lists="mat")


def relative(sample: Sample) -> str:
    return f"{sample.path.parent.name}/{sample.path.name}"


def all_samples(split: DatasetSplit) -> list[Sample]:
    return split.train + split.val + split.test


# --- Stanford Dogs layout ---------------------------------------------------------------


def test_tree_has_the_real_layout(mat_tree, labelled_photos):
    name = pick_breeds(labelled_photos, BREEDS)[0]
    folder = f"{breed_wnid(name)}-{name}"
    assert (mat_tree / "Images" / folder / f"{breed_wnid(name)}_1000.jpg").is_file()
    assert (mat_tree / "Annotation" / folder / f"{breed_wnid(name)}_1000").is_file()
    assert {p.name for p in mat_tree.glob("*_list.mat")} == {"train_list.mat", "test_list.mat"}


def test_stanford_dogs_classes_labels_and_split(tree, labelled_photos):
    root, lists = tree
    split = load_dataset(root, val_fraction=0.25, seed=0)

    assert split.layout == "stanford-dogs"
    assert split.classes == pick_breeds(labelled_photos, BREEDS)  # wnid order, names as in ml
    assert split.wnids == sorted(split.wnids) == [breed_wnid(n) for n in split.classes]
    every = all_samples(split)
    assert len(every) == BREEDS * PER_BREED == len({s.path for s in every})
    for sample in every:
        assert split.classes[sample.label] in sample.path.parent.name
    if lists == "none":
        assert split.test == []
        assert split.source == "stratified"
    else:
        official_test = {f"{d}/{f}" for d, f in _list_file_entries(root, lists)}
        assert {relative(s) for s in split.test} == official_test
        assert len(split.test) == BREEDS * TEST_PER_BREED
        assert not official_test & {relative(s) for s in split.train + split.val}
        assert split.source == f"train_list.{lists} + test_list.{lists}"
    assert {s.label for s in split.val} == set(range(BREEDS))  # every class in val


def _list_file_entries(root, lists):
    from pawdex.ml.data.stanford_dogs import read_split_list

    return [entry.split("/") for entry in read_split_list(root / f"test_list.{lists}")]


def test_official_split_false_ignores_the_lists(mat_tree):
    split = load_dataset(mat_tree, official_split=False)
    assert split.test == []
    assert len(split.train) + len(split.val) == BREEDS * PER_BREED


def test_describe_is_a_model_card_summary(mat_tree):
    card = load_dataset(mat_tree, seed=3, val_fraction=0.25).describe()
    assert card["layout"] == "stanford-dogs"
    assert card["seed"] == 3 and card["val_fraction"] == 0.25
    assert card["counts"] == {"train": 12, "val": 4, "test": 8}
    assert sum(c["test"] for c in card["per_class"].values()) == 8
    assert card["source"] == "train_list.mat + test_list.mat"
    assert card["num_classes"] == len(card["classes"]) == BREEDS


def test_missing_listed_image_is_reported(tmp_path, labelled_photos):
    root = build_stanford_tree(tmp_path, labelled_photos, breeds=2, lists="txt")
    next((root / "Images").rglob("*.jpg")).unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        load_dataset(root)


# --- breed selection ----------------------------------------------------------------------


def test_breeds_by_number_keeps_dataset_order_and_reindexes(mat_tree):
    everything = load_dataset(mat_tree)
    split = load_dataset(mat_tree, "2")
    assert split.classes == everything.classes[:2]
    assert {s.label for s in all_samples(split)} == {0, 1}
    assert len(all_samples(split)) == 2 * PER_BREED


def test_breeds_by_name_variant_and_wnid(mat_tree):
    classes = load_dataset(mat_tree).classes
    last, first = classes[-1], classes[0]
    # an upper-cased, space-separated spelling of the last and the wnid of the first
    spec = f"{last.upper().replace('_', ' ')}, {breed_wnid(first)}"
    split = load_dataset(mat_tree, spec)
    assert split.classes == [first, last]  # dataset order, not the spec's
    labels = {split.classes[s.label] for s in all_samples(split)}
    assert labels == {first, last}
    for sample in all_samples(split):
        assert sample.path.parent.name.endswith(split.classes[sample.label])


def test_parse_breeds_spellings():
    available = ["Chihuahua", "Shih-Tzu", "golden_retriever", "German_short-haired_pointer"]
    assert parse_breeds(None, available) == available
    assert parse_breeds("", available) == available
    assert parse_breeds("3", available) == available[:3]
    got = parse_breeds("german shorthaired pointer,shih_tzu, GOLDEN-retriever", available)
    assert got == ["Shih-Tzu", "golden_retriever", "German_short-haired_pointer"]
    assert parse_breeds("n02085620", available) == ["Chihuahua"]


def test_parse_breeds_errors_name_close_matches():
    available = ["Chihuahua", "golden_retriever", "Labrador_retriever"]
    with pytest.raises(ValueError, match=r"'golden retreiver'.*did you mean 'golden_retriever'"):
        parse_breeds("Chihuahua, golden retreiver", available)
    with pytest.raises(ValueError, match="unknown breed 'zzz'"):
        parse_breeds("zzz", available)
    for count in ("0", "4"):
        with pytest.raises(ValueError, match="between 1 and 3"):
            parse_breeds(count, available)


def test_parse_breeds_accepts_wnid_folder_names():
    available = ["n02085620-Chihuahua", "n02099601-golden_retriever"]
    assert parse_breeds("golden retriever,n02085620", available) == available


# --- stratified split ---------------------------------------------------------------------


def synthetic(sizes: dict[int, int]) -> list[Sample]:
    """``n`` fake samples per label (paths are never opened by the split)."""
    return [
        Sample(Path(f"/c{label}/{i:03d}.jpg"), label)
        for label, n in sizes.items()
        for i in range(n)
    ]


def test_stratified_split_properties():
    samples = synthetic({0: 1, 1: 2, 2: 5, 3: 50})
    train, val = stratified_split(samples, 0.2, seed=7)
    assert sorted(map(id, train + val)) == sorted(map(id, samples))
    assert not set(map(id, train)) & set(map(id, val))
    per_class = {label: sum(s.label == label for s in val) for label in range(4)}
    assert per_class == {0: 0, 1: 1, 2: 1, 3: 10}
    assert {s.label for s in train} == {0, 1, 2, 3}
    assert train == [s for s in samples if s in train]  # the input's order is kept


def test_stratified_split_is_deterministic_and_order_independent():
    samples = synthetic({0: 30, 1: 30})
    first = stratified_split(samples, 0.3, seed=1)
    assert stratified_split(samples, 0.3, seed=1) == first
    shuffled_val = stratified_split(list(reversed(samples)), 0.3, seed=1)[1]
    assert {s.path for s in shuffled_val} == {s.path for s in first[1]}
    assert stratified_split(samples, 0.3, seed=2)[1] != first[1]


def test_stratified_split_edges():
    samples = synthetic({0: 3, 1: 4})
    assert stratified_split(samples, 0.0, seed=0) == (samples, [])
    train, val = stratified_split(samples, 0.9, seed=0)
    assert {s.label for s in train} == {0, 1}  # one of each class stays in train
    assert len(val) == 5
    with pytest.raises(ValueError, match="val_fraction"):
        stratified_split(samples, 1.0, seed=0)


# --- boxes and PhotoDataset ---------------------------------------------------------------


def test_boxes_are_read_and_crop_to_box_crops(mat_tree):
    sample = load_dataset(mat_tree).train[0]
    with Image.open(sample.path) as img:
        assert sample.box == central_box(*img.size)
    whole, label = PhotoDataset([sample])[0]
    cropped, _ = PhotoDataset([sample], crop_to_box=True)[0]
    assert label == sample.label
    assert cropped.size == (sample.box[2] - sample.box[0], sample.box[3] - sample.box[1])
    assert cropped.size != whole.size


def test_several_objects_give_the_union_box_and_missing_gives_none(tmp_path, labelled_photos):
    root = build_stanford_tree(tmp_path, labelled_photos, breeds=1, per_breed=3, lists="none")
    annotations = sorted(p for p in (root / "Annotation").rglob("*") if p.is_file())
    annotations[0].write_text(
        "<annotation><object><name>a</name><bndbox><xmin>10</xmin><ymin>20</ymin>"
        "<xmax>50</xmax><ymax>60</ymax></bndbox></object><object><name>b</name><bndbox>"
        "<xmin>30.0</xmin><ymin>5</ymin><xmax>90</xmax><ymax>40</ymax></bndbox></object>"
        "</annotation>"
    )
    annotations[1].unlink()
    annotations[2].write_text("<annotation><object>")  # truncated: photo kept, no box
    boxes = {s.path.stem: s.box for s in all_samples(load_dataset(root, val_fraction=0))}
    assert boxes[annotations[0].name] == (10, 5, 90, 60)
    assert boxes[annotations[1].name] is None
    assert boxes[annotations[2].name] is None


def test_photo_dataset_applies_exif_orientation(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    Image.new("RGB", (40, 20), "red").save(path, exif=exif)
    Image.new("L", (8, 8)).save(tmp_path / "gray.png")
    dataset = PhotoDataset([Sample(path, 3), Sample(tmp_path / "gray.png", 1)])
    img, label = dataset[0]
    assert (img.size, img.mode, label) == ((20, 40), "RGB", 3)
    assert dataset[1][0].mode == "RGB"
    assert dataset.targets == [3, 1] and len(dataset) == 2


@pytest.mark.parametrize("spec", ["none", "trivialaugment+gray", "crop+flip+rotate", "standardize"])
def test_photo_dataset_through_presets(mat_tree, spec):
    split = load_dataset(mat_tree)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    for transform in (train_transform(spec, 64, mean, std), eval_transform(spec, 64, mean, std)):
        dataset = PhotoDataset(split.val, transform, crop_to_box=True)
        x, label = dataset[1]
        assert (tuple(x.shape), x.dtype, type(x)) == ((3, 64, 64), torch.float32, torch.Tensor)
        assert label == split.val[1].label
        batch, labels = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))
        assert batch.shape == (4, 3, 64, 64) and labels.tolist() == dataset.targets[:4]


# --- ImageFolder --------------------------------------------------------------------------


def test_imagefolder(tmp_path, labelled_photos):
    dogs = [p for p in labelled_photos if p.is_dog][:6]
    others = [p for p in labelled_photos if not p.is_dog][:3]
    for folder, photos in (("dogs", dogs), ("_not_a_dog", others)):
        (tmp_path / folder).mkdir()
        for p in photos:
            (tmp_path / folder / p.path.name).write_bytes(p.path.read_bytes())
    (tmp_path / "dogs" / ".hidden.jpg").write_bytes(dogs[0].path.read_bytes())
    (tmp_path / "dogs" / "notes.txt").write_text("not a photo")
    (tmp_path / "dogs" / "nested").mkdir()
    (tmp_path / "dogs" / "nested" / "deep.jpg").write_bytes(dogs[0].path.read_bytes())
    (tmp_path / "only_nested" / "sub").mkdir(parents=True)  # no photo directly: no class
    (tmp_path / "only_nested" / "sub" / "x.jpg").write_bytes(dogs[0].path.read_bytes())
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "y.jpg").write_bytes(dogs[0].path.read_bytes())

    split = load_dataset(tmp_path, val_fraction=0.34)
    assert split.layout == "imagefolder"
    assert split.classes == ["_not_a_dog", "dogs"]
    assert split.test == []
    assert len(split.train) + len(split.val) == 9
    assert {s.path.name for s in split.train + split.val if s.label == 1} == {
        p.path.name for p in dogs
    }
    assert all(s.box is None for s in split.train)
    assert load_dataset(tmp_path, "_NOT_A_DOG").classes == ["_not_a_dog"]


def test_empty_or_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "nope")
    with pytest.raises(ValueError, match="no class folders"):
        load_dataset(tmp_path)
