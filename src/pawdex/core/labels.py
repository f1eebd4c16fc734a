"""People's verdicts on photos: confirm, correct or "not a dog", stored beside predictions.

A dog's label says what shelters write: a pure breed ("Labrador Retriever"), one known
parent and a mix ("Labrador Retriever mix"), two or three named parents and a mix
(the parents joined by a multiplication sign), "mixed breed" (a mix, no parents named) or "unknown
breed" (neither). ``Label.breed`` is the first parent: the catalogue filters and tallies on
it, so a Labrador mix is found under Labrador_retriever.
"""

from __future__ import annotations

import csv
import io
import itertools
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from pawdex.core.breeds import UnknownBreed, display_name, resolve_breed
from pawdex.core.errors import PawdexError
from pawdex.core.libraries import OriginalUnavailable, original_path
from pawdex.core.model_versions import active_version
from pawdex.core.models import ApiKey, Image, Label, Prediction, utcnow
from pawdex.core.storage import Storage
from pawdex.taxonomy import BREED_NAMES, SPECIES

_BREEDS = frozenset(BREED_NAMES)
MISSING = "(original unavailable)"


class Labeller(Protocol):
    """Who labels: an API key, or the command line (no key)."""

    @property
    def id(self) -> int | None: ...

    @property
    def name(self) -> str: ...


class InvalidLabel(PawdexError):
    """A label that names no known species or breed, or a photo that does not exist."""


MAX_PARENTS = 3
CROSS = "\u00d7"  # the multiplication sign: "Labrador Retriever CROSS Standard Poodle mix"


@dataclass(frozen=True)
class LabelValue:
    """What a label says: a species and, for a dog, up to three parent breeds (the first
    is the primary) and whether it is a mix."""

    species: str
    breeds: tuple[str, ...] = ()
    mix: bool = False

    @property
    def breed(self) -> str | None:
        return self.breeds[0] if self.breeds else None

    @property
    def text(self) -> str | None:
        return breed_text(self.species, self.breeds, self.mix)


def breed_text(species: str, breeds: Sequence[str], mix: bool) -> str | None:
    """The label as shelters write it; None for an animal that is not a dog."""
    if species != "dog":
        return None
    if not breeds:
        return "mixed breed" if mix else "unknown breed"
    names = f" {CROSS} ".join(display_name(b) for b in breeds)
    return f"{names} mix" if mix else names


def uncertain_between(species: str, top_k: Sequence[dict], margin: float) -> list[str] | None:
    """The model's top two breeds when they are closer than ``margin`` (a dog only)."""
    if species != "dog" or len(top_k) < 2:
        return None
    first, second = top_k[0], top_k[1]
    if first["confidence"] - second["confidence"] < margin:
        return [first["breed"], second["breed"]]
    return None


def model_breed_text(species: str, breed: str | None, uncertain: list[str] | None) -> str | None:
    """The model's answer in words: its breed, or "uncertain between A and B"."""
    if species != "dog":
        return None
    if uncertain:
        return f"uncertain between {display_name(uncertain[0])} and {display_name(uncertain[1])}"
    return display_name(breed) if breed else "unknown breed"


def validate(species: str, breeds: Sequence[str], mix: bool = False) -> LabelValue:
    """The label these (already resolved) Stanford Dogs names make; InvalidLabel if none.
    Two or more parents always make a mix."""
    if species not in SPECIES:
        raise InvalidLabel(f"unknown species {species!r}; one of: {', '.join(SPECIES)}")
    if species != "dog" and (breeds or mix):
        raise InvalidLabel(f"a {species} has no breed")
    unknown = [b for b in breeds if b not in _BREEDS]
    if unknown:
        raise InvalidLabel(
            f"unknown breed {unknown[0]!r}: a Stanford Dogs name (GET /v1/breeds/all)"
        )
    if len(breeds) > MAX_PARENTS:
        raise InvalidLabel(f"at most {MAX_PARENTS} breeds, got {len(breeds)}")
    if len(set(breeds)) < len(breeds):
        raise InvalidLabel(f"a breed is named twice: {', '.join(breeds)}")
    return LabelValue(species, tuple(breeds), mix or len(breeds) > 1)


def parse_label(
    species: str, breed: str | None = None, breeds: Sequence[str] = (), mix: bool = False
) -> LabelValue:
    """A label from what people type: ``breeds`` may use common names ("Lab", "German
    Shepherd"); ``breed``, today's single breed, is the primary and must agree with
    ``breeds[0]`` when both are given. InvalidLabel says what is wrong."""
    resolved = []
    for i, name in enumerate(breeds):
        try:
            resolved.append(resolve_breed(name))
        except UnknownBreed as exc:
            raise InvalidLabel(f"breeds[{i}]: {exc}") from None
    if breed is not None:
        if resolved and resolved[0] != breed:
            raise InvalidLabel(f"breed {breed!r} is not the first of breeds {resolved}")
        resolved = resolved or [breed]
    return validate(species, resolved, mix)


def add_label(session: Session, image_id: int, value: LabelValue, key: Labeller) -> Label:
    """Record a verdict; it becomes the photo's current label, the older ones stay."""
    return add_labels(session, [image_id], value, key)[0]


def add_labels(
    session: Session, image_ids: Sequence[int], value: LabelValue, key: Labeller
) -> list[Label]:
    """The same verdict on each of these photos (one label row each): a photo's label, an
    animal's, a bulk import's."""
    image_ids = list(dict.fromkeys(image_ids))
    existing = set(session.scalars(select(Image.id).where(Image.id.in_(image_ids))))
    missing = [i for i in image_ids if i not in existing]
    if missing:
        raise InvalidLabel(f"photo {missing[0]} not found")
    version = active_version(session)
    model_breeds: dict[int, str | None] = {}
    if version is not None:
        model_breeds = dict(
            session.execute(
                select(Prediction.image_id, Prediction.breed).where(
                    Prediction.image_id.in_(image_ids), Prediction.model_version_id == version.id
                )
            ).all()
        )
    session.execute(
        update(Label)
        .where(Label.image_id.in_(image_ids), Label.current.is_(True))
        .values(current=False)
        .execution_options(synchronize_session=False)
    )
    labels = [
        Label(
            image_id=image_id,
            species=value.species,
            breed=value.breed,
            breeds=list(value.breeds),
            mix=value.mix,
            key_id=key.id,
            key_name=key.name,
            model_version_id=version.id if version else None,
            model_breed=model_breeds.get(image_id),
            current=True,
        )
        for image_id in image_ids
    ]
    session.add_all(labels)
    session.flush()
    show_labels(session, image_ids)
    return labels


def _animal_photos(session: Session, animal_id: int) -> list[int]:
    photos = select(Image.id).where(Image.animal_id == animal_id, Image.deletion_id.is_(None))
    return list(session.scalars(photos))


def label_animal(session: Session, animal_id: int, value: LabelValue, key: ApiKey) -> list[Label]:
    """The same verdict on every photo of the animal (one label each)."""
    image_ids = _animal_photos(session, animal_id)
    return add_labels(session, image_ids, value, key) if image_ids else []


def withdraw_labels(session: Session, image_ids: Sequence[int], key: ApiKey) -> int:
    """Withdraw the current labels of these photos: they show the model's answer again; the
    rows stay, with who withdrew them and when. Returns how many there were."""
    current = (Label.image_id.in_(image_ids), Label.current.is_(True))
    withdrawn = session.execute(
        update(Label)
        .where(*current)
        .values(current=False, withdrawn_at=utcnow(), withdrawn_by=key.name)
        .execution_options(synchronize_session=False)
    ).rowcount
    show_labels(session, image_ids)
    return withdrawn or 0


def withdraw_label(session: Session, image_id: int, key: ApiKey) -> bool:
    """Withdraw the photo's current label; False if it has none."""
    return withdraw_labels(session, [image_id], key) > 0


def withdraw_animal_labels(session: Session, animal_id: int, key: ApiKey) -> int:
    """Withdraw the current label of every photo of the animal; how many there were."""
    image_ids = _animal_photos(session, animal_id)
    return withdraw_labels(session, image_ids, key) if image_ids else 0


def show_labels(session: Session, image_ids: Sequence[int]) -> None:
    """Make the predictions of ``image_ids`` show their photos' current labels (or the
    model's own answer where a photo has none any more): what the catalogue filters on."""
    if not image_ids:
        return
    current = select(Label).where(Label.image_id == Prediction.image_id, Label.current.is_(True))
    of_photos = Prediction.image_id.in_(image_ids)
    session.execute(
        update(Prediction)
        .where(of_photos, exists(current))
        .values(
            labelled=True,
            catalog_species=current.with_only_columns(Label.species).scalar_subquery(),
            catalog_breed=current.with_only_columns(Label.breed).scalar_subquery(),
        )
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Prediction)
        .where(of_photos, Prediction.labelled.is_(True), ~exists(current))
        .values(labelled=False, catalog_species=Prediction.species, catalog_breed=Prediction.breed)
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True)
class LabelledPhoto:
    image_id: int
    sha256: str
    path: str
    stored_path: str | None
    value: LabelValue
    model_breed: str | None
    labelled_by: str
    labelled_at: str

    @property
    def species(self) -> str:
        return self.value.species

    @property
    def breed(self) -> str | None:
        return self.value.breed


def iter_current_labels(session: Session) -> Iterator[LabelledPhoto]:
    stmt = (
        select(Label, Image)
        .join(Image, Image.id == Label.image_id)
        .where(Label.current.is_(True), Image.deletion_id.is_(None))  # not in the trash
        .order_by(Label.image_id)
        .execution_options(yield_per=1000)
    )
    for label, image in session.execute(stmt):
        yield LabelledPhoto(
            image.id, image.sha256, image.path, image.stored_path, stored_value(label),
            label.model_breed, label.key_name, label.created_at.isoformat(),
        )  # fmt: skip


def stored_value(label: Any) -> LabelValue:
    """A label row's (or ``catalog.LABEL`` bundle's) value."""
    # Labels written before mixes named their one breed only (0015 filled ``breeds``).
    breeds = label.breeds or ([label.breed] if label.breed else [])
    return LabelValue(label.species, tuple(breeds), bool(label.mix))


# ``breeds`` is ";"-joined, primary first; ``breed`` (the primary) and ``breed_text`` are
# there to read: an import takes species, breeds and mix.
CSV_COLUMNS = [
    "image_id", "sha256", "path", "species", "breed", "breeds", "mix", "breed_text",
    "model_breed", "labelled_by", "labelled_at",
]  # fmt: skip


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """``header`` then ``rows`` as CSV text, one chunk a row: a download or a file streams
    without the whole table in memory (the API's CSV downloads, the labels export)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in itertools.chain([header], rows):
        writer.writerow(row)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def labels_csv(session: Session) -> Iterator[str]:
    return csv_chunks(CSV_COLUMNS, map(_csv_row, iter_current_labels(session)))


def _csv_row(row: LabelledPhoto) -> list[object]:
    value = row.value
    return [
        row.image_id, row.sha256, row.path, value.species, value.breed or "",
        ";".join(value.breeds), "true" if value.mix else "false", value.text or "",
        row.model_breed or "", row.labelled_by, row.labelled_at,
    ]  # fmt: skip


def export_image_folder(session: Session, storage: Storage, out: Path) -> dict[str, int]:
    """The human-labelled dogs as an ImageFolder tree (``out/<breed>/<sha256>.<ext>``) that
    ``pawdex train`` reads, plus ``labels.csv``; non-dogs go to ``out/_not_a_dog/``.
    Returns photos per folder (and under MISSING, library photos whose file is gone)."""
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with (out / "labels.csv").open("w", newline="") as fh:
        fh.writelines(labels_csv(session))
    for row in iter_current_labels(session):
        if row.species == "dog" and (row.value.mix or not row.breed):
            continue  # a mix or an unknown dog teaches no one breed
        folder = row.breed if row.species == "dog" else "_not_a_dog"
        image = session.get(Image, row.image_id)
        try:
            source = original_path(session, image, storage)
        except OriginalUnavailable:  # a library's file gone since its last scan
            counts[MISSING] = counts.get(MISSING, 0) + 1
            continue
        suffix = (source or Path(image.stored_path)).suffix
        target = out / folder / f"{row.sha256}{suffix}"
        target.parent.mkdir(exist_ok=True)
        if not target.exists() and source is not None:
            shutil.copyfile(source, target)
        elif not target.exists():  # an object in object storage: streamed, never read whole
            with storage.open(image.stored_path) as stream, target.open("wb") as fh:
                shutil.copyfileobj(stream, fh)
        counts[folder] = counts.get(folder, 0) + 1
    return counts
