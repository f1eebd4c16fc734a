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
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, exists, func, insert, select, update
from sqlalchemy.orm import Session

from pawdex.core.errors import PawdexError
from pawdex.core.jobs import insert_ignoring_conflicts
from pawdex.core.models import Animal, Image, Prediction

KEY_MAX = 64  # animals.external_id


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
        session.execute(select(Image.id, Image.animal_id).where(Image.id.in_(image_ids))).all()
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
    """The animal's breed from all its photos: the mean of their probabilities (of the
    model's top 5 each; a breed outside a photo's top 5 counts 0 for it)."""

    breed: str | None
    confidence: float
    top_k: list[dict]
    agreeing: list[int]  # photos whose own top breed is the pooled one


def pool(photos: list) -> PooledBreed:
    """``photos``: rows with ``id``, ``breed`` (the photo's top breed or None: not a dog)
    and ``top_k`` (``[{"breed", "confidence"}]``)."""
    total: dict[str, float] = defaultdict(float)
    for photo in photos:
        for item in photo.top_k:
            total[item["breed"]] += item["confidence"] / len(photos)
    ranked = sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    breed = ranked[0][0] if ranked else None
    return PooledBreed(
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


def animal_views(
    session: Session, animals: list[Animal], model_version_id: int | None
) -> list[AnimalView]:
    """Every photo of these animals with the model's answer, in one query."""
    rows = session.execute(
        select(
            Image.animal_id, Image.id, Image.path, Prediction.breed, Prediction.confidence,
            Prediction.top_k,
        )
        .outerjoin(
            Prediction,
            (Prediction.image_id == Image.id)
            & (Prediction.model_version_id == model_version_id),
        )
        .where(Image.animal_id.in_([a.id for a in animals]))
        .order_by(Image.id)
    ).all()  # fmt: skip
    by_animal: dict[int, list] = defaultdict(list)
    for row in rows:
        by_animal[row.animal_id].append(row)
    views = []
    for animal in animals:
        photos = by_animal[animal.id]
        classified = [p for p in photos if p.top_k is not None]
        views.append(AnimalView(animal, photos, pool(classified) if classified else None))
    return views


class NoSuchPhotos(PawdexError):
    """An animal asked for made of photos that do not exist (the API answers 404)."""


class AnimalConflict(PawdexError):
    """Another animal already has this external id (the API answers 409)."""


def list_animals(
    session: Session, limit: int, before: int | None, external_id: str | None, name: str | None
) -> list[Animal]:
    """Animals, newest first (keyset on id), by the shelter's id (any case) or part of the
    name (any case)."""
    stmt = select(Animal).order_by(Animal.id.desc()).limit(limit)
    if before is not None:
        stmt = stmt.where(Animal.id < before)
    if external_id:
        stmt = stmt.where(func.lower(Animal.external_id) == external_id.lower())
    if name:
        stmt = stmt.where(func.lower(Animal.name).contains(name.lower(), autoescape=True))
    return list(session.scalars(stmt))


def update_animal(
    session: Session, animal: Animal, external_id: str | None, name: str | None
) -> Animal:
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
    return animal


def new_animal(
    session: Session, image_ids: list[int], external_id: str | None, name: str | None
) -> Animal:
    """An animal made of these photos, taken from their animals (split); NoSuchPhotos when
    none of them exists."""
    if session.scalar(select(func.count()).where(Image.id.in_(image_ids))) == 0:
        raise NoSuchPhotos(f"none of the photos {sorted(set(image_ids))[:10]} exists")
    animal = Animal()
    session.add(animal)
    session.flush()
    update_animal(session, animal, external_id, name)
    move_photos(session, animal.id, image_ids)
    return animal


def merge_animals(session: Session, into: Animal, others: list[int]) -> None:
    """Every photo of ``others`` moves to ``into``; the others are deleted (their external
    id and name go to ``into`` where it has none)."""
    for other in session.scalars(select(Animal).where(Animal.id.in_(others), Animal.id != into.id)):
        external_id, other.external_id = other.external_id, None
        session.flush()  # the id is free before ``into`` takes it
        into.external_id = into.external_id or external_id
        into.name = into.name or other.name
        session.execute(update(Image).where(Image.animal_id == other.id).values(animal_id=into.id))
        session.delete(other)
    session.flush()
