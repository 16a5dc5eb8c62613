"""Rules for inference endpoints: creation checks and quotas, listing, deletion (esd-api.md §7)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from openesd.auth.access import Access
from openesd.checkpoints.repository import CheckpointRepository
from openesd.auth.principal import Principal
from openesd.auth.service import authorize
from openesd.endpoints import paging
from openesd.endpoints.quota import InstanceQuota, reserved
from openesd.endpoints.repository import EndpointRepository
from openesd.endpoints.schemas import SUPPORTED_TYPES, CreateEndpoint
from openesd.errors import BadRequest
from openesd.execution.base import EndpointSpec, ModelFile
from openesd.metadata.models import Endpoint
from openesd.settings import Settings
from openesd.storage.layout import checkpoint_file
from openesd.users.repository import UserRepository

NAME_PATTERN = re.compile(r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*")


PRELOAD_TYPE = "Stable-diffusion"


def spec_of(endpoint: Endpoint) -> EndpointSpec:
    preload: list[ModelFile] = [
        {"id": m["id"], "model_name": m["model_name"], "key": checkpoint_file(PRELOAD_TYPE, m["id"], m["model_name"])}
        for m in endpoint.preload_models or []
    ]
    return EndpointSpec(
        id=endpoint.id,
        name=endpoint.endpoint_name,
        endpoint_type=endpoint.endpoint_type,
        initial=endpoint.initial_instance_count,
        min=endpoint.min_instance_number,
        max=endpoint.max_instance_number,
        autoscaling=endpoint.autoscaling,
        preload=preload,
    )


def quota_message(instance_type: str, quota: int, used: int, delta: int) -> str:
    return (
        "An error occurred (ResourceLimitExceeded) when calling the CreateEndpoint operation: The account-level "
        f"service limit '{instance_type} for endpoint usage' is {quota} Instances, with current utilization of "
        f"{used} Instances and a request delta of {delta} Instances. In OpenESD, raise this quota with the "
        f"OPENESD_INSTANCE_QUOTAS setting, e.g. OPENESD_INSTANCE_QUOTAS='{{\"{instance_type}\": {used + delta}}}'."
    )


def existing_model(endpoint_type: str, suffix: str) -> BadRequest:
    return BadRequest(
        "An error occurred (ValidationException) when calling the CreateModel operation: "
        f'Cannot create already existing model "esd-model-{endpoint_type.lower()}-{suffix}".'
    )


class EndpointService:
    def __init__(self, session: Session, settings: Settings, capacity: dict[str, int]):
        self.endpoints = EndpointRepository(session)
        self.checkpoints = CheckpointRepository(session)
        self.quota = InstanceQuota(session, settings, capacity)
        self.users = UserRepository(session)
        self.settings = settings
        self.capacity = capacity

    # --- create -----------------------------------------------------------------------------
    def create(
        self, body: CreateEndpoint, identify: Callable[[], Principal], check_roles: bool = True
    ) -> tuple[dict, EndpointSpec]:
        """The 202 data and the spec to deploy once the record is committed (§7.2, checks in order).

        `check_roles=False` skips the one-live-endpoint-per-role rule (legacy creates without roles)."""
        if body.custom_extensions and body.custom_docker_image_uri:
            raise BadRequest("custom_extensions and custom_docker_image_uri cannot be used together")
        requester = authorize(identify(), ["sagemaker_endpoint:all", "sagemaker_endpoint:create"])
        endpoint_id = str(uuid.uuid4())
        suffix = body.endpoint_name or endpoint_id[:7]
        name = f"esd-{body.endpoint_type.lower()}-{suffix}"
        minimum, maximum = self._check_counts(body, name)
        extensions = self._extensions(body.custom_extensions)
        if check_roles:
            self._check_roles(body.assign_to_roles)
        self._check_name(body, suffix, name)
        self._check_quota(body, maximum)
        preload = self._preload(body.preload_models or [], Access.of(self.settings.auth_mode, requester))
        endpoint = self._add(
            Endpoint(
                id=endpoint_id,
                endpoint_name=name,
                endpoint_type=body.endpoint_type,
                endpoint_status="Creating",
                status=None,
                autoscaling=body.autoscaling_enabled,
                instance_type=body.instance_type,
                initial_instance_count=int(body.initial_instance_count),
                current_instance_count=0,
                min_instance_number=minimum,
                max_instance_number=maximum,
                start_time=str(datetime.now()),
                started=time.time(),
                end_time=None,
                error=None,
                owner_group_or_role=list(body.assign_to_roles),
                custom_extensions=",".join(extensions),
                creator=requester.username,
                preload_models=preload or None,
            ),
            suffix,
        )
        view = self.view(endpoint)
        for field in ("min_instance_number", "max_instance_number"):  # numbers echo with their JSON type
            if getattr(body, field) is not None:
                view[field] = getattr(body, field)
        return view, spec_of(endpoint)

    def _preload(self, names: list[str], access: Access) -> list[dict]:
        """The checkpoints named in `preload_models`, each Active and visible to the creator, or 400 naming
        every one that is not (the same message as a job naming a missing model)."""
        found, missing = [], []
        for name in dict.fromkeys(names):  # a name listed twice is loaded once
            checkpoint = self.checkpoints.active_by_name(PRELOAD_TYPE, name)
            if checkpoint is None or not access.can_see(checkpoint):
                missing.append(f"checkpoint with name {name}, type {PRELOAD_TYPE} is not found")
            else:
                found.append({"id": checkpoint.id, "model_name": name})
        if missing:
            raise BadRequest(f"preload_models: {'; '.join(missing)}")
        return found

    def _check_name(self, body: CreateEndpoint, suffix: str, name: str) -> None:
        # SageMaker's model-name rule: the name ends up in URLs, file names and CLI arguments.
        if body.endpoint_name and not NAME_PATTERN.fullmatch(body.endpoint_name):
            raise BadRequest(
                f"endpoint_name {body.endpoint_name!r} may only hold letters, digits and single inner "
                "hyphens, like ESD's model names (e.g. test-1)"
            )
        if self.endpoints.by_name(name) is not None:
            raise existing_model(body.endpoint_type, suffix)

    def _add(self, endpoint: Endpoint, suffix: str) -> Endpoint:
        """Store the record; a concurrent create of the same name loses on the unique name (the request's
        transaction is rolled back as the error leaves)."""
        try:
            return self.endpoints.add(endpoint)
        except IntegrityError:
            raise existing_model(endpoint.endpoint_type, suffix) from None

    def _check_counts(self, body: CreateEndpoint, name: str) -> tuple[int, int]:
        if body.endpoint_type not in SUPPORTED_TYPES:
            raise BadRequest(f"{body.endpoint_type} endpoint is not supported yet")
        if body.initial_instance_count < 1:
            raise BadRequest(f"initial_instance_count should be at least 1: {name}")
        minimum = int(body.min_instance_number) if body.min_instance_number is not None else 0
        maximum = int(body.max_instance_number) if body.max_instance_number is not None else 1
        if body.autoscaling_enabled:
            if body.endpoint_type == "Real-time" and minimum < 1:
                raise BadRequest(f"min_instance_number should be at least 1 for real-time endpoint: {name}")
            if body.endpoint_type == "Async" and minimum < 0:
                raise BadRequest(f"min_instance_number should be at least 0 for async endpoint: {name}")
        if maximum < minimum:
            raise BadRequest(
                f"max_instance_number ({maximum}) must not be below min_instance_number ({minimum}): {name}"
            )
        return minimum, maximum

    @staticmethod
    def _extensions(value: str | None) -> list[str]:
        extensions = list(dict.fromkeys(e for e in re.split(r"[\s,]+", value or "") if e))
        if len(extensions) >= 3:
            raise BadRequest("custom_extensions should be at most 3")
        return extensions

    def _check_roles(self, roles: list[str]) -> None:
        taken = {role for endpoint in self.endpoints.live() for role in endpoint.owner_group_or_role}
        for role in roles:
            if role in taken:
                raise BadRequest(f"role [{role}] has a valid endpoint already, not allow to have another one")

    def _check_quota(self, body: CreateEndpoint, maximum: int) -> None:
        instance_type = body.instance_type
        quota, used = self.quota.limit(instance_type), self.quota.used(instance_type)
        delta = reserved(body.autoscaling_enabled, int(body.initial_instance_count), maximum)
        if used + delta > quota:
            raise BadRequest(quota_message(instance_type, quota, used, delta))

    # --- list / delete ----------------------------------------------------------------------
    def list(
        self,
        requester: Principal,
        username: str | None,
        job_id: str | None,
        limit: int,
        exclusive_start_key: str | None,
    ) -> dict:
        roles = self._principal_roles(requester, username)
        rows = Access.of(self.settings.auth_mode, requester).only_visible(self.endpoints.all_newest_first())
        if job_id is not None:
            rows = [e for e in rows if e.id == job_id]
        if not requester.permissions.has_any(["sagemaker_endpoint:all"]):
            rows = [e for e in rows if username is not None and self._visible(e, username, roles)]
        chosen, last = paging.page(rows, lambda e: {"t": e.started, "id": e.id}, limit, exclusive_start_key)
        return {"endpoints": [self.view(e) for e in chosen], "last_evaluated_key": last}

    def _principal_roles(self, requester: Principal, username: str | None) -> set[str]:
        if username is None:
            return set()
        user = self.users.get(username)
        if user is None:
            raise BadRequest(f'user: "{username}" not exist')
        from openesd.roles.repository import RoleRepository

        created = {r.name for r in RoleRepository(self.endpoints.session).list() if r.creator == requester.username}
        return set(user.roles) | created

    @staticmethod
    def _visible(endpoint: Endpoint, username: str, roles: set[str]) -> bool:
        owners = set(endpoint.owner_group_or_role)
        return bool(owners) and ("*" in owners or username in owners or bool(owners & roles))

    def delete(self, names: list[str], access: Access) -> list[str]:
        """Remove the records at once; the ids whose instances must be stopped."""
        stopped = []
        for endpoint in access.deletable(self.endpoints.by_name(name) for name in dict.fromkeys(names)):
            self.endpoints.delete(endpoint)
            stopped.append(endpoint.id)
        return stopped

    # --- views ------------------------------------------------------------------------------
    @staticmethod
    def view(endpoint: Endpoint) -> dict:
        view = {
            "EndpointDeploymentJobId": endpoint.id,
            "autoscaling": endpoint.autoscaling,
            "max_instance_number": str(endpoint.max_instance_number),
            "startTime": endpoint.start_time,
            "status": endpoint.status,
            "instance_type": endpoint.instance_type,
            "current_instance_count": str(endpoint.current_instance_count),
            "endTime": endpoint.end_time,
            "endpoint_status": endpoint.endpoint_status,
            "endpoint_name": endpoint.endpoint_name,
            "error": endpoint.error,
            "endpoint_type": endpoint.endpoint_type,
            "owner_group_or_role": list(endpoint.owner_group_or_role),
            "min_instance_number": str(endpoint.min_instance_number),
            "custom_extensions": endpoint.custom_extensions,
        }
        if endpoint.preload_models:  # OpenESD's field, shown only where it was asked for: ESD views are unchanged
            view["preload_models"] = [m["model_name"] for m in endpoint.preload_models]
        return view
