from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from pawdex.api.deps import SettingsDep
from pawdex.api.schemas import Readiness, errors
from pawdex.core.db import get_engine
from pawdex.core.queue import get_celery
from pawdex.core.storage import open_storage

router = APIRouter(tags=["health"], responses=errors(400))  # 400: a NUL byte in the URL


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        503: {"model": Readiness, "description": "The database, the broker or the storage is down."}
    },
)
def readyz(settings: SettingsDep) -> JSONResponse:
    """Readiness: the database and the broker answer, and files can be stored (the folder is
    writable, or the bucket answers)."""
    checks: dict[str, str] = {}
    try:
        with get_engine(settings).connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        with get_celery(settings).connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"error: {type(exc).__name__}"
    try:
        open_storage(settings).check()
        checks["storage"] = "ok"
    except Exception as exc:
        checks["storage"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", **checks}, 200 if ready else 503
    )
