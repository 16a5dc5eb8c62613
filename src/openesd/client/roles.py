"""`/roles` (esd-api.md §4)."""

from __future__ import annotations

from openesd.client._resource import Resource


class Roles(Resource):
    def list(self, role: str | None = None) -> list[dict]:
        data = self._t.call("GET", "/roles", params={"role": role} if role else None) or {}
        return data.get("roles", [])

    def create(self, role_name: str, permissions: list[str]) -> None:
        """Create or overwrite a role."""
        self._t.call("POST", "/roles", json={"role_name": role_name, "permissions": list(permissions)})

    def delete(self, role_names: list[str]) -> None:
        self._t.call("DELETE", "/roles", json={"role_name_list": list(role_names)})
