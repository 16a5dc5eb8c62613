"""The ESD gateway stages that precede a handler (esd-api.md §1.2): API key, then body model.

Route matching (stage 1) is FastAPI's own; a miss becomes `Missing Authentication Token` in
`api/errors.py`. These stages answer like API Gateway does: no ESD headers on their errors.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError

from openesd.api.deps import read
from openesd.api.inputs import BadBody, parse_json
from openesd.api.validation import validate
from openesd.auth.service import TOKEN_PREFIX, AuthService
from openesd.errors import OpenESDError
from openesd.keys import api_key_matches

Model = TypeVar("Model", bound=BaseModel)


class GatewayError(OpenESDError):
    """Raised by a gateway stage; rendered without the handler headers."""

    def __init__(self, message: str, status_code: int, *, with_status_code: bool = False):
        super().__init__(message, status_code=status_code, code="gateway")
        self.with_status_code = with_status_code


async def require_api_key(request: Request) -> None:  # async: no I/O for a key, so no thread pool hop
    if api_key_matches(request.headers.get("x-api-key"), request.app.state.api_keys):
        return
    if request.app.state.settings.gateway_accepts_tokens and (
        _is_password_login(request) or await _carries_live_token(request)
    ):
        return  # decisions.md, "Signing in without the API key": the console and WebUI clients
    raise GatewayError("Forbidden", 403)


def _is_password_login(request: Request) -> bool:
    """`POST /tokens` (at the root or under the stage prefix): the route checks the password itself."""
    return request.method == "POST" and request.url.path.rstrip("/").endswith("/tokens")


async def _carries_live_token(request: Request) -> bool:
    authorization = request.headers.get("authorization", "")
    token = authorization.removeprefix("Bearer ").strip()
    if not token.startswith(TOKEN_PREFIX):
        return False
    with request.app.state.sessionmaker() as session:
        return await read(session, AuthService(session, request.app.state.settings.auth_mode).token_is_live, token)


def body_validation_error(messages: list[str]) -> GatewayError:
    return GatewayError(f"[{', '.join(messages)}]", 400, with_status_code=True)


async def read_json_body(request: Request) -> Any:
    """The body as JSON; no body counts as `{}` (ESD gateway behaviour). Its size was capped by `InputLimits`."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return parse_json(raw)
    except BadBody as error:
        raise body_validation_error([error.message]) from None
    except (ValueError, UnicodeDecodeError) as error:
        raise body_validation_error([f"Unable to parse request body as JSON: {error}"]) from None


def esd_body(schema: dict[str, Any], model: type[Model]) -> Any:
    """Dependency: read the body, check it against the gateway model, build the typed event."""

    async def dependency(request: Request) -> Model:
        body = await read_json_body(request)
        errors = validate(body, schema)
        if errors:
            raise body_validation_error(errors)
        try:
            return model.model_validate(body)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            raise OpenESDError(f"{where}: {first['msg']}") from None

    setattr(dependency, "request_schema", schema)  # published as the route's requestBody (api/openapi.py)
    return Depends(dependency)
