"""Animal records from the shelter's own software: names and intake dates for many animals
at once, found by their shelter id (a JSON list, or a CSV export). Each row is checked on
its own; the good ones apply, the bad ones come back with their row and reason, and ids no
photo has brought yet are listed apart: they are not errors, their photos may come later."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pawdex.core.animals import ANIMAL_NAME_MAX, KEY_MAX
from pawdex.core.csv_import import csv_header, csv_records
from pawdex.core.errors import PawdexError
from pawdex.core.models import Animal

MAX_ROWS = 20_000  # a large shelter's whole export in one request
UNKNOWN_SHOWN = 100

# A shelter export's headers, read any case, spaces or hyphens for underscores.
COLUMNS = {
    "external_id": "external_id",
    "animal_id": "external_id",
    "shelter_id": "external_id",
    "name": "name",
    "animal_name": "name",
    "intake_date": "intake_date",
    "intake": "intake_date",
}


class InvalidAnimalRows(PawdexError):
    """A request of animal records that cannot be read as a whole (no id column...)."""


class RowRefused(ValueError):
    """One row that cannot apply; the message says why."""


@dataclass(frozen=True)
class AnimalRow:
    """One animal's record: ``None`` leaves a field as it is. ``row``: the JSON item's index,
    or the CSV's line (the header is line 1)."""

    row: int
    external_id: str
    name: str | None = None
    intake_date: date | None = None


@dataclass
class AnimalImportResult:
    received: int = 0
    updated: int = 0
    unknown: list[str] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)


def import_animals(session: Session, rows: list[AnimalRow]) -> AnimalImportResult:
    """Apply each row to the animal with its shelter id (any case; an animal named twice:
    its last row counts). The caller commits."""
    result = AnimalImportResult(received=len(rows))
    wanted = {row.external_id.lower() for row in rows}
    found: dict[str, list[Animal]] = {}
    ids = sorted(wanted)
    for start in range(0, len(ids), 1000):  # bounded IN lists
        chunk = ids[start : start + 1000]
        for animal in session.scalars(
            select(Animal).where(
                func.lower(Animal.external_id).in_(chunk), Animal.deletion_id.is_(None)
            )
        ):
            found.setdefault(animal.external_id.lower(), []).append(animal)
    updated: set[int] = set()
    unknown: dict[str, None] = {}
    for row in rows:
        animals = found.get(row.external_id.lower(), [])
        if not animals:
            unknown[row.external_id] = None
            continue
        if len(animals) > 1:  # ids differing only in case: the exact one, if any
            animals = [a for a in animals if a.external_id == row.external_id] or animals
        if len(animals) > 1:
            spelled = ", ".join(sorted(a.external_id for a in animals))
            result.errors.append((row.row, f"{len(animals)} animals have this id: {spelled}"))
            continue
        animal = animals[0]
        if row.name is not None:
            animal.name = row.name or None
        if row.intake_date is not None:
            animal.intake_date = row.intake_date
        updated.add(animal.id)
    result.updated = len(updated)
    result.unknown = list(unknown)
    result.errors.sort()
    return result


def checked_row(row: int, external_id: str, name: str | None, intake: date | None) -> AnimalRow:
    """A row as it will apply; RowRefused says why it cannot."""
    external_id = external_id.strip()
    if not external_id:
        raise RowRefused("external_id: empty (the shelter's id of the animal)")
    if len(external_id) > KEY_MAX:
        raise RowRefused(f"external_id: longer than {KEY_MAX} characters")
    if name is not None:
        name = name.strip()
        if len(name) > ANIMAL_NAME_MAX:
            raise RowRefused(f"name: longer than {ANIMAL_NAME_MAX} characters")
    for what, text in (("external_id", external_id), ("name", name or "")):
        if "\x00" in text:
            raise RowRefused(f"{what}: holds a NUL character")
    return AnimalRow(row, external_id, name, intake)


def read_animals_csv(
    text: str, max_rows: int = MAX_ROWS
) -> tuple[list[AnimalRow], list[tuple[int, str]]]:
    """The rows of an animals CSV and the rows that could not be read. Headers: the shelter
    id (external_id, animal_id or shelter_id), and name and/or intake_date (YYYY-MM-DD);
    other columns are ignored. InvalidAnimalRows if the file lacks the columns it needs."""
    reader, header = csv_header(text, InvalidAnimalRows)
    columns: dict[str, str] = {}  # header -> field
    for name in header:
        key = name.lower().replace(" ", "_").replace("-", "_")
        if key in COLUMNS and COLUMNS[key] not in columns.values():
            columns[name] = COLUMNS[key]
    if "external_id" not in columns.values() or not set(columns.values()) & {"name", "intake_date"}:
        raise InvalidAnimalRows(
            "an animals CSV needs the shelter's id (a column external_id, animal_id or "
            "shelter_id) and a name or intake_date column"
        )
    rows: list[AnimalRow] = []
    errors: list[tuple[int, str]] = []
    for line, cells in csv_records(reader, InvalidAnimalRows, max_rows):
        record = {field: cells.get(name, "") for name, field in columns.items()}
        try:
            intake = _date(record["intake_date"]) if record.get("intake_date") else None
            name = record.get("name") or None  # empty: left as it is
            rows.append(checked_row(line, record["external_id"], name, intake))
        except RowRefused as exc:
            errors.append((line, str(exc)))
    return rows, errors


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise RowRefused(f"intake_date {text!r}: write it as YYYY-MM-DD") from None
