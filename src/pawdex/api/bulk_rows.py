"""The rows of a bulk request: JSON ``items``, or a CSV as a file field or as the body itself
(labels: ``POST /v1/labels``; animal records: ``PATCH /v1/animals``)."""

from __future__ import annotations

import json
from typing import TypeVar

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile  # what request.form() holds

from pawdex.api.schemas import AnimalRecordsIn, LabelsIn
from pawdex.core.animal_import import (
    AnimalRow,
    InvalidAnimalRows,
    RowRefused,
    checked_row,
    read_animals_csv,
)
from pawdex.core.label_import import LabelRow, read_labels_csv
from pawdex.core.labels import InvalidLabel

RowErrors = list[tuple[int, str]]
Body = TypeVar("Body", bound=BaseModel)


async def read_label_rows(request: Request, limit: int) -> tuple[list[LabelRow], RowErrors]:
    """The rows to import and the CSV rows that could not be read. 422 (FastAPI's list
    shape) for a JSON body that is not ``LabelsIn``, 413 over ``limit`` bytes, InvalidLabel
    (400) for a CSV that is not one."""
    data, is_csv = await _body(request, limit, "a label import")
    if is_csv:
        return read_labels_csv(_text(data, InvalidLabel("the labels CSV is not UTF-8 text")))
    body = _json(data, LabelsIn)
    return [
        LabelRow(
            row=i,
            image_id=item.photo_id,
            sha256=None,
            species=item.species,
            breeds=list(item.breeds),
            mix=item.mix,
            breed=item.breed,
        )
        for i, item in enumerate(body.items)
    ], []


async def read_animal_rows(request: Request, limit: int) -> tuple[list[AnimalRow], RowErrors]:
    """``read_label_rows`` for animal records (``AnimalRecordsIn``, or a shelter's CSV
    export: InvalidAnimalRows, 400, when it is not one)."""
    data, is_csv = await _body(request, limit, "an animals import")
    if is_csv:
        return read_animals_csv(_text(data, InvalidAnimalRows("the animals CSV is not UTF-8")))
    rows, errors = [], []
    for i, item in enumerate(_json(data, AnimalRecordsIn).items):
        try:
            rows.append(checked_row(i, item.external_id, item.name, item.intake_date))
        except RowRefused as exc:
            errors.append((i, str(exc)))
    return rows, errors


async def _body(request: Request, limit: int, what: str) -> tuple[bytes, bool]:
    """The request's bytes, and whether they are a CSV."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            missing = {"type": "missing", "loc": ("body", "file"), "msg": "Field required",
                       "input": None}  # fmt: skip
            raise RequestValidationError([missing])
        return _limited(await upload.read(limit + 1), limit, what), True
    body = _limited(await request.body(), limit, what)
    return body, kind in ("text/csv", "text/plain")


def _limited(data: bytes, limit: int, what: str) -> bytes:
    if len(data) > limit:
        raise HTTPException(413, f"{what} is at most {limit} bytes")
    return data


def _text(data: bytes, not_text: Exception) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise not_text from None


def _json(data: bytes, model: type[Body]) -> Body:
    try:
        return model.model_validate(json.loads(data))
    except ValidationError as exc:
        problems = exc.errors(include_url=False)
        for problem in problems:
            problem["loc"] = ("body", *problem["loc"])
        raise RequestValidationError(problems) from None
    except ValueError as exc:  # not JSON, or not UTF-8
        invalid = {"type": "json_invalid", "loc": ("body", getattr(exc, "pos", 0)),
                   "msg": "JSON decode error", "input": {}, "ctx": {"error": str(exc)}}  # fmt: skip
        raise RequestValidationError([invalid]) from None
