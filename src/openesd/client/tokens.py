"""`/tokens`: personal tokens (OpenESD's own routes; `Authorization: Bearer oesd_…`)."""

from __future__ import annotations

from openesd.client._resource import Resource


class Tokens(Resource):
    def create(self, name: str = "default", expires_in_days: int | None = None) -> dict:
        """A token for the calling user: {token: {...}, secret}; the secret is shown only here."""
        body: dict = {"name": name}
        if expires_in_days is not None:
            body["expires_in_days"] = expires_in_days
        return self._t.call("POST", "/tokens", json=body)

    def login(self, username: str, password: str, name: str = "default") -> dict:
        """A token for `username` by password, needing no other identity."""
        return self._t.call("POST", "/tokens", json={"username": username, "password": password, "name": name})

    def list(self) -> list[dict]:
        return (self._t.call("GET", "/tokens") or {}).get("tokens", [])

    def delete(self, token_id: str) -> None:
        self._t.call("DELETE", f"/tokens/{token_id}")
