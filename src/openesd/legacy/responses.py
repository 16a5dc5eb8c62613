"""The legacy response families (esd-legacy-api.md §1.4): F answers with real statuses and bare JSON,
L answers HTTP 200 with the outcome inside the body. No 1.5.0 envelope, no `x-api-version`.

The legacy error convention, written down here once: a family-L route that fails answers **HTTP 200** with the
failure in the body, `{"statusCode": 500, <the route's error key>: <message>}` (`lambda_error`; the key, e.g.
`error` or `msg`, whether `statusCode` is an int or a string, and the few client mistakes that carry 400 instead are
each route's, as ESD had them). Clients of the old API read `statusCode` from the body, never the HTTP status, so
these routes must not answer 4xx/5xx for a refused request. Family F (`fastapi_error`) and the gateway's own
refusals (401, 400 `Invalid request body`) keep real statuses. Services raise `OpenESDError`s as everywhere else;
the legacy modules translate them into a `LegacyError` in their route's shape, and `render_legacy_error` sends it as
is (docs/decisions.md, "Legacy routes")."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from openesd.api.inputs import BadBody, parse_json
from openesd.api.gateway import body_validation_error

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "*",
    "Access-Control-Allow-Methods": "*",
}
# The checkpoint handlers carried their CORS map inside the body (Quirk kept: clients may read it).
BODY_HEADERS = {
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "OPTIONS,POST,GET",
}


class LegacyError(Exception):
    """A refusal already in its route's legacy shape: `body` goes out as is with `status`."""

    def __init__(self, body: Any, status: int = 200):
        super().__init__(body)
        self.body = body
        self.status = status


def answer(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=CORS_HEADERS)


def fastapi_error(message: str, status: int) -> LegacyError:
    """Family F: `{"detail": ...}` with a real status."""
    return LegacyError({"detail": message}, status)


def lambda_error(status_code: int | str, key: str, message: Any, **extra: Any) -> LegacyError:
    """Family L: HTTP 200, `statusCode` (int or the string some handlers used) and the route's error key."""
    return LegacyError({"statusCode": status_code, **extra, key: message})


def unauthorized() -> LegacyError:
    return LegacyError({"message": "Unauthorized"}, 401)


def invalid_body() -> LegacyError:
    return LegacyError({"message": "Invalid request body"}, 400)


async def read_object(request: Request) -> dict:
    """The JSON object body; anything else is the gateway's `Invalid request body` (HTTP 400)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = parse_json(raw)
    except BadBody as error:  # the gateway's own refusal, which names the place (api/inputs.py)
        raise body_validation_error([error.message]) from None
    except (ValueError, UnicodeDecodeError):
        raise invalid_body() from None
    if not isinstance(body, dict):
        raise invalid_body()
    return body


async def render_legacy_error(_: Request, error: LegacyError) -> JSONResponse:
    return answer(error.body, error.status)


Body = Annotated[dict, Depends(read_object)]


def legacy_body(schema: dict[str, Any]) -> Any:
    """`Annotated[dict, legacy_body(SCHEMA)]`: the JSON object body, published with `schema` (api/openapi.py)."""

    async def dependency(request: Request) -> dict:
        return await read_object(request)

    dependency.request_schema = schema
    return Depends(dependency)
