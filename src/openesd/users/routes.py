"""`/users` (esd-api.md §5). Parameter order is stage order: body, then identity, then permission."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from openesd.api.deps import PasswordCipherDep, SessionDep, SettingsDep
from openesd.api.envelope import esd_response
from openesd.api.gateway import esd_body
from openesd.api.identity import AuthDep, Requester, permitted
from openesd.auth.passwords import Passwords
from openesd.auth.principal import Principal
from openesd.auth.service import authorize
from openesd.errors import Unauthorized
from openesd.users.schemas import DELETE_USERS_SCHEMA, UPSERT_USER_SCHEMA, DeleteUsers, UpsertUser
from openesd.users.service import UserService

router = APIRouter(tags=["users"])


def get_user_service(session: SessionDep, settings: SettingsDep, cipher: PasswordCipherDep) -> UserService:
    return UserService(session, Passwords(cipher, settings.auth_mode), settings)


Users = Annotated[UserService, Depends(get_user_service)]
UpsertUserBody = Annotated[UpsertUser, esd_body(UPSERT_USER_SCHEMA, UpsertUser)]
DeleteUsersBody = Annotated[DeleteUsers, esd_body(DELETE_USERS_SCHEMA, DeleteUsers)]


def user_admin_unless_initial(body: UpsertUserBody, request: Request, auth: AuthDep) -> Principal | None:
    """`initial: true` needs no identity at all (ESD bootstrap); otherwise `user:all`."""
    if body.initial:
        return None
    return authorize(auth.identify(request.headers), ["user:all"])


@router.get("/users/me")
async def who_am_i(requester: Requester):
    """OpenESD's addition: the requester's name, roles and permissions (what the console offers them)."""
    if not requester.exists:
        raise Unauthorized()
    permissions = sorted(requester.permissions.strings)
    return esd_response(
        200, {"username": requester.username, "roles": list(requester.roles), "permissions": permissions}
    )


@router.get("/users")
def list_users(
    requester: Annotated[Principal, permitted("user:all", "user:list")],
    users: Users,
    username: Annotated[str | None, Query()] = None,
    show_password: Annotated[str | None, Query()] = None,
    limit: Annotated[int | None, Query()] = None,
    exclusive_start_key: Annotated[str | None, Query()] = None,
):
    """ESD answers every user at once; with `limit` (OpenESD's addition) one page after `exclusive_start_key`."""
    if limit is not None and username is None and not show_password:
        return esd_response(200, users.page(requester, limit, exclusive_start_key))
    return esd_response(200, users.list(requester, username, bool(show_password)))


@router.post("/users")
def upsert_user(
    body: UpsertUserBody,
    requester: Annotated[Principal | None, Depends(user_admin_unless_initial)],
    users: Users,
):
    if requester is None:
        return esd_response(201, users.bootstrap(body))
    users.upsert(requester, body)
    return esd_response(201)


@router.delete("/users")
def delete_users(
    body: DeleteUsersBody,
    requester: Annotated[Principal, permitted("user:all")],
    users: Users,
):
    users.delete(requester, body.user_name_list)
    return esd_response(204)
