from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy import select

from pawdex.api.deps import RowId, SessionDep, SettingsDep, ViewerKey, found, require
from pawdex.api.schemas import CheckIn, CheckOut, ThumbnailsIn, errors
from pawdex.core.libraries import original_path
from pawdex.core.models import ApiKey, Image, Role
from pawdex.core.storage import Stream, open_storage
from pawdex.core.tarstream import tar_stream
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
_THUMBNAILS = {
    "description": "A tar archive (USTAR) of `<id>.jpg` members, in the order asked, of the "
    "photos that have a thumbnail; a photo missing or in the trash is simply absent.",
    "content": {"application/x-tar": _BINARY},
}


def _sees_trash(key: ApiKey) -> bool:
    """Those who may restore a photo see its thumbnail while it is in the trash."""
    return key.role.allows(Role.archivist)


def _visible(image: Image | None, trash: bool) -> Image | None:
    """A photo in the trash is not found, but by those who may restore it (its thumbnail)."""
    return image if image is not None and (image.deletion_id is None or trash) else None


STREAM_CHUNK = 256 * 1024


def _streamed(stream: Stream, media: str, headers: dict[str, str]) -> StreamingResponse:
    """A file from object storage, sent as it arrives: an original is never held whole."""

    def chunks():
        with stream:
            while chunk := stream.read(STREAM_CHUNK):
                yield chunk

    length = {"Content-Length": str(stream.size)}
    return StreamingResponse(chunks(), media_type=media, headers={**headers, **length})


@router.get("/{image_id}/file", response_class=FileResponse, responses={200: _PHOTO})
def image_file(image_id: RowId, session: SessionDep, settings: SettingsDep) -> Response:
    """The photo byte for byte as uploaded, or as its library holds it (read in place)."""
    image = found(_visible(session.get(Image, image_id), trash=False), f"image {image_id}")
    storage, media = open_storage(settings), media_type(image.format)
    path = original_path(session, image, storage)
    if path is None:  # the stored copy is an object in object storage
        return _streamed(storage.open(image.stored_path), media, IMMUTABLE)
    headers = IMMUTABLE if image.stored_path else NOT_STORED
    return FileResponse(path, media_type=media, headers=headers)


@router.get("/{image_id}/thumbnail", response_class=FileResponse, responses={200: _THUMBNAIL})
def image_thumbnail(
    image_id: RowId, session: SessionDep, settings: SettingsDep, key: ViewerKey
) -> Response:
    """A small JPEG of the photo (shorter side `PAWDEX_THUMBNAIL_SIZE`), made at ingest; of
    a photo in the trash, for archivists and admins only (the trash page shows them)."""
    image = found(_visible(session.get(Image, image_id), _sees_trash(key)), f"image {image_id}")
    thumbnail = found(image.thumbnail_path or None, f"thumbnail of image {image_id}")
    storage = open_storage(settings)
    path = storage.local_path(thumbnail)
    if path is None:
        return _streamed(storage.open(thumbnail), "image/jpeg", IMMUTABLE)
    return FileResponse(path, media_type="image/jpeg", headers=IMMUTABLE)


@router.post("/check", response_model=CheckOut, responses=errors(403))
def check_known(body: CheckIn, session: SessionDep) -> CheckOut:
    """Which of these files the archive already holds, by content: ``pawdex index`` asks
    before it sends a folder's photos, so a rerun sends only what is new."""
    wanted = set(body.sha256)
    known = session.scalars(select(Image.sha256).where(Image.sha256.in_(wanted)))
    return CheckOut(known=sorted(known))


@router.post(
    "/thumbnails",
    response_class=StreamingResponse,
    responses={200: _THUMBNAILS, **errors(403, 422)},
)
def thumbnails(
    body: ThumbnailsIn, session: SessionDep, settings: SettingsDep, key: ViewerKey
) -> StreamingResponse:
    """Many thumbnails in one response: an inference worker on another host fetches its
    whole batch with one request (`PAWDEX_THUMBNAIL_SOURCE=api`; one request per photo
    would meet the key's rate limit), then classifies from them. Photos in the trash are
    left out, but for archivists and admins, as `/thumbnail` does (a worker's key that is
    an archivist's classifies a photo deleted while queued, and its prediction waits in the
    trash with it)."""
    wanted = list(dict.fromkeys(body.image_ids))
    stmt = select(Image.id, Image.thumbnail_path).where(
        Image.id.in_(wanted), Image.thumbnail_path.is_not(None)
    )
    if not _sees_trash(key):
        stmt = stmt.where(Image.deletion_id.is_(None))
    found_rows = dict(session.execute(stmt).all())
    keys = [(image_id, found_rows[image_id]) for image_id in wanted if image_id in found_rows]
    storage = open_storage(settings)

    def members():  # read as the response is sent: the session is closed by then
        for image_id, key in keys:
            try:
                data = storage.read(key)
            except OSError:  # a file lost from the storage: absent, as a missing photo
                continue
            yield f"{image_id}.jpg", data

    return StreamingResponse(
        tar_stream(members()), media_type="application/x-tar", headers={"Cache-Control": "no-store"}
    )
