"""Request bodies and gateway models of the users routes (esd-api.md §5)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from openesd.api.validation import array, obj, string


class UpsertUser(BaseModel):
    model_config = ConfigDict(extra="ignore")

    username: str
    password: str | None = None
    initial: bool = False
    roles: list[str] | None = None
    creator: str | None = None  # accepted and ignored, as ESD does


class DeleteUsers(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user_name_list: list[str]


UPSERT_USER_SCHEMA = obj(
    {
        "username": string(),
        "password": string(),
        "initial": {"type": "boolean"},
        "roles": array(string(), 1, 20),
        "creator": {"type": "string"},
    },
    required=["username"],
)
DELETE_USERS_SCHEMA = obj({"user_name_list": array(string(), 1, 100)}, required=["user_name_list"])
