"""Exception handlers: every failure leaves as the ESD envelope or the gateway's own body."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from openesd.api.envelope import esd_response, gateway_response
from openesd.api.gateway import GatewayError
from openesd.errors import OpenESDError

log = logging.getLogger("openesd.api")


async def _openesd_error(_: Request, error: OpenESDError) -> Response:
    if isinstance(error, GatewayError):
        return gateway_response(error.status_code, error.message, with_status_code=error.with_status_code)
    if error.status_code >= 500:
        log.error("%s", error.message)
    response = esd_response(error.status_code, message=error.message)
    response.headers.update(error.headers)
    return response


async def _http_error(_: Request, error: StarletteHTTPException) -> Response:
    if error.status_code in (404, 405):  # no route for this path and method: API Gateway's answer
        return gateway_response(403, "Missing Authentication Token")
    return esd_response(error.status_code, message=str(error.detail))


async def _request_validation_error(_: Request, error: RequestValidationError) -> Response:
    first = error.errors()[0]
    where = " ".join(str(part) for part in first["loc"])
    return esd_response(400, message=f"{where}: {first['msg']}")


async def _unexpected(_: Request, error: Exception) -> Response:
    log.exception("unhandled error", exc_info=error)
    response = gateway_response(500, "Internal server error")
    # Starlette re-raises after this answer and the server then closes the connection: say so, or a
    # keep-alive client sends its next request into the closed socket (ECONNRESET).
    response.headers["Connection"] = "close"
    return response


def install_error_handlers(app: FastAPI) -> None:
    # Starlette types a handler as taking any Exception; it calls each with the class it is registered for.
    app.add_exception_handler(OpenESDError, _openesd_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _request_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
