"""`/inferences` (esd-api.md §8). A job reaches the engine only after its row is committed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from openesd.api.deps import EngineDep, ReplicaDep, SessionDep, SettingsDep, StoreDep, WaiterDep, read
from openesd.api.envelope import esd_response, gateway_response
from openesd.api.gateway import esd_body
from openesd.api.identity import AccessDep, AuthDep, identify, permitted, permitted_in_strict
from openesd.auth.principal import Principal
from openesd.errors import GatewayTimeout
from openesd.inferences.schemas import (
    TERMINAL,
    CREATE_INFERENCE_SCHEMA,
    DELETE_INFERENCES_SCHEMA,
    CreateInference,
    DeleteInferences,
)
from openesd.inferences.realtime import run_to_end
from openesd.inferences.service import InferenceService, JobOutcome, Stage
from openesd.jobevents.routes import Streams, event_stream
from openesd.jobevents.stream import Scope

router = APIRouter(tags=["inferences"])
# Reading one job in strict mode (its GET and its events): whoever may create or list jobs may follow their own;
# the ownership check (`Access.visible`) still hides everyone else's. ESD checks nothing here (compat mode).
READ_ONE = ("inference:all", "inference:create", "inference:list")

STAGE_STATUS = {Stage.CREATED: 201, Stage.QUEUED: 202, Stage.FINISHED: 200}


async def get_inference_service(
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    engine: EngineDep,
    waiter: WaiterDep,
    replica: ReplicaDep,
) -> InferenceService:
    return InferenceService(session, store, settings, engine, waiter, replica)


Inferences = Annotated[InferenceService, Depends(get_inference_service)]
CreateBody = Annotated[CreateInference, esd_body(CREATE_INFERENCE_SCHEMA, CreateInference)]
DeleteBody = Annotated[DeleteInferences, esd_body(DELETE_INFERENCES_SCHEMA, DeleteInferences)]


def _answer(outcome: JobOutcome, inferences: InferenceService) -> Response:
    outcome = run_to_end(outcome, inferences)
    return esd_response(STAGE_STATUS[outcome.stage], outcome.data)


def _timed_out():
    return gateway_response(504, GatewayTimeout().message)


@router.post("/inferences")
def create_inference(body: CreateBody, request: Request, auth: AuthDep, inferences: Inferences):
    try:  # identity comes after the payload_string check (§8.2 step 1), so the service asks for it
        return _answer(inferences.create(body, lambda: identify(request, auth)), inferences)
    except GatewayTimeout:
        return _timed_out()


@router.put("/inferences/{job_id}/start")
def start_inference(
    job_id: str,
    _: Annotated[Principal, permitted("inference:all")],
    access: AccessDep,
    inferences: Inferences,
):
    try:
        return _answer(inferences.start(job_id, access), inferences)
    except GatewayTimeout:
        return _timed_out()


@router.put("/inferences/{job_id}/cancel")
def cancel_inference(
    job_id: str,
    requester: Annotated[Principal, permitted("inference:all")],
    access: AccessDep,
    inferences: Inferences,
) -> Response:
    """OpenESD's addition: 200 with the job's view once it is `cancelled`, 202 while its worker stops it."""
    view = inferences.cancel(job_id, access, requester.username)
    return esd_response(200 if view["status"] == "cancelled" else 202, view)


@router.get("/inferences/{job_id}")
def get_inference(
    job_id: str,
    _: Annotated[Principal | None, permitted_in_strict(*READ_ONE)],
    access: AccessDep,
    inferences: Inferences,
):
    return esd_response(200, inferences.get(job_id, access))


@router.get("/inferences/{job_id}/events")
async def inference_events(
    job_id: str,
    _: Annotated[Principal | None, permitted_in_strict(*READ_ONE)],
    access: AccessDep,
    session: SessionDep,
    inferences: Inferences,
    streams: Streams,
    request: Request,
) -> StreamingResponse:
    """OpenESD's addition: the job's live events (Server-Sent Events), under `GET /inferences/{id}`'s rules."""
    view = await read(session, inferences.get, job_id, access)  # the same 404 as GET for a hidden job
    scope = Scope(job_kind="inference", job_id=job_id)
    return event_stream(streams, scope, request, ended=view["status"] in TERMINAL)


@router.get("/inferences")
async def list_inferences(
    _: Annotated[Principal | None, permitted_in_strict("inference:all", "inference:list")],
    access: AccessDep,
    session: SessionDep,
    inferences: Inferences,
    type: str = "txt2img",  # noqa: A002 (ESD's query name)
    username: str | None = None,
    limit: int = 10,
    exclusive_start_key: str | None = None,
    status: str | None = None,
):
    page = await read(session, inferences.list, type, username, limit, exclusive_start_key, access, status)
    return esd_response(200, page)


@router.delete("/inferences")
def delete_inferences(
    body: DeleteBody,
    _: Annotated[Principal | None, permitted_in_strict("inference:all")],
    access: AccessDep,
    inferences: Inferences,
):
    inferences.delete(body.inference_id_list, access)
    return esd_response(204)
