"""The ESD response envelope `{statusCode, data?, message?}` and the headers handler responses carry."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from fastapi.responses import JSONResponse, Response

from openesd import ESD_API_VERSION

DEFAULT_MESSAGES = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    500: "Internal Server Error",
    504: "Endpoint request timed out",
}

HANDLER_HEADERS = {
    "x-api-version": ESD_API_VERSION,
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "*",
    "Access-Control-Allow-Methods": "*",
    "Access-Control-Allow-Credentials": "true",
}


def esd_response(status: int = 200, data: Any = None, message: str | None = None) -> Response:
    """A handler response: `data` only when non-empty, `message` defaulting per status; 204 is empty."""
    if status == 204:
        return Response(status_code=204, headers=HANDLER_HEADERS)
    body: dict[str, Any] = {"statusCode": status}
    if data:
        body["data"] = data
    body["message"] = message or DEFAULT_MESSAGES.get(status, "")
    return _ESDJSONResponse(body, status_code=status, headers=HANDLER_HEADERS)


def gateway_response(status: int, message: str, *, with_status_code: bool = False) -> Response:
    """A response the API Gateway itself would produce: no ESD headers, `statusCode` only for 400s."""
    body: dict[str, Any] = {"message": message}
    if with_status_code:
        body = {"statusCode": status, "message": message}
    return JSONResponse(body, status_code=status)


class _ESDJSONResponse(JSONResponse):
    """Starlette's JSON bytes, with a Decimal (DynamoDB's number type in ESD's records) written as a string;
    the encoder asks for it only when it meets one, where walking every value cost a listing a fifth of its
    time."""

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"), default=_decimal
        ).encode("utf-8")


def _decimal(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
