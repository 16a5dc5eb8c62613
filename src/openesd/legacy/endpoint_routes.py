"""Legacy endpoint routes (esd-legacy-api.md §6). `router` is served on both mounts; `colliding` holds
the method+paths 1.5.0 also has, served on the legacy mount (and reached from the primary mount only
through the body dispatch of `dispatch.py`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from openesd.api.deps import AfterCommitDep, EngineDep
from openesd.auth.access import Access
from openesd.legacy.endpoints import LegacyEndpointsDep
from openesd.legacy.identity import access_in_strict
from openesd.legacy.responses import answer
from openesd.legacy.schemas import CreateEndpointBody, DeleteEndpointsBody, PostEndpointsBody

router = APIRouter(tags=["legacy endpoints"])
colliding = APIRouter(tags=["legacy endpoints"])
# The deployment-job views had no identity in ESD: in strict mode, 1.5.0's `GET /endpoints` permission.
Lister = Annotated[Access, access_in_strict("sagemaker_endpoint:all", "sagemaker_endpoint:list")]


def _create(body: dict, endpoints, engine, on_commit):
    data, spec = endpoints.create(body)
    on_commit(engine.deploy, spec)  # after the response: the record is committed by then
    return answer(data)


def _delete(body: dict, endpoints, engine, on_commit, done: str):
    for endpoint_id in endpoints.delete(body):
        on_commit(engine.undeploy, endpoint_id)
    return answer(done)


@router.post("/inference/deploy-sagemaker-endpoint")
def deploy_endpoint(
    body: CreateEndpointBody, endpoints: LegacyEndpointsDep, engine: EngineDep, on_commit: AfterCommitDep
):
    return _create(body, endpoints, engine, on_commit)


@router.post("/inference/delete-sagemaker-endpoint")
def delete_endpoint(
    body: DeleteEndpointsBody, endpoints: LegacyEndpointsDep, engine: EngineDep, on_commit: AfterCommitDep
):
    return _delete(body, endpoints, engine, on_commit, "Endpoint delete completed")


@router.get("/inference/list-endpoint-deployment-jobs")
def list_deployment_jobs(endpoints: LegacyEndpointsDep, access: Lister):
    return answer(endpoints.deployment_jobs(access))


@router.get("/inference/get-endpoint-deployment-job")
def get_deployment_job(endpoints: LegacyEndpointsDep, access: Lister, jobID: str | None = None):  # noqa: N803 (ESD's name)
    return answer(endpoints.deployment_job(jobID, access))


@colliding.post("/endpoints")
def post_endpoints(
    body: PostEndpointsBody, endpoints: LegacyEndpointsDep, engine: EngineDep, on_commit: AfterCommitDep
):
    # The seed's own examples POST a delete body here (§3.2).
    if "delete_endpoint_list" in body:
        return _delete(body, endpoints, engine, on_commit, "Endpoint deleted")
    return _create(body, endpoints, engine, on_commit)


@colliding.delete("/endpoints")
def delete_endpoints(
    body: DeleteEndpointsBody, endpoints: LegacyEndpointsDep, engine: EngineDep, on_commit: AfterCommitDep
):
    return _delete(body, endpoints, engine, on_commit, "Endpoint deleted")


@colliding.get("/endpoints")
def list_endpoints(
    endpoints: LegacyEndpointsDep, username: str | None = None, endpointDeploymentJobId: str | None = None
):  # noqa: N803 (ESD's query name)
    return answer(endpoints.list(username, endpointDeploymentJobId))
