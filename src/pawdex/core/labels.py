"""People's verdicts on photos: confirm, correct or "not a dog", stored beside predictions."""

from __future__ import annotations

import csv
import io
import itertools
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from pawdex.core.errors import PawdexError
from pawdex.core.libraries import OriginalUnavailable, original_path
from pawdex.core.model_versions import active_version
from pawdex.core.models import ApiKey, Image, Label, Prediction
from pawdex.core.storage import Storage
from pawdex.taxonomy import BREED_NAMES, SPECIES

_BREEDS = frozenset(BREED_NAMES)
MISSING = "(original unavailable)"


class InvalidLabel(PawdexError):
    """A label that names no known species or breed, or a photo that does not exist."""


def validate(species: str, breed: str | None) -> None:
    if species not in SPECIES:
        raise InvalidLabel(f"unknown species {species!r}; one of: {', '.join(SPECIES)}")
    if species == "dog" and breed not in _BREEDS:
        raise InvalidLabel(f"unknown breed {breed!r}: a Stanford Dogs name (GET /v1/breeds/all)")
    if species != "dog" and breed is not None:
        raise InvalidLabel(f"a {species} has no breed")


def add_label(
    session: Session, image_id: int, species: str, breed: str | None, key: ApiKey
) -> Label:
    """Record a verdict; it becomes the photo's current label, the older ones stay."""
    validate(species, breed)
    if session.get(Image, image_id) is None:
        raise InvalidLabel(f"photo {image_id} not found")
    version = active_version(session)
    model_breed = None
    if version is not None:
        model_breed = session.scalar(
            select(Prediction.breed).where(
                Prediction.image_id == image_id, Prediction.model_version_id == version.id
            )
        )
    session.execute(
        update(Label)
        .where(Label.image_id == image_id, Label.current.is_(True))
        .values(current=False)
    )
    label = Label(
        image_id=image_id, species=species, breed=breed, key_id=key.id, key_name=key.name,
        model_version_id=version.id if version else None, model_breed=model_breed, current=True,
    )  # fmt: skip
    session.add(label)
    session.flush()
    show_labels(session, [image_id])
    return label


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
    species: str
    breed: str | None
    model_breed: str | None
    labelled_by: str
    labelled_at: str


def iter_current_labels(session: Session) -> Iterator[LabelledPhoto]:
    stmt = (
        select(Label, Image)
        .join(Image, Image.id == Label.image_id)
        .where(Label.current.is_(True))
        .order_by(Label.image_id)
        .execution_options(yield_per=1000)
    )
    for label, image in session.execute(stmt):
        yield LabelledPhoto(
            image.id, image.sha256, image.path, image.stored_path, label.species, label.breed,
            label.model_breed, label.key_name, label.created_at.isoformat(),
        )  # fmt: skip


CSV_COLUMNS = [
    "image_id", "sha256", "path", "species", "breed", "model_breed", "labelled_by",
    "labelled_at",
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
    return [
        row.image_id, row.sha256, row.path, row.species, row.breed or "", row.model_breed or "",
        row.labelled_by, row.labelled_at,
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
        folder = row.breed if row.species == "dog" else "_not_a_dog"
        try:
            source = original_path(session, session.get(Image, row.image_id), storage)
        except OriginalUnavailable:  # a library's file gone since its last scan
            counts[MISSING] = counts.get(MISSING, 0) + 1
            continue
        target = out / folder / f"{row.sha256}{source.suffix}"
        target.parent.mkdir(exist_ok=True)
        if not target.exists():
            shutil.copyfile(source, target)
        counts[folder] = counts.get(folder, 0) + 1
    return counts
