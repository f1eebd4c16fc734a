from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse

from pawdex.api.deps import RowId, SessionDep, SettingsDep, require
from pawdex.api.schemas import errors
from pawdex.core.models import Image, Role
from pawdex.core.storage import Storage
from pawdex.formats import MEDIA_TYPES, media_type

router = APIRouter(
    prefix="/v1/images",
    tags=["files"],
    dependencies=[Depends(require(Role.viewer))],
    responses=errors(400, 401, 404, 429),
)

IMMUTABLE = {
    "Cache-Control": "public, max-age=31536000, immutable",
    # A stored file is whatever the uploader sent: never let a browser sniff it into HTML.
    "X-Content-Type-Options": "nosniff",
}
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_PHOTO = {
    "description": "The photo's bytes, in the format it was uploaded in.",
    "content": {t: _BINARY for t in [*MEDIA_TYPES, "application/octet-stream"]},
}
_THUMBNAIL = {"description": "A JPEG thumbnail.", "content": {"image/jpeg": _BINARY}}


def _image(session, image_id: int) -> Image:
    image = session.get(Image, image_id)
    if image is None:
        raise HTTPException(404, f"image {image_id} not found")
    return image


@router.get("/{image_id}/file", response_class=FileResponse, responses={200: _PHOTO})
def image_file(image_id: RowId, session: SessionDep, settings: SettingsDep) -> FileResponse:
    """The stored photo, byte for byte as uploaded."""
    image = _image(session, image_id)
    return FileResponse(
        Storage(settings.storage_dir).path(image.stored_path),
        media_type=media_type(image.format),
        headers=IMMUTABLE,
    )


@router.get("/{image_id}/thumbnail", response_class=FileResponse, responses={200: _THUMBNAIL})
def image_thumbnail(image_id: RowId, session: SessionDep, settings: SettingsDep) -> FileResponse:
    """A small JPEG of the photo (shorter side `PAWDEX_THUMBNAIL_SIZE`), made at ingest."""
    image = _image(session, image_id)
    if not image.thumbnail_path:
        raise HTTPException(404, f"image {image_id} has no thumbnail")
    return FileResponse(
        Storage(settings.storage_dir).path(image.thumbnail_path),
        media_type="image/jpeg",
        headers=IMMUTABLE,
    )
