"""The one error base: every client-facing failure carries an HTTP status, a stable code and a message.

The API turns these into the ESD envelope (`api/errors.py`); services and libraries raise them
and never import FastAPI.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType


class OpenESDError(Exception):
    """A failure the caller can act on; `message` is shown to the user as is."""

    status_code: int = 400
    code: str = "bad_request"
    headers: Mapping[str, str] = MappingProxyType({})  # extra response headers, e.g. Retry-After

    def __init__(self, message: str, *, status_code: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if code is not None:
            self.code = code


class BadRequest(OpenESDError):
    status_code = 400
    code = "bad_request"


class Unauthorized(OpenESDError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str = "Unauthorized"):
        super().__init__(message)


class Forbidden(OpenESDError):
    status_code = 403
    code = "forbidden"


class NotFound(OpenESDError):
    status_code = 404
    code = "not_found"


class TooManyRequests(OpenESDError):
    status_code = 429
    code = "too_many_requests"

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after_s)}


class Conflict(OpenESDError):
    """A name or state clash; ESD answers these with 400, so the status stays 400."""

    status_code = 400
    code = "conflict"


class GatewayTimeout(OpenESDError):
    status_code = 504
    code = "timeout"

    def __init__(self, message: str = "Endpoint request timed out"):
        super().__init__(message)


class ConfigurationError(OpenESDError):
    """The server cannot start or serve because of its settings (not a client mistake)."""

    status_code = 500
    code = "configuration"


# Generation failures the user can act on (bad payload, missing model, unsupported option): HTTP 400.
# Foundations, not the workers' own module: the model tools below the workers raise them too.
class GenerationError(BadRequest):
    """A job cannot run as asked; the message names the bad value and, where useful, the valid ones."""

    code = "generation_error"


class PayloadError(GenerationError):
    """The WebUI payload is malformed or holds an out-of-range value."""

    code = "invalid_payload"


class ModelError(GenerationError):
    """A model file is missing, unreadable, unsafe, or of an architecture this worker cannot run."""

    code = "invalid_model"


class UnsupportedFeature(GenerationError):
    """The payload asks for something this worker does not do (unknown sampler, script, task)."""

    code = "unsupported"
