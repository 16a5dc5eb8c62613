"""Who may see and change which object: one ownership policy for jobs, checkpoints, datasets, trainings and
endpoints (docs/decisions.md, "Ownership in strict mode").

An object belongs to its creator and is shared with the roles or users in its owner list. In `strict` mode
its creator, whoever matches that list and an administrator see it (and may use it); only its creator and an
administrator change or delete it; to everyone else it does not exist. In `compat` mode this policy lets
everything through: ESD 1.5.0's own rules (kept in each service's listing) are all there is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from openesd.auth.principal import Principal
from openesd.errors import Forbidden, OpenESDError
from openesd.metadata.models import Checkpoint, Dataset, Endpoint, InferenceJob, LegacyModel, Training

# With `role:all` a user may rewrite any role, its own included, to hold any permission (§12.1): it is the
# root permission already, so the policy names it the administrator's.
ADMINISTRATOR_PERMISSION = "role:all"

Owned = TypeVar("Owned", InferenceJob, Checkpoint, Dataset, Training, Endpoint, LegacyModel)


def is_administrator(principal: Principal) -> bool:
    return principal.exists and principal.permissions.has_any([ADMINISTRATOR_PERMISSION])


def ownership(obj: Owned) -> tuple[str | None, list[str]]:
    """(creator, owner list) of a stored object, as each ESD table records them (esd-api.md §12.3)."""
    if isinstance(obj, InferenceJob):  # owner_group_or_role = [creator]
        return _first(obj.owner_group_or_role)
    if isinstance(obj, Training | LegacyModel):  # allowed_roles_or_users = [creator]
        return _first(obj.allowed_roles_or_users)
    if isinstance(obj, Endpoint):  # owner_group_or_role = the roles it serves
        return obj.creator, list(obj.owner_group_or_role)
    if isinstance(obj, Dataset):
        return obj.creator, list(obj.allowed_roles_or_users)
    return (obj.params or {}).get("creator"), list(obj.allowed_roles_or_users)  # checkpoints


def _first(owners: list[str]) -> tuple[str | None, list[str]]:
    """Tables whose owner list is `[creator]`: the creator is its first name."""
    return (owners[0] if owners else None), list(owners)


@dataclass(frozen=True)
class Access:
    """The requester's reach over stored objects; `principal` None means nothing is checked (compat)."""

    principal: Principal | None = None

    @classmethod
    def of(cls, auth_mode: str, principal: Principal) -> Access:
        """The access `principal` has under the deployment's `auth_mode` (checked only when strict)."""
        return cls(principal if auth_mode == "strict" else None)

    @property
    def checked(self) -> bool:
        return self.principal is not None

    @property
    def admin(self) -> bool:
        return self.principal is None or is_administrator(self.principal)

    def can_see(self, obj: Owned) -> bool:
        if self.admin:
            return True
        creator, owners = ownership(obj)
        me = self.principal
        assert me is not None  # not admin implies checked
        names = set(owners)
        return creator == me.username or "*" in names or me.username in names or bool(names & set(me.roles))

    def sharing_names(self) -> frozenset[str] | None:
        """The names of which an owner list must hold one for the requester to see the object (so a listing
        can filter in SQL); None when everything is visible. The creator is checked apart, where the creator
        is not in the list."""
        if self.admin:
            return None
        me = self.principal
        assert me is not None  # not admin implies checked
        return frozenset({"*", me.username, *me.roles})

    def can_change(self, obj: Owned) -> bool:
        if self.admin:
            return True
        creator, _ = ownership(obj)
        return creator is not None and creator == self.principal.username  # type: ignore[union-attr]

    def visible(self, obj: Owned | None, missing: OpenESDError) -> Owned:
        """`obj` when the requester may see it; otherwise `missing`, the error an absent object gets."""
        if obj is None or not self.can_see(obj):
            raise missing
        return obj

    def changeable(self, obj: Owned | None, missing: OpenESDError) -> Owned:
        """`obj` when the requester may change it: hidden ones look absent, visible ones are refused (403)."""
        return self.check_change(self.visible(obj, missing))

    def check_change(self, obj: Owned) -> Owned:
        """`obj` when the requester may change it, else 403 naming its creator."""
        if not self.can_change(obj):
            creator, _ = ownership(obj)
            raise Forbidden(
                f"{_kind(obj)} {_label(obj)} belongs to {creator or 'nobody'}: only its creator or an "
                f"administrator ({ADMINISTRATOR_PERMISSION}) may change or delete it"
            )
        return obj

    def only_visible(self, objs: Iterable[Owned]) -> list[Owned]:
        return list(objs) if self.admin else [obj for obj in objs if self.can_see(obj)]

    def deletable(self, objs: Iterable[Owned | None]) -> list[Owned]:
        """Of a bulk delete's objects, those to delete: absent and hidden ones are skipped (ESD skips unknown
        ids), and one the requester may see but not change refuses the whole request before anything goes."""
        return [self.check_change(obj) for obj in objs if obj is not None and self.can_see(obj)]


def _kind(obj: Owned) -> str:
    return {
        InferenceJob: "inference job",
        Checkpoint: "checkpoint",
        Dataset: "dataset",
        Training: "training",
        Endpoint: "endpoint",
        LegacyModel: "model",
    }[type(obj)]


def _label(obj: Owned) -> str:
    if isinstance(obj, Dataset):
        return obj.name
    if isinstance(obj, Endpoint):
        return obj.endpoint_name
    return obj.id
