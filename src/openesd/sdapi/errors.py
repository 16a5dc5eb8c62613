"""Failures as the WebUI answers them: FastAPI's 422 detail list for a body that does not validate, and
A1111's `{"error", "detail", "body", "errors"}` for everything else (its api middleware's shape)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from openesd.errors import OpenESDError

log = logging.getLogger("openesd.sdapi")


class JobFailed(OpenESDError):
    """The job ran and failed; its message is the worker's."""

    status_code = 400
    code = "job_failed"


def webui_error(error: OpenESDError) -> JSONResponse:
    name = type(error).__name__
    body = {"error": name, "detail": error.message, "body": "", "errors": error.message}
    return JSONResponse(body, status_code=error.status_code, headers=dict(error.headers))


def validation_error(error: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": jsonable_encoder(error.errors())}, status_code=422)


class WebUIRoute(APIRoute):
    """A route of the WebUI API: its failures leave in the WebUI's shapes, not in the ESD envelope."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answered(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as error:
                return validation_error(error)
            except OpenESDError as error:
                if error.status_code >= 500:
                    log.error("%s %s: %s", request.method, request.url.path, error.message)
                return webui_error(error)

        return answered
