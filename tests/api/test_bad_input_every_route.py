"""The hand cases of issue 13 against every POST and PUT route that takes a body: each answers 4xx.

`test_bad_input.py` checks the exact messages on one route per family; this sweeps all of them. A lone UTF-16
surrogate in a string field, `1e400` and `Infinity` in a numeric field, JSON nested 100k levels deep, and a body
past the route's size limit. Routes and fields come from the published `/openapi.json`, so a new route is covered as
soon as it is served."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from openesd.server.app import create_app
from tests.api.conftest import API_KEY, make_settings

AUTH = {"x-api-key": API_KEY, "username": "api", "content-type": "application/json"}


def _document() -> dict:
    with tempfile.TemporaryDirectory() as data:
        return create_app(make_settings(Path(data))).openapi()


def _routes(document: dict) -> list[tuple[str, str, dict]]:
    """(method, path, body schema) of every POST and PUT with a body on the root and legacy mounts."""
    return [
        (method.upper(), path, operation["requestBody"]["content"]["application/json"]["schema"])
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if method in ("post", "put") and "requestBody" in operation and not path.startswith("/prod")
    ]


def _field(schema: dict, types: tuple[str, ...]) -> list[str]:
    """The path to the first property of one of `types`, through nested objects; [] when none."""
    for name, child in (schema.get("properties") or {}).items():
        kinds = child.get("type")
        kinds = [kinds] if isinstance(kinds, str) else kinds or []
        if any(kind in types for kind in kinds):
            return [name]
        if "object" in kinds:
            inner = _field(child, types)
            if inner:
                return [name, *inner]
    return []


def _body_with(path: list[str], raw_value: str) -> bytes:
    """A JSON text with `raw_value` (JSON source, not a Python value) at `path`."""
    text = "@VALUE@"
    for name in reversed(path or ["name"]):
        text = f"{{{json.dumps(name)}: {text}}}"
    return text.replace("@VALUE@", raw_value).encode()


ROUTES = _routes(_document())
DEEP = "[" * 100_000 + "]" * 100_000


def _cases():
    for method, path, schema in ROUTES:
        label = f"{method} {path}"
        yield pytest.param(
            method, path, _body_with(_field(schema, ("string",)), '"x\\ud800y"'), id=f"{label} lone surrogate"
        )
        numeric = _field(schema, ("integer", "number"))
        for raw in ("1e400", "Infinity"):
            if numeric:
                yield pytest.param(method, path, _body_with(numeric, raw), id=f"{label} {raw}")
        yield pytest.param(method, path, _body_with(_field(schema, ("string",)), DEEP), id=f"{label} 100k deep")


@pytest.fixture(scope="module")
def client(module_app) -> TestClient:
    return TestClient(module_app, raise_server_exceptions=False)


def _url(path: str) -> str:
    return path.replace("{", "").replace("}", "")  # a path parameter gets its own name as value


@pytest.mark.parametrize(("method", "path", "body"), list(_cases()))
def test_bad_input_answers_4xx(client, method, path, body):
    response = client.request(method, _url(path), content=body, headers=AUTH)
    assert 400 <= response.status_code < 500, f"{response.status_code}: {response.text[:300]}"


@pytest.mark.parametrize(("method", "path"), [(method, path) for method, path, _ in ROUTES])
def test_a_body_past_the_limit_answers_413(client, method, path):
    oversized = b'{"name": "' + b"x" * (64 * 1024**2) + b'"}'
    response = client.request(method, _url(path), content=oversized, headers=AUTH)
    assert response.status_code == 413, f"{response.status_code}: {response.text[:300]}"
