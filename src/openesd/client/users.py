"""`/users` (esd-api.md §5)."""

from __future__ import annotations

from openesd.client._resource import Resource


class Users(Resource):
    def list(self, username: str | None = None, show_password: bool = False) -> list[dict]:
        params = {"username": username, "show_password": "true" if show_password else None}
        data = self._t.call("GET", "/users", params={k: v for k, v in params.items() if v}) or {}
        return data.get("users", [])

    def create(
        self, username: str, password: str, roles: list[str] | None = None, *, initial: bool = False
    ) -> dict | None:
        """Create or overwrite a user; `initial=True` is ESD's bootstrap (an `IT Operator` admin)."""
        body: dict = {"username": username, "password": password}
        if initial:
            body["initial"] = True
        else:
            body["roles"] = roles or []
        return self._t.call("POST", "/users", json=body)

    def delete(self, usernames: list[str]) -> None:
        self._t.call("DELETE", "/users", json={"user_name_list": list(usernames)})
