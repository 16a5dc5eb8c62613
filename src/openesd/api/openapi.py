"""`/openapi.json` with the request bodies the gateway really checks.

Bodies are read by dependencies (`esd_body`, the legacy `legacy_body`) rather than by FastAPI, so
FastAPI cannot see them; each such dependency carries its JSON schema as `request_schema`, and the
generated document gets a `requestBody` for every route that depends on one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute


def install_openapi(app: FastAPI) -> None:
    """Serve the generated document with each route's request body added (built once, then cached)."""

    generate = app.openapi  # FastAPI's own: builds the document once and keeps it in app.openapi_schema

    def openapi() -> dict[str, Any]:
        document = app.openapi_schema
        if document is None:
            document = generate()  # also kept in app.openapi_schema, so the bodies are added once
            add_request_bodies(document, app.routes)
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the document


def add_request_bodies(document: dict[str, Any], routes: Sequence[BaseRoute]) -> None:
    # Included routers are expanded lazily; iter_route_contexts yields each route with its full path.
    for route in iter_route_contexts(routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        schema = request_schema(route.dependant)
        if schema is None:
            continue
        operations = document["paths"].get(route.path_format, {})
        for method in route.methods or ():  # an APIRoute always has its methods
            if method.lower() in operations:
                operations[method.lower()]["requestBody"] = _request_body(schema)


def request_schema(dependant: Dependant) -> dict[str, Any] | None:
    """The body schema of the first body-reading dependency of a route, if it has one."""
    for child in _dependencies(dependant):
        schema: dict[str, Any] | None = getattr(child.call, "request_schema", None)
        if schema is not None:
            return schema
    return None


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for child in dependant.dependencies:
        yield child
        yield from _dependencies(child)


def _request_body(schema: dict[str, Any]) -> dict[str, Any]:
    # Not `required`: ESD's gateway reads an empty body as `{}` and validates that.
    return {"content": {"application/json": {"schema": schema}}}
