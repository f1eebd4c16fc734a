"""Animals: photos grouped into shelter animals.

A job groups its new photos by its rule (``Grouping``), chosen per upload or library:

- ``photo``: one photo, one animal;
- ``folder``: the photo's folder names the animal (``2021/A1001/rex.jpg`` → ``A1001``);
- a path template with ``{animal_id}``, matched against the end of the photo's path:
  ``{year}/{animal_id}/*`` (``*`` and any other ``{name}``: one path segment);
- ``re:`` and a regular expression with a group ``animal_id``, searched in the path:
  ``re:(?P<animal_id>A\\d{6})`` finds ``A123456-2.jpg``.

The key a rule finds is the animal's external id (the shelter's): photos with the same key,
in any job, are one animal. A photo the rule finds no key for is its own animal. People then
merge, split and move photos between animals.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from types import EllipsisType

from sqlalchemy import Select, delete, exists, func, insert, select, update
from sqlalchemy.orm import Session

from pawdex.core.db import count_capped, escape_like
from pawdex.core.errors import PawdexError
from pawdex.core.jobs import insert_ignoring_conflicts
from pawdex.core.models import Animal, Image, Label, Prediction

KEY_MAX = 64  # animals.external_id
ANIMAL_NAME_MAX = 200  # animals.name


class InvalidGrouping(PawdexError):
    """A grouping rule that cannot be used (no ``{animal_id}``, a broken expression)."""


@dataclass(frozen=True)
class Grouping:
    text: str
    pattern: re.Pattern[str] | None  # None: one photo, one animal

    @classmethod
    def parse(cls, text: str | None) -> Grouping:
        text = (text or "photo").strip()
        if text == "photo":
            return ONE_PER_PHOTO
        if text == "folder":
            return cls(text, re.compile(r"(?:^|/)(?P<animal_id>[^/]+)/[^/]+$"))
        if text.startswith("re:"):
            try:
                pattern = re.compile(text[3:])
            except re.error as exc:
                raise InvalidGrouping(
                    f"grouping {text!r}: not a regular expression ({exc})"
                ) from None
            if "animal_id" not in pattern.groupindex:
                raise InvalidGrouping(f"grouping {text!r}: needs a group (?P<animal_id>…)")
            return cls(text, pattern)
        if "{animal_id}" not in text:
            raise InvalidGrouping(
                f"grouping {text!r}: use photo, folder, a path template with {{animal_id}} "
                "(e.g. {year}/{animal_id}/*) or re: and an expression with (?P<animal_id>…)"
            )
        return cls(text, re.compile(_template_regex(text)))

    def key(self, path: str) -> str | None:
        """The animal's external id in ``path``, if the rule finds one."""
        if self.pattern is None:
            return None
        found = self.pattern.search(path)
        key = found.group("animal_id").strip() if found and found.group("animal_id") else ""
        return key[:KEY_MAX] or None


ONE_PER_PHOTO = Grouping("photo", None)


def _template_regex(template: str) -> str:
    parts = []
    for piece in re.split(r"(\{[a-z_]+\}|\*)", template.strip("/")):
        if piece == "{animal_id}":
            parts.append(r"(?P<animal_id>[^/]+)")
        elif piece == "*" or (piece.startswith("{") and piece.endswith("}")):
            parts.append(r"[^/]+")
        else:
            parts.append(re.escape(piece))
    return r"(?:^|/)" + "".join(parts) + "$"


def assign_animals(
    session: Session,
    rule: Grouping,
    photos: Iterable[tuple[int, str]],
    known: Iterable[tuple[int, str]] = (),
) -> None:
    """Give each new photo (``(image id, path)``) its animal by ``rule``: the animal of its
    key (created the first time the key is seen), else an animal of its own. A ``known``
    photo (indexed before) joins its key's animal only if it has no shelter id yet (it was
    alone): a photo people already placed stays where it is."""
    keyed: dict[str, list[int]] = defaultdict(list)
    alone: list[int] = []
    anonymous: dict[int, int] = {}  # known photos that join a keyed animal → their old one
    for image_id, path in photos:
        key = rule.key(path)
        (keyed[key] if key else alone).append(image_id)
    if rule.pattern is not None:
        regroup = {image_id: key for image_id, path in known if (key := rule.key(path))}
        anonymous = dict(
            session.execute(
                select(Image.id, Image.animal_id)
                .join(Animal, Animal.id == Image.animal_id)
                .where(Image.id.in_(regroup), Animal.external_id.is_(None))
            ).all()
        )
        for image_id in anonymous:
            keyed[regroup[image_id]].append(image_id)
    if keyed:
        session.execute(
            insert_ignoring_conflicts(session, Animal, ["external_id"]),
            [{"external_id": key} for key in keyed],
        )
        ids = dict(
            session.execute(
                select(Animal.external_id, Animal.id).where(Animal.external_id.in_(keyed))
            ).all()
        )
        _set_animal(session, [(i, ids[key]) for key, images in keyed.items() for i in images])
        # An animal in the trash whose id comes with new photos is back (its trashed photos
        # stay in the trash).
        session.execute(
            update(Animal)
            .where(Animal.id.in_(ids.values()), Animal.deletion_id.isnot(None))
            .values(deletion_id=None)
        )
        drop_empty_animals(session, anonymous.values())
    if alone:
        created = session.scalars(
            insert(Animal).returning(Animal.id, sort_by_parameter_order=True),
            [{"external_id": None} for _ in alone],
        ).all()
        _set_animal(session, list(zip(alone, created, strict=True)))


def _set_animal(session: Session, pairs: list[tuple[int, int]]) -> None:
    if pairs:
        session.execute(
            update(Image), [{"id": image_id, "animal_id": animal} for image_id, animal in pairs]
        )


def move_photos(session: Session, animal_id: int, image_ids: list[int]) -> list[int]:
    """Move photos to ``animal_id``; animals left without photos are deleted. Returns the
    ids of the photos that exist."""
    previous = dict(
        session.execute(
            select(Image.id, Image.animal_id).where(
                Image.id.in_(image_ids), Image.deletion_id.is_(None)
            )
        ).all()
    )
    session.execute(update(Image).where(Image.id.in_(previous)).values(animal_id=animal_id))
    drop_empty_animals(session, previous.values())
    return list(previous)


def drop_empty_animals(session: Session, candidates: Iterable[int | None]) -> None:
    """Delete those of ``candidates`` left without photos."""
    ids = {c for c in candidates if c is not None}
    if ids:
        session.execute(
            delete(Animal).where(Animal.id.in_(ids), ~exists().where(Image.animal_id == Animal.id))
        )


@dataclass(frozen=True)
class PooledBreed:
    """The animal's species, and a dog's breed, from all its photos. The species most of
    them show (a tie goes to dog), with the mean of its probability over the photos (0 where
    a photo says another species); a dog's breed is the mean of the photos' breed
    probabilities (of the model's top 5 each; a breed outside a photo's top 5 counts 0)."""

    species: str
    species_confidence: float
    breed: str | None  # None unless a dog
    confidence: float
    top_k: list[dict]
    agreeing: list[int]  # photos whose own answer (breed, or species if not a dog) is the animal's


def pool(photos: list) -> PooledBreed:
    """``photos``: rows with ``id``, ``species``, ``species_confidence``, ``breed`` (the
    photo's top breed or None: not a dog) and ``top_k`` (``[{"breed", "confidence"}]``)."""
    votes = Counter(p.species for p in photos)
    species = max(votes, key=lambda s: (votes[s], s == "dog"))
    sure = sum(p.species_confidence for p in photos if p.species == species) / len(photos)
    if species != "dog":  # a cat's breed among 120 dog breeds means nothing
        agreeing = [p.id for p in photos if p.species == species]
        return PooledBreed(species, round(sure, 4), None, 0.0, [], agreeing)
    total: dict[str, float] = defaultdict(float)
    for photo in photos:
        for item in photo.top_k:
            total[item["breed"]] += item["confidence"] / len(photos)
    ranked = sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    breed = ranked[0][0] if ranked else None
    return PooledBreed(
        species=species,
        species_confidence=round(sure, 4),
        breed=breed,
        confidence=round(ranked[0][1], 4) if ranked else 0.0,
        top_k=[{"breed": b, "confidence": round(c, 4)} for b, c in ranked],
        agreeing=[p.id for p in photos if p.breed == breed and breed is not None],
    )


@dataclass(frozen=True)
class AnimalView:
    """An animal as a page shows it: its photos (``id``, ``path``, and the model's
    ``breed``, ``confidence``, ``top_k``, all None until classified) and its pooled breed."""

    animal: Animal
    photos: list
    pooled: PooledBreed | None
    label: AgreedLabel | None = None


@dataclass(frozen=True)
class AgreedLabel:
    """A person's label shared by all the animal's photos (``core.labels.LabelValue``'s
    fields; not that class: core.labels imports core.libraries, which imports this module)."""

    species: str
    breeds: tuple[str, ...]
    mix: bool


def animal_views(
    session: Session, animals: list[Animal], model_version_id: int | None
) -> list[AnimalView]:
    """Every photo of these animals with the model's answer and its current label, in one
    query."""
    rows = session.execute(
        select(
            Image.animal_id, Image.id, Image.path, Prediction.species,
            Prediction.species_confidence, Prediction.breed, Prediction.confidence,
            Prediction.top_k, Label.id.label("label_id"), Label.species.label("label_species"),
            Label.breed.label("label_breed"), Label.breeds.label("label_breeds"),
            Label.mix.label("label_mix"),
        )
        .outerjoin(
            Prediction,
            (Prediction.image_id == Image.id)
            & (Prediction.model_version_id == model_version_id),
        )
        .outerjoin(Label, (Label.image_id == Image.id) & Label.current.is_(True))
        .where(Image.animal_id.in_([a.id for a in animals]), Image.deletion_id.is_(None))
        .order_by(Image.id)
    ).all()  # fmt: skip
    by_animal: dict[int, list] = defaultdict(list)
    for row in rows:
        by_animal[row.animal_id].append(row)
    views = []
    for animal in animals:
        photos = by_animal[animal.id]
        classified = [p for p in photos if p.top_k is not None]
        pooled = pool(classified) if classified else None
        views.append(AnimalView(animal, photos, pooled, agreed_label(photos)))
    return views


def photo_label(photo) -> AgreedLabel | None:
    """A person's current label of one photo row of ``animal_views``; None if it has none."""
    if photo.label_id is None:
        return None
    breeds = photo.label_breeds or ([photo.label_breed] if photo.label_breed else [])
    return AgreedLabel(photo.label_species, tuple(breeds), bool(photo.label_mix))


def agreed_label(photos: list) -> AgreedLabel | None:
    """The person's label every photo of the animal has (labelling the animal gives each
    photo the same one); None if a photo has none or two differ."""
    labels = {photo_label(p) for p in photos}
    return labels.pop() if len(labels) == 1 and None not in labels else None


class NoSuchPhotos(PawdexError):
    """An animal asked for made of photos that do not exist (the API answers 404)."""


class AnimalConflict(PawdexError):
    """Another animal already has this external id (the API answers 409)."""


@dataclass
class AnimalFilters:
    external_id: str | None = None  # the shelter's id, any case
    name: str | None = None  # part of the name, any case
    folder: str | None = None  # a photo's path starts with it
    breed: str | None = None  # a photo shows this breed (in the catalogue: label over model)
    version_id: int | None = None  # the model version ``breed`` is read from
    indexed_after: datetime | None = None  # a photo indexed at or after
    indexed_before: datetime | None = None  # a photo indexed before
    intake_after: date | None = None  # intake on or after
    intake_before: date | None = None  # intake on or before


def _animals_matching(stmt: Select, filters: AnimalFilters) -> Select:
    stmt = stmt.where(Animal.deletion_id.is_(None))  # not in the trash
    if filters.external_id:
        stmt = stmt.where(func.lower(Animal.external_id) == filters.external_id.lower())
    if filters.name:
        stmt = stmt.where(func.lower(Animal.name).contains(filters.name.lower(), autoescape=True))
    if filters.intake_after is not None:
        stmt = stmt.where(Animal.intake_date >= filters.intake_after)
    if filters.intake_before is not None:
        stmt = stmt.where(Animal.intake_date <= filters.intake_before)
    photos = select(Image.animal_id).where(
        Image.animal_id.is_not(None), Image.deletion_id.is_(None)
    )
    narrowed = False
    if filters.folder:
        photos = photos.where(Image.path.like(escape_like(filters.folder) + "%", escape="\\"))
        narrowed = True
    if filters.indexed_after is not None:
        photos, narrowed = photos.where(Image.created_at >= filters.indexed_after), True
    if filters.indexed_before is not None:
        photos, narrowed = photos.where(Image.created_at < filters.indexed_before), True
    if filters.breed:
        photos = photos.join(Prediction, Prediction.image_id == Image.id).where(
            Prediction.model_version_id == filters.version_id,
            Prediction.catalog_breed == filters.breed,
        )
        narrowed = True
    # One set of matching photos, their animals kept: each filter on the same photo.
    return stmt.where(Animal.id.in_(photos)) if narrowed else stmt


def list_animals(
    session: Session, filters: AnimalFilters, limit: int, before: int | None
) -> list[Animal]:
    """Animals, newest first (keyset on id), filtered on their own fields and on their
    photos (an animal matches when one of its photos matches every photo filter)."""
    stmt = _animals_matching(select(Animal), filters).order_by(Animal.id.desc()).limit(limit)
    if before is not None:
        stmt = stmt.where(Animal.id < before)
    return list(session.scalars(stmt))


def count_animals(session: Session, filters: AnimalFilters) -> tuple[int, bool]:
    """How many animals ``list_animals`` finds, up to ``db.COUNT_CAP``, and whether more."""
    matching = _animals_matching(select(Animal.id), filters).order_by(Animal.id.desc())
    return count_capped(session, matching)


def update_animal(
    session: Session,
    animal: Animal,
    external_id: str | None,
    name: str | None,
    intake_date: date | EllipsisType | None = ...,
) -> Animal:
    """Set what is given: None leaves a string field as it is, an empty one clears it; the
    intake date is left as it is only when not given (``...``), None clears it."""
    if external_id is not None:
        external_id = external_id.strip() or None
        taken = session.scalar(
            select(Animal.id).where(Animal.external_id == external_id, Animal.id != animal.id)
        )
        if external_id and taken is not None:
            raise AnimalConflict(f"animal {taken} already has the id {external_id!r}")
        animal.external_id = external_id
    if name is not None:
        animal.name = name.strip() or None
    if intake_date is not ...:
        animal.intake_date = intake_date
    return animal


def new_animal(
    session: Session,
    image_ids: list[int],
    external_id: str | None,
    name: str | None,
    intake_date: date | None = None,
) -> Animal:
    """An animal made of these photos, taken from their animals (split); NoSuchPhotos when
    none of them exists."""
    live = (Image.id.in_(image_ids), Image.deletion_id.is_(None))
    if session.scalar(select(func.count()).where(*live)) == 0:
        raise NoSuchPhotos(f"none of the photos {sorted(set(image_ids))[:10]} exists")
    animal = Animal()
    session.add(animal)
    session.flush()
    update_animal(session, animal, external_id, name, intake_date)
    move_photos(session, animal.id, image_ids)
    return animal


def merge_animals(session: Session, into: Animal, others: list[int]) -> None:
    """Every photo of ``others`` moves to ``into``; the others are deleted (their external
    id and name go to ``into`` where it has none)."""
    others_live = (Animal.id.in_(others), Animal.id != into.id, Animal.deletion_id.is_(None))
    for other in session.scalars(select(Animal).where(*others_live)):
        external_id, other.external_id = other.external_id, None
        session.flush()  # the id is free before ``into`` takes it
        into.external_id = into.external_id or external_id
        into.name = into.name or other.name
        session.execute(update(Image).where(Image.animal_id == other.id).values(animal_id=into.id))
        session.delete(other)
    session.flush()
