"""Who is calling: the resolved requester of one request."""

from __future__ import annotations

from dataclasses import dataclass, field

from openesd.auth.permissions import PermissionSet


@dataclass(frozen=True)
class Principal:
    username: str
    exists: bool
    roles: tuple[str, ...] = ()
    permissions: PermissionSet = field(default_factory=lambda: PermissionSet(()))
    via_token: bool = False
