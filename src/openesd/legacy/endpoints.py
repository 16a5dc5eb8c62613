"""Legacy endpoint routes (esd-legacy-api.md §6) over the 1.5.0 endpoint service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from openesd.auth.access import Access
from openesd.endpoints.repository import EndpointRepository
from openesd.endpoints.routes import Endpoints
from openesd.endpoints.schemas import CreateEndpoint
from openesd.endpoints.service import EndpointService
from openesd.errors import Forbidden, OpenESDError
from openesd.execution.base import EndpointSpec
from openesd.legacy.identity import Requesters, RequestersDep, holds
from openesd.legacy.responses import LegacyError, invalid_body, lambda_error

MANAGE = ("sagemaker_endpoint:all", "sagemaker_endpoint:create")
DELETE_IN_STRICT = ("sagemaker_endpoint:all",)  # 1.5.0's `DELETE /endpoints` in strict mode
PAGE = 1000
# §1.5: the v1.0–v1.2 deployment-job status, computed for rows that never stored one.
JOB_STATUS = {
    "Creating": "inprogress",
    "Updating": "inprogress",
    "InService": "success",
    "Failed": "failed",
    "Deleting": "deleted",
    "Deleted": "deleted",
}


def legacy_view(view: dict) -> dict:
    if view.get("status") is None:
        view = {**view, "status": JOB_STATUS.get(view["endpoint_status"])}
    return view


class LegacyEndpoints:
    def __init__(self, service: EndpointService, requesters: Requesters):
        self.service = service
        self.repository = EndpointRepository(service.endpoints.session)
        self.requesters = requesters

    # --- create (§6.2) ------------------------------------------------------------------------
    def create(self, body: dict) -> tuple[dict, EndpointSpec]:
        """The v1.3.0 success body and the spec to deploy once the record is committed."""
        instance_type, roles, name = body.get("instance_type"), body.get("assign_to_roles"), body.get("endpoint_name")
        autoscaling = body.get("autoscaling_enabled", False)
        if (
            not isinstance(instance_type, str)
            or not isinstance(autoscaling, bool)
            or (
                roles is not None and not (isinstance(roles, list) and roles and all(isinstance(r, str) for r in roles))
            )
            or (name is not None and not isinstance(name, str))
        ):
            raise invalid_body()
        count = _count(body.get("initial_instance_count"))
        if count is None or count < 1:
            raise lambda_error(400, "message", f"initial_instance_count should be at least 1: {name or ''}".rstrip())
        requester = self.requesters.resolve(body.get("creator"))
        if not requester.exists:
            raise lambda_error(400, "message", f'user: "{requester.username}" not exist')
        if not holds(requester, *MANAGE):
            raise lambda_error(400, "message", f"Creator {requester.username} has no permission to create Sagemaker")
        event = CreateEndpoint(
            endpoint_type="Async",
            instance_type=instance_type,
            initial_instance_count=count,
            autoscaling_enabled=autoscaling,
            assign_to_roles=roles or ["*"],
            creator=requester.username,
            endpoint_name=name or None,
            min_instance_number=0,
            max_instance_number=count,
        )
        try:
            view, spec = self.service.create(event, lambda: requester, check_roles=roles is not None)
        except OpenESDError as error:
            raise lambda_error(400, "message", error.message) from None
        view = {**view, "max_instance_number": str(count), "min_instance_number": "0"}  # strings, as stored
        message = f"Endpoint deployment started: {view['endpoint_name']}"
        return {"statusCode": 200, "message": message, "data": legacy_view(view)}, spec

    # --- delete (§6.3) ------------------------------------------------------------------------
    def delete(self, body: dict) -> list[str]:
        """Remove the named endpoints (names or deployment-job ids); the ids whose instances must stop."""
        names, username = body.get("delete_endpoint_list"), body.get("username")
        if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)) or (
            username is not None and not isinstance(username, str)
        ):
            raise invalid_body()
        requester = self.requesters.resolve(username)
        if not requester.exists:
            raise LegacyError(
                f'error deleting sagemaker endpoint with exception: user: "{requester.username}" not exist'
            )
        if not holds(requester, *(DELETE_IN_STRICT if self.requesters.settings.auth_mode == "strict" else MANAGE)):
            raise lambda_error(
                400, "errMsg", f"User {requester.username} has no permission to delete a Sagemaker endpoint"
            )
        resolved = []
        for name in names:
            by_id = self.repository.get(name)
            resolved.append(by_id.endpoint_name if by_id is not None else name)
        try:
            return self.service.delete(resolved, self.requesters.access(requester))
        except Forbidden as error:  # someone else's endpoint (strict mode): nothing is deleted
            raise lambda_error(403, "errMsg", error.message) from None

    # --- list (§6.4, §6.5) --------------------------------------------------------------------
    def list(self, username: str | None, job_id: str | None) -> dict:
        requester = self.requesters.resolve()
        if not requester.exists:
            raise lambda_error("400", "error", f'user: "{requester.username}" not exist')
        if not holds(requester, "sagemaker_endpoint:all", "sagemaker_endpoint:list"):
            raise lambda_error(
                "400",
                "error",
                f"User {requester.username} has no permissions: ['sagemaker_endpoint:all', 'sagemaker_endpoint:list']",
            )
        if username is None and not holds(requester, "sagemaker_endpoint:all"):
            username = requester.username  # what a list-only user may see: endpoints shared with them
        found, cursor = [], None
        try:
            while True:
                listed = self.service.list(requester, username, job_id, PAGE, cursor)
                found += listed["endpoints"]
                cursor = listed["last_evaluated_key"]
                if cursor is None:
                    break
        except OpenESDError as error:
            raise lambda_error("400", "error", error.message) from None
        return {"statusCode": 200, "endpoints": [legacy_view(e) for e in found]}

    def deployment_jobs(self, access: Access) -> list[dict]:
        return [legacy_view(self.service.view(e)) for e in access.only_visible(self.repository.all_newest_first())]

    def deployment_job(self, job_id: str | None, access: Access) -> dict:
        endpoint = self.repository.get(job_id) if job_id else None
        return legacy_view(self.service.view(endpoint)) if endpoint is not None and access.can_see(endpoint) else {}


def _count(value: object) -> int | None:
    """`initial_instance_count` as ESD sent it (a string) or as a number; None when it is not an integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def get_legacy_endpoints(service: Endpoints, requesters: RequestersDep) -> LegacyEndpoints:
    return LegacyEndpoints(service, requesters)


LegacyEndpointsDep = Annotated[LegacyEndpoints, Depends(get_legacy_endpoints)]
