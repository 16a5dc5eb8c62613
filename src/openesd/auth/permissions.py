"""ESD permission strings (`resource:action`) and how a set of them is read (esd-api.md §12)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

RESOURCES = ("role", "user", "checkpoint", "sagemaker_endpoint", "inference", "train")
ACTIONS = ("all", "list", "create")
ADMIN_PERMISSIONS = [
    "train:all",
    "checkpoint:all",
    "inference:all",
    "sagemaker_endpoint:all",
    "user:all",
    "role:all",
]
DEFAULT_ROLE = "IT Operator"
SEEDED_CREATOR = "ESD"


class PermissionSet:
    """A requester's permissions as `resource -> actions`; `all` implies every action."""

    def __init__(self, permissions: Iterable[str]):
        self.strings = frozenset(permissions)
        self._actions: dict[str, set[str]] = defaultdict(set)
        for permission in self.strings:
            resource, _, action = permission.partition(":")
            self._actions[resource].add(action)

    def has_any(self, accepted: Iterable[str]) -> bool:
        """The exact-string check of the route permission stage."""
        return any(permission in self.strings for permission in accepted)

    def allows(self, resource: str, action: str) -> bool:
        """The secondary check of role/user management: `all` or the same action."""
        actions = self._actions.get(resource, set())
        return "all" in actions or action in actions

    def touches(self, resource: str) -> bool:
        return bool(self._actions.get(resource))


def split_permission(permission: str) -> tuple[str, str] | None:
    resource, sep, action = permission.partition(":")
    if not sep or not resource or not action:
        return None
    return resource, action
