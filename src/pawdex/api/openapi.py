"""The OpenAPI document as clients read it.

FastAPI with pydantic v2 writes an uploaded file as OpenAPI 3.1's ``contentMediaType``
alone; client generators (openapi-python-client), Swagger UI and fuzzers look for
``format: binary`` and otherwise send the file as a text field (422). Each file field of a
``multipart/form-data`` body is given both."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

Schema = dict[str, Any]


def declare_binary_files(document: Schema) -> Schema:
    """``format: binary`` on every file field of a multipart body (in place)."""
    components = document.get("components", {}).get("schemas", {})
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            content = operation.get("requestBody", {}).get("content", {})
            if body := content.get("multipart/form-data"):
                form = _resolved(body.get("schema", {}), components)
                for field in form.get("properties", {}).values():
                    _mark_binary(field)
    return document


def _resolved(schema: Schema, components: Schema) -> Schema:
    if ref := schema.get("$ref"):
        return components.get(ref.rsplit("/", 1)[-1], {})
    return schema


def _mark_binary(schema: Schema) -> None:
    if schema.get("type") == "string" and "contentMediaType" in schema:
        schema["format"] = "binary"
    if isinstance(items := schema.get("items"), dict):
        _mark_binary(items)
    for sub in (*schema.get("anyOf", ()), *schema.get("oneOf", ()), *schema.get("allOf", ())):
        _mark_binary(sub)


def use_client_ready_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and ``/openapi.json``) serve the document post-processed."""
    generate: Callable[[], Schema] = app.openapi

    def openapi() -> Schema:
        if app.openapi_schema is None:
            app.openapi_schema = declare_binary_files(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
