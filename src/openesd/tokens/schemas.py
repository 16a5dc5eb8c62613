"""Request bodies of the personal-token routes (OpenESD's own, decisions.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from openesd.api.validation import obj, string


class CreateToken(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = "default"
    expires_in_days: int | None = None
    # Password login: mint a token for `username` without any other identity (console, strict mode).
    username: str | None = None
    password: str | None = None


CREATE_TOKEN_SCHEMA = obj(
    {
        "name": string(maxLength=255),
        "expires_in_days": {"type": "integer", "minimum": 1, "maximum": 3650},
        "username": string(),
        "password": string(),
    }
)
