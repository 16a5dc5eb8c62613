"""`/endpoints` (esd-api.md §7). Instances start and stop only after the records are committed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from openesd.api.deps import AfterCommitDep, EngineDep, SessionDep, SettingsDep
from openesd.api.envelope import esd_response
from openesd.api.gateway import esd_body
from openesd.api.identity import AccessDep, AuthDep, permitted, permitted_in_strict
from openesd.auth.principal import Principal
from openesd.endpoints.schemas import (
    CREATE_ENDPOINT_SCHEMA,
    DELETE_ENDPOINTS_SCHEMA,
    CreateEndpoint,
    DeleteEndpoints,
)
from openesd.endpoints.service import EndpointService

router = APIRouter(tags=["endpoints"])


def get_endpoint_service(session: SessionDep, settings: SettingsDep, engine: EngineDep) -> EndpointService:
    return EndpointService(session, settings, engine.capacity())


Endpoints = Annotated[EndpointService, Depends(get_endpoint_service)]
CreateBody = Annotated[CreateEndpoint, esd_body(CREATE_ENDPOINT_SCHEMA, CreateEndpoint)]
DeleteBody = Annotated[DeleteEndpoints, esd_body(DELETE_ENDPOINTS_SCHEMA, DeleteEndpoints)]


@router.post("/endpoints")
def create_endpoint(
    body: CreateBody,
    request: Request,
    auth: AuthDep,
    endpoints: Endpoints,
    engine: EngineDep,
    on_commit: AfterCommitDep,
):
    # Identity is asked for inside: the permission check is step 2 of §7.2, after the extensions check.
    data, spec = endpoints.create(body, lambda: auth.identify(request.headers))
    on_commit(engine.deploy, spec)
    return esd_response(202, data, f"Endpoint deployment started: {data['endpoint_name']}")


@router.get("/endpoints")
def list_endpoints(
    requester: Annotated[Principal, permitted("sagemaker_endpoint:all", "sagemaker_endpoint:list")],
    endpoints: Endpoints,
    username: str | None = None,
    endpointDeploymentJobId: str | None = None,  # noqa: N803 (ESD's query name)
    limit: int = 10,
    exclusive_start_key: str | None = None,
):
    return esd_response(200, endpoints.list(requester, username, endpointDeploymentJobId, limit, exclusive_start_key))


@router.delete("/endpoints")
def delete_endpoints(
    body: DeleteBody,
    _: Annotated[Principal | None, permitted_in_strict("sagemaker_endpoint:all")],
    access: AccessDep,
    endpoints: Endpoints,
    engine: EngineDep,
    on_commit: AfterCommitDep,
):
    for endpoint_id in endpoints.delete(body.endpoint_name_list, access):
        on_commit(engine.undeploy, endpoint_id)
    return esd_response(204)
