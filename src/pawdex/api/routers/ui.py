"""The web UI: server-rendered page shells. The data comes through the JSON API
(``api/static/app.js`` calls it with the session cookie), so these routes read nothing."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from pawdex.core.models import FINISHED_STATUSES, JobStatus, Role

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "templates")
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
# The words the pages share with the API come from its enums: the templates name roles and
# statuses through these, and base.html hands ``vocabulary`` to app.js.
TEMPLATES.env.globals.update(
    Role=Role,
    job_statuses=[s.value for s in JobStatus],
    vocabulary={
        "roles": [r.value for r in Role],  # lowest first
        "finished_statuses": [s.value for s in JobStatus if s in FINISHED_STATUSES],
    },
)

# Everything the pages load is ours: no inline script (base.html's JSON block is data, not
# run), nothing from another origin, no framing. Stored photos are user content; this keeps
# any that slip through inert.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

router = APIRouter(include_in_schema=False)


def _page(request: Request, template: str, page: str, **context: object) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(
        request, template, {"page": page, **context}, headers=SECURITY_HEADERS
    )


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/", response_class=HTMLResponse)
def gallery(request: Request) -> HTMLResponse:
    return _page(request, "gallery.html", "gallery")


@router.get("/ui/login", response_class=HTMLResponse)
def login(request: Request) -> HTMLResponse:
    return _page(request, "login.html", "login")


@router.get("/ui/upload", response_class=HTMLResponse)
def upload(request: Request) -> HTMLResponse:
    chunk_bytes = request.app.state.settings.resumable_chunk_bytes  # app.js reads it
    return _page(request, "upload.html", "upload", chunk_bytes=chunk_bytes)


@router.get("/ui/jobs", response_class=HTMLResponse)
def jobs(request: Request) -> HTMLResponse:
    return _page(request, "jobs.html", "jobs")


@router.get("/ui/jobs/{job_id}", response_class=HTMLResponse)
def job(request: Request, job_id: str) -> HTMLResponse:
    return _page(request, "job.html", "job", job_id=job_id)


@router.get("/ui/photos/{photo_id}", response_class=HTMLResponse)
def photo(request: Request, photo_id: str) -> HTMLResponse:
    # Not validated here: the page asks the API, whose 404 or 422 the page shows.
    return _page(request, "photo.html", "photo", animal_id=photo_id)


@router.get("/ui/animals", response_class=HTMLResponse)
def animals(request: Request) -> HTMLResponse:
    return _page(request, "animals.html", "animals")


@router.get("/ui/animals/{animal_id}", response_class=HTMLResponse)
def animal(request: Request, animal_id: str) -> HTMLResponse:
    return _page(request, "animal.html", "animal", animal_id=animal_id)


@router.get("/ui/review", response_class=HTMLResponse)
def review(request: Request) -> HTMLResponse:
    return _page(request, "review.html", "review")


@router.get("/ui/trash", response_class=HTMLResponse)
def trash(request: Request) -> HTMLResponse:
    return _page(request, "trash.html", "trash")


@router.get("/ui/admin", response_class=HTMLResponse)
def admin(request: Request) -> HTMLResponse:
    return _page(request, "admin.html", "admin")
