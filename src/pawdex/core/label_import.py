"""Many labels at once: a JSON list or the labels CSV edited in a spreadsheet. Each row is
checked on its own; the good ones apply, the bad ones come back with their row and reason."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from pawdex.core.breeds import UnknownBreed, resolve_breed
from pawdex.core.csv_import import csv_header, csv_records
from pawdex.core.cursors import MAX_ROW_ID
from pawdex.core.labels import InvalidLabel, Labeller, LabelValue, add_labels, parse_label
from pawdex.core.models import Image

MAX_ROWS = 1000
_TRUE = frozenset({"true", "1", "yes", "y"})
_FALSE = frozenset({"false", "0", "no", "n", ""})


@dataclass(frozen=True)
class LabelRow:
    """One row to import: which photo (its id, else its content's sha256) and the label as
    typed. ``row``: the JSON item's index, or the CSV's line (the header is line 1)."""

    row: int
    image_id: int | None
    sha256: str | None
    species: str
    breeds: list[str]
    mix: bool
    breed: str | None = None


@dataclass
class ImportResult:
    received: int = 0
    applied: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def import_labels(session: Session, rows: Iterable[LabelRow], key: Labeller) -> ImportResult:
    """Apply every valid row (a photo named twice: its last row counts); the others are
    reported. The caller commits."""
    result = ImportResult()
    rows = list(rows)
    result.received = len(rows)
    photos = _photos_of(session, rows)
    chosen: dict[int, tuple[int, LabelValue]] = {}
    for row in rows:
        try:
            image_id = _photo(row, photos)
            value = parse_label(row.species, _typed(row.breed), row.breeds, row.mix)
        except InvalidLabel as exc:
            result.errors.append((row.row, str(exc)))
            continue
        chosen.pop(image_id, None)  # re-inserted last: the photo's last row wins
        chosen[image_id] = (row.row, value)
    by_value: dict[LabelValue, list[int]] = defaultdict(list)
    for image_id, (_, value) in chosen.items():
        by_value[value].append(image_id)
    for value, image_ids in by_value.items():
        add_labels(session, image_ids, value, key)
    result.applied = len(chosen)
    result.errors.sort()
    return result


def _typed(breed: str | None) -> str | None:
    if not breed:
        return None
    try:
        return resolve_breed(breed)
    except UnknownBreed as exc:
        raise InvalidLabel(f"breed: {exc}") from None


def _photos_of(session: Session, rows: list[LabelRow]) -> dict[str, dict]:
    ids = {r.image_id for r in rows if r.image_id is not None and 0 < r.image_id <= MAX_ROW_ID}
    digests = {r.sha256 for r in rows if r.sha256}
    found = session.execute(
        select(Image.id, Image.sha256).where(
            Image.id.in_(ids) | Image.sha256.in_(digests), Image.deletion_id.is_(None)
        )
    ).all()
    return {"by_id": {i: sha for i, sha in found}, "by_sha": {sha: i for i, sha in found}}


def _photo(row: LabelRow, photos: dict[str, dict]) -> int:
    """The row's photo: by id when the id names a photo with the row's content (or the row
    gives no sha256), else by sha256 (another database numbers its photos otherwise)."""
    sha = photos["by_id"].get(row.image_id)
    if sha is not None and (not row.sha256 or row.sha256 == sha):
        return row.image_id  # type: ignore[return-value]
    if row.sha256 and row.sha256 in photos["by_sha"]:
        return photos["by_sha"][row.sha256]
    named = " or ".join(
        part
        for part in (
            f"id {row.image_id}" if row.image_id is not None else "",
            f"sha256 {row.sha256}" if row.sha256 else "",
        )
        if part
    )
    raise InvalidLabel(f"no photo with {named or 'no image_id nor sha256 given'}")


def read_labels_csv(
    text: str, max_rows: int | None = MAX_ROWS
) -> tuple[list[LabelRow], list[tuple[int, str]]]:
    """The rows of a labels CSV (``GET /v1/labels``'s columns; others are ignored) and the
    rows that could not be read. InvalidLabel if the file lacks the columns it needs."""
    reader, header = csv_header(text, InvalidLabel)
    columns = set(header)
    if "species" not in columns or not columns & {"image_id", "sha256"}:
        raise InvalidLabel(
            "a labels CSV needs a species column and an image_id or sha256 column "
            "(the columns of GET /v1/labels)"
        )
    rows: list[LabelRow] = []
    errors: list[tuple[int, str]] = []
    for line, cells in csv_records(reader, InvalidLabel, max_rows):
        try:
            rows.append(_csv_row(line, cells))
        except InvalidLabel as exc:
            errors.append((line, str(exc)))
    return rows, errors


def _csv_row(line: int, cells: dict[str, str]) -> LabelRow:
    image_id = None
    if cells.get("image_id"):
        try:
            image_id = int(cells["image_id"])
        except ValueError:
            raise InvalidLabel(f"image_id {cells['image_id']!r} is not a number") from None
    mix = cells.get("mix", "").lower()
    if mix not in _TRUE | _FALSE:
        raise InvalidLabel(f"mix {cells['mix']!r}: true or false")
    return LabelRow(
        row=line, image_id=image_id, sha256=cells.get("sha256", "").lower() or None,
        species=cells["species"].lower(),
        breeds=[b.strip() for b in cells.get("breeds", "").split(";") if b.strip()],
        mix=mix in _TRUE, breed=cells.get("breed") or None,
    )  # fmt: skip
