"""Request bodies and gateway models of the roles routes (esd-api.md §4)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from openesd.api.validation import array, obj, string


class UpsertRole(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role_name: str
    permissions: list[str]
    initial: bool = False
    creator: str | None = None  # accepted and ignored, as ESD does


class DeleteRoles(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role_name_list: list[str]


UPSERT_ROLE_SCHEMA = obj(
    {
        "role_name": string(),
        "permissions": array(string(), 1, 20),
        "initial": {"type": "boolean"},
        "creator": {"type": "string"},
    },
    required=["role_name", "permissions"],
)
DELETE_ROLES_SCHEMA = obj({"role_name_list": array(string(), 1, 100)}, required=["role_name_list"])
