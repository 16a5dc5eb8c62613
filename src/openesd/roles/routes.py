"""`/roles` (esd-api.md §4). Parameter order is stage order: body, then identity, then permission."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from openesd.api.deps import SessionDep, SettingsDep
from openesd.api.envelope import esd_response
from openesd.api.gateway import esd_body
from openesd.api.identity import Requester, permitted, permitted_in_strict
from openesd.auth.principal import Principal
from openesd.roles.schemas import DELETE_ROLES_SCHEMA, UPSERT_ROLE_SCHEMA, DeleteRoles, UpsertRole
from openesd.roles.service import RoleService

router = APIRouter(tags=["roles"])


def get_role_service(session: SessionDep, settings: SettingsDep) -> RoleService:
    return RoleService(session, settings.auth_mode)


Roles = Annotated[RoleService, Depends(get_role_service)]
UpsertRoleBody = Annotated[UpsertRole, esd_body(UPSERT_ROLE_SCHEMA, UpsertRole)]
DeleteRolesBody = Annotated[DeleteRoles, esd_body(DELETE_ROLES_SCHEMA, DeleteRoles)]


@router.get("/roles")
def list_roles(
    requester: Annotated[Principal, permitted("role:all", "role:list")],
    roles: Roles,
    role: Annotated[str | None, Query()] = None,
):
    return esd_response(200, roles.list(requester, role))


@router.post("/roles")
def upsert_role(body: UpsertRoleBody, requester: Requester, roles: Roles):
    roles.upsert(requester, body)
    return esd_response(201, message="role created")


@router.delete("/roles")
def delete_roles(
    body: DeleteRolesBody,
    _: Annotated[Principal | None, permitted_in_strict("role:all")],
    roles: Roles,
):
    roles.delete(body.role_name_list)
    return esd_response(204)
