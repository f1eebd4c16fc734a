from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse
from sqlalchemy import select

from pawdex.api.deps import RowId, SessionDep, SettingsDep, found, require
from pawdex.api.schemas import CheckIn, CheckOut, errors
from pawdex.core.libraries import original_path
from pawdex.core.models import Image, Role
from pawdex.core.storage import Storage
from pawdex.formats import MEDIA_TYPES, media_type

router = APIRouter(
    prefix="/v1/images",
    tags=["files"],
    dependencies=[Depends(require(Role.viewer))],
    responses=errors(400, 401, 404, 429, 503),
)

IMMUTABLE = {
    "Cache-Control": "public, max-age=31536000, immutable",
    # A stored file is whatever the uploader sent: never let a browser sniff it into HTML.
    "X-Content-Type-Options": "nosniff",
}
# A library's file can change under its path until the next scan: revalidate.
NOT_STORED = {"Cache-Control": "private, no-cache", "X-Content-Type-Options": "nosniff"}
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_PHOTO = {
    "description": "The photo's bytes, in the format it was uploaded in.",
    "content": {t: _BINARY for t in [*MEDIA_TYPES, "application/octet-stream"]},
}
_THUMBNAIL = {"description": "A JPEG thumbnail.", "content": {"image/jpeg": _BINARY}}


@router.get("/{image_id}/file", response_class=FileResponse, responses={200: _PHOTO})
def image_file(image_id: RowId, session: SessionDep, settings: SettingsDep) -> FileResponse:
    """The photo byte for byte as uploaded, or as its library holds it (read in place)."""
    image = found(session.get(Image, image_id), f"image {image_id}")
    return FileResponse(
        original_path(session, image, Storage(settings.storage_dir)),
        media_type=media_type(image.format),
        headers=IMMUTABLE if image.stored_path else NOT_STORED,
    )


@router.get("/{image_id}/thumbnail", response_class=FileResponse, responses={200: _THUMBNAIL})
def image_thumbnail(image_id: RowId, session: SessionDep, settings: SettingsDep) -> FileResponse:
    """A small JPEG of the photo (shorter side `PAWDEX_THUMBNAIL_SIZE`), made at ingest."""
    image = found(session.get(Image, image_id), f"image {image_id}")
    thumbnail = found(image.thumbnail_path or None, f"thumbnail of image {image_id}")
    return FileResponse(
        Storage(settings.storage_dir).path(thumbnail),
        media_type="image/jpeg",
        headers=IMMUTABLE,
    )


@router.post("/check", response_model=CheckOut, responses=errors(403))
def check_known(body: CheckIn, session: SessionDep) -> CheckOut:
    """Which of these files the archive already holds, by content: ``pawdex index`` asks
    before it sends a folder's photos, so a rerun sends only what is new."""
    wanted = set(body.sha256)
    known = session.scalars(select(Image.sha256).where(Image.sha256.in_(wanted)))
    return CheckOut(known=sorted(known))
