"""`/endpoints` (esd-api.md §7): inference endpoints and waiting for them to serve."""

from __future__ import annotations

from openesd.client._resource import Resource
from openesd.client._transport import ESDError
from openesd.client._waiting import poll


class Endpoints(Resource):
    def list(self, limit: int | None = None, username: str | None = None) -> list[dict]:
        return list(self._cursor("/endpoints", "endpoints", {"username": username, "limit": 50}, limit))

    def get(self, name: str) -> dict:
        """By `endpoint_name` as stored (`esd-async-test`) or by the short name given at creation (`test`)."""
        for endpoint in self.list():
            if name in (endpoint.get("endpoint_name"), endpoint.get("EndpointDeploymentJobId")) or endpoint.get(
                "endpoint_name", ""
            ).endswith(f"-{name}"):
                return endpoint
        raise ESDError(404, f"endpoint {name} is not found")

    def create(
        self,
        *,
        endpoint_type: str = "Async",
        instance_type: str = "ml.g5.2xlarge",
        initial_instance_count: int = 1,
        autoscaling: bool = False,
        roles: list[str] | None = None,
        name: str | None = None,
        min_instance_number: int | None = None,
        max_instance_number: int | None = None,
        preload_models: list[str] | None = None,
    ) -> dict:
        body: dict = {
            "endpoint_type": endpoint_type,
            "instance_type": instance_type,
            "initial_instance_count": initial_instance_count,
            "autoscaling_enabled": autoscaling,
            "assign_to_roles": roles or ["IT Operator"],
            "creator": self._t.creator,
        }
        optional = {
            "endpoint_name": name,
            "min_instance_number": min_instance_number,
            "max_instance_number": max_instance_number,
            "preload_models": preload_models,  # OpenESD: checkpoints loaded before the endpoint is InService
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return self._t.call("POST", "/endpoints", json=body)

    def delete(self, names: list[str]) -> None:
        self._t.call("DELETE", "/endpoints", json={"endpoint_name_list": list(names)})

    def wait_for(self, name: str, *, timeout: float = 1800, interval: float = 2.0, on_update=None) -> dict:
        """Poll until `InService`; `Failed` raises JobFailed with the endpoint's error."""
        return poll(
            lambda: self.get(name),
            lambda e: e.get("endpoint_status") or "",
            done={"InService"},
            failed={"Failed", "Deleted"},
            what=f"endpoint {name}",
            timeout=timeout,
            interval=interval,
            on_update=on_update,
        )
