"""Queries over indexed animals: filters, keyset pagination, breed counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, and_, delete, func, or_, select, union_all
from sqlalchemy.orm import Bundle, Session

from pawdex.core.cursors import cursor_datetime, cursor_row_id, decode_cursor, encode_cursor
from pawdex.core.db import count_capped, escape_like
from pawdex.core.errors import InvalidCursor, InvalidQuery
from pawdex.core.jobs import dialect_insert
from pawdex.core.model_versions import active_version
from pawdex.core.models import (
    BreedCandidate,
    BreedTally,
    BreedTallyDelta,
    Image,
    JobImage,
    Label,
    LabelSource,
    ModelVersion,
    Prediction,
)


class PhotoSort(StrEnum):
    confidence_desc = "-confidence"
    confidence_asc = "confidence"
    indexed_desc = "-indexed_at"


@dataclass
class PhotoFilters:
    breed: str | None = None
    species: str | None = None
    min_confidence: float | None = None
    max_confidence: float | None = None
    job_id: str | None = None
    model_version: str | None = None
    path_prefix: str | None = None
    filename: str | None = None
    label_source: LabelSource | None = None
    indexed_after: datetime | None = None  # at or after
    indexed_before: datetime | None = None  # strictly before
    # The model's top-k holds this breed at ``might_be_min`` or more; then the page is in
    # the order of that probability, highest first (whatever the sort).
    might_be: str | None = None
    might_be_min: float = 0.1
    # Leave out photos the model says are not dogs with at least this species confidence.
    hide_not_dogs_from: float | None = None

    @property
    def on_predictions(self) -> bool:
        """Filters beyond the breed candidates' own columns (they join the predictions)."""
        own = {"might_be", "might_be_min", "model_version"}
        return any(value is not None for name, value in vars(self).items() if name not in own)


# What an animal's page shows, as column bundles (read-only rows with attribute access):
# loading three ORM entities per row cost a third of a catalogue request's CPU.
IMAGE = Bundle(
    "image", Image.id, Image.sha256, Image.filename, Image.path, Image.width, Image.height
)
PREDICTION = Bundle(
    "prediction", Prediction.image_id, Prediction.species, Prediction.breed,
    Prediction.confidence, Prediction.species_confidence, Prediction.top_k,
    Prediction.job_id, Prediction.created_at,
)  # fmt: skip
LABEL = Bundle(
    "label", Label.id, Label.species, Label.breed, Label.breeds, Label.mix, Label.key_name,
    Label.created_at,
)  # fmt: skip


@dataclass
class PhotoRecord:
    image: Any  # IMAGE's columns
    prediction: Any  # PREDICTION's columns
    model_version: str
    label: Any | None = None  # LABEL's columns: the current human label, if a person decided

    @classmethod
    def of(cls, row: Any, model_version: str) -> PhotoRecord:
        label = row.label if row.label.id is not None else None
        return cls(row.image, row.prediction, model_version, label)

    @property
    def species(self) -> str:
        return self.label.species if self.label else self.prediction.species

    @property
    def breed(self) -> str | None:
        return self.label.breed if self.label else self.prediction.breed

    @property
    def label_source(self) -> LabelSource:
        return LabelSource.human if self.label else LabelSource.model


def _resolve_version(session: Session, version: str | None) -> ModelVersion | None:
    """The model version a query reads (None: the active one), looked up once per session:
    a request lists a page and counts it, an export reads page after page."""
    known = session.info.setdefault("pawdex.catalog_versions", {})
    if version not in known:
        known[version] = _look_up_version(session, version)
    return known[version]


def _look_up_version(session: Session, version: str | None) -> ModelVersion | None:
    if version is None:
        return active_version(session)
    row = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
    if row is None:
        raise InvalidQuery(f"unknown model_version {version!r}")
    return row


def _shown(version_id: int) -> Select:
    """An animal's page: its image, this model's prediction and the current label, if any."""
    return (
        select(IMAGE, PREDICTION, LABEL)
        .select_from(Image)
        .join(Prediction, Prediction.image_id == Image.id)
        .outerjoin(Label, and_(Label.image_id == Image.id, Label.current.is_(True)))
        .where(Prediction.model_version_id == version_id)
    )


def _matching(version_id: int, filters: PhotoFilters) -> Select:
    """The ids of the matching photos: one range scan of a prediction index, since each
    prediction row carries what the catalogue shows (``catalog_*``: the person's label over
    the model's answer) and the indexes include the other filtered columns, so on PostgreSQL
    a page is found from the index alone."""
    stmt = select(Prediction.image_id).where(Prediction.model_version_id == version_id)
    return _filtered(stmt, filters)


def _candidates(version_id: int, filters: PhotoFilters) -> Select:
    """The photos that might be ``filters.might_be``, with that breed's probability: one
    range scan of the breed candidates' index, joined to each one's prediction only when
    other filters need it."""
    stmt = select(BreedCandidate.image_id, BreedCandidate.confidence).where(
        BreedCandidate.model_version_id == version_id,
        BreedCandidate.breed == filters.might_be,
        BreedCandidate.confidence >= filters.might_be_min,
    )
    if not filters.on_predictions:
        return stmt
    stmt = stmt.join(Prediction, Prediction.id == BreedCandidate.prediction_id)
    return _filtered(stmt, filters)


def _filtered(stmt: Select, filters: PhotoFilters) -> Select:
    if filters.label_source == LabelSource.human:
        stmt = stmt.where(Prediction.labelled)  # as the partial index's predicate is written
    elif filters.label_source == LabelSource.model:
        stmt = stmt.where(~Prediction.labelled)
    if filters.breed:
        stmt = stmt.where(Prediction.catalog_breed == filters.breed)
    if filters.species:
        stmt = stmt.where(Prediction.catalog_species == filters.species)
    if filters.min_confidence is not None:
        stmt = stmt.where(Prediction.confidence >= filters.min_confidence)
    if filters.max_confidence is not None:
        stmt = stmt.where(Prediction.confidence <= filters.max_confidence)
    if filters.indexed_after is not None:
        stmt = stmt.where(Prediction.created_at >= filters.indexed_after)
    if filters.indexed_before is not None:
        stmt = stmt.where(Prediction.created_at < filters.indexed_before)
    if filters.hide_not_dogs_from is not None:
        sure_not_a_dog = and_(
            Prediction.species != "dog", Prediction.species_confidence >= filters.hide_not_dogs_from
        )
        stmt = stmt.where(~sure_not_a_dog)
    if filters.job_id:
        stmt = stmt.join(
            JobImage,
            and_(JobImage.image_id == Prediction.image_id, JobImage.job_id == filters.job_id),
        )
    if filters.path_prefix or filters.filename:
        stmt = stmt.join(Image, Image.id == Prediction.image_id)
    if filters.path_prefix:
        stmt = stmt.where(Image.path.like(escape_like(filters.path_prefix) + "%", escape="\\"))
    if filters.filename:
        stmt = stmt.where(
            Image.filename.ilike("%" + escape_like(filters.filename) + "%", escape="\\")
        )
    return stmt


def _sort_key(sort: PhotoSort):
    return Prediction.created_at if sort == PhotoSort.indexed_desc else Prediction.confidence


def _animal_cursor(sort: PhotoSort, record: PhotoRecord) -> str:
    value: Any = getattr(
        record.prediction, "created_at" if sort == PhotoSort.indexed_desc else "confidence"
    )
    return encode_cursor({"s": sort.value, "v": value, "id": record.image.id})


def _decode_animal_cursor(cursor: str, sort: PhotoSort) -> tuple[Any, int]:
    return _decode_keyset(cursor, sort.value, dated=sort == PhotoSort.indexed_desc)


def _decode_keyset(cursor: str, sort: str, dated: bool) -> tuple[Any, int]:
    """A page cursor ``{"s": sort, "v": the last row's sort value, "id": its image}``: the
    value (a date-time if ``dated``, else a number) and the id; InvalidCursor otherwise."""
    data = decode_cursor(cursor)
    if not isinstance(data, dict) or not {"s", "v", "id"} <= data.keys():
        raise InvalidCursor("invalid cursor")
    if data["s"] != sort:
        raise InvalidCursor("the cursor belongs to another sort order")
    if dated:
        value: Any = cursor_datetime(data["v"])
    else:
        try:
            value = float(data["v"])
        except (ValueError, TypeError) as exc:
            raise InvalidCursor("invalid cursor") from exc
    return value, cursor_row_id(data["id"])


def _after(stmt: Select, sort: PhotoSort, after: tuple[Any, int]) -> Select:
    key, (value, last_id) = _sort_key(sort), after
    if sort == PhotoSort.confidence_asc:
        return stmt.where(or_(key > value, and_(key == value, Prediction.image_id > last_id)))
    return stmt.where(or_(key < value, and_(key == value, Prediction.image_id < last_id)))


def _order(sort: PhotoSort) -> tuple:
    key = _sort_key(sort)
    if sort == PhotoSort.confidence_asc:
        return key.asc(), Prediction.image_id.asc()
    return key.desc(), Prediction.image_id.desc()


def _might_be_sort(filters: PhotoFilters) -> str:
    return f"might_be:{filters.might_be}"


def _list_might_be(
    session: Session, version: ModelVersion, filters: PhotoFilters, limit: int, cursor: str | None
) -> tuple[list[PhotoRecord], str | None]:
    """The photos that might be a breed, that breed's probability highest first."""
    matching, sort = _candidates(version.id, filters), _might_be_sort(filters)
    probability, image_id = BreedCandidate.confidence, BreedCandidate.image_id
    if cursor:
        value, last_id = _decode_keyset(cursor, sort, dated=False)
        matching = matching.where(
            or_(probability < value, and_(probability == value, image_id < last_id))
        )
    page = matching.order_by(probability.desc(), image_id.desc()).limit(limit + 1)
    page = page.subquery("page")
    stmt = (
        _shown(version.id)
        .add_columns(page.c.confidence.label("might_be_confidence"))
        .join(page, page.c.image_id == Image.id)
        .order_by(page.c.confidence.desc(), page.c.image_id.desc())
    )
    rows = session.execute(stmt).all()
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor({"s": sort, "v": last.might_be_confidence, "id": last.image.id})
    return [PhotoRecord.of(row, version.version) for row in rows[:limit]], next_cursor


def count_photos(
    session: Session, filters: PhotoFilters, sort: PhotoSort = PhotoSort.confidence_desc
) -> tuple[int, bool]:
    """How many photos match, up to ``db.COUNT_CAP``, and whether there are more: the page's
    own index walk (same order, so the same index), stopped after the cap."""
    version = _resolve_version(session, filters.model_version)
    if version is None:
        return 0, False
    if filters.might_be:
        order = BreedCandidate.confidence.desc(), BreedCandidate.image_id.desc()
        matching = _candidates(version.id, filters).order_by(*order)
    else:
        matching = _matching(version.id, filters).order_by(*_order(sort))
    return count_capped(session, matching)


def list_photos(
    session: Session,
    filters: PhotoFilters,
    sort: PhotoSort = PhotoSort.confidence_desc,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[PhotoRecord], str | None]:
    version = _resolve_version(session, filters.model_version)
    if version is not None and filters.might_be:
        return _list_might_be(session, version, filters, limit, cursor)
    after = _decode_animal_cursor(cursor, sort) if cursor else None
    if version is None:
        return [], None
    matching = _matching(version.id, filters)
    if after is not None:
        matching = _after(matching, sort, after)
    # The page's ids first, then their rows: only the page's rows are read from the tables.
    page = matching.order_by(*_order(sort)).limit(limit + 1).subquery("page")
    stmt = _shown(version.id).join(page, page.c.image_id == Image.id).order_by(*_order(sort))
    rows = [PhotoRecord.of(row, version.version) for row in session.execute(stmt)]
    next_cursor = _animal_cursor(sort, rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


def iter_photos(
    session: Session, filters: PhotoFilters, sort: PhotoSort = PhotoSort.confidence_desc
) -> Iterator[PhotoRecord]:
    """Every matching animal, streamed in pages (CSV export)."""
    cursor = None
    while True:
        page, cursor = list_photos(session, filters, sort, limit=1000, cursor=cursor)
        yield from page
        if cursor is None:
            return


def get_photo(
    session: Session, image_id: int, model_version: str | None = None
) -> PhotoRecord | None:
    version = _resolve_version(session, model_version)
    if version is None:
        return None
    row = session.execute(_shown(version.id).where(Image.id == image_id)).first()
    return PhotoRecord.of(row, version.version) if row else None


def breed_counts(session: Session, model_version: str | None = None) -> list[tuple[str, int]]:
    """Photos per breed, a person's label counting over the model's: the folded tallies plus
    the deltas not folded yet (one snapshot, so a concurrent fold never counts twice)."""
    version = _resolve_version(session, model_version)
    if version is None:
        return []
    parts = union_all(
        select(BreedTally.breed, BreedTally.photos).where(
            BreedTally.model_version_id == version.id
        ),
        select(BreedTallyDelta.breed, BreedTallyDelta.photos).where(
            BreedTallyDelta.model_version_id == version.id
        ),
    ).subquery()
    photos = func.sum(parts.c.photos)
    stmt = (
        select(parts.c.breed, photos)
        .group_by(parts.c.breed)
        .having(photos > 0)
        .order_by(photos.desc(), parts.c.breed)
    )
    return [(name, int(count)) for name, count in session.execute(stmt)]


def fold_breed_tallies(session: Session, limit: int = 10_000) -> int:
    """Fold up to ``limit`` deltas into ``breed_tallies``; returns how many. Several workers
    may fold at once: each takes rows the others have not locked."""
    taken = select(BreedTallyDelta.id).order_by(BreedTallyDelta.id).limit(limit)
    taken = taken.with_for_update(skip_locked=True)
    rows = session.execute(
        delete(BreedTallyDelta)
        .where(BreedTallyDelta.id.in_(taken.scalar_subquery()))
        .returning(BreedTallyDelta.model_version_id, BreedTallyDelta.breed, BreedTallyDelta.photos)
    ).all()
    sums: Counter[tuple[int, str]] = Counter()
    for version_id, breed, photos in rows:
        sums[version_id, breed] += photos
    if sums:
        # In key order, so two folds never wait on each other's rows crosswise.
        values = [
            {"model_version_id": v, "breed": b, "photos": n} for (v, b), n in sorted(sums.items())
        ]
        stmt = dialect_insert(session)(BreedTally).values(values)
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["model_version_id", "breed"],
                set_={"photos": BreedTally.photos + stmt.excluded.photos},
            )
        )
    return len(rows)
