"""The API's documentation pages, ``/docs`` (Swagger UI) and ``/redoc``, with every asset
served by this server: they work offline, on a shelter's network with no internet.

The Swagger UI and ReDoc bundles come from the ``fastapi-offline`` package (MIT; it ships
swagger-ui-dist and ReDoc's standalone build as package data). Only its files are used: the
pages are FastAPI's own (``get_swagger_ui_html``, ``get_redoc_html``) pointed at them."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs-assets"
ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))

SWAGGER_UI_PARAMETERS = {
    # Swagger UI's default asks validator.swagger.io for a badge: nothing leaves the server.
    "validatorUrl": None,
}


def add_docs(app: FastAPI) -> None:
    """``/docs`` and ``/redoc`` on local assets (create the app with ``docs_url=None,
    redoc_url=None`` so FastAPI's CDN-loading pages are not there)."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    def asset(request: Request, name: str) -> str:
        return f"{request.scope.get('root_path', '')}{ASSETS_URL}/{name}"

    def openapi_url(request: Request) -> str:
        return f"{request.scope.get('root_path', '')}{app.openapi_url}"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url(request),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=asset(request, "swagger-ui-bundle.js"),
            swagger_css_url=asset(request, "swagger-ui.css"),
            swagger_favicon_url=asset(request, "favicon.png"),
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url(request),
            title=f"{app.title} - ReDoc",
            redoc_js_url=asset(request, "redoc.standalone.js"),
            redoc_favicon_url=asset(request, "favicon.png"),
            with_google_fonts=False,
        )
