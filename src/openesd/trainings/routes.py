"""`/trainings` (esd-api.md §10). A training reaches the engine only after its rows are committed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from openesd.api.deps import AfterCommitDep, EngineDep, SessionDep, SettingsDep, StoreDep, TrainingReporterDep
from openesd.api.envelope import esd_response
from openesd.api.gateway import esd_body
from openesd.api.identity import AccessDep, permitted
from openesd.auth.principal import Principal
from openesd.execution.base import Engine, TrainingSpec
from openesd.jobevents.routes import Streams, event_stream
from openesd.jobevents.stream import Scope
from openesd.trainings.reporter import TrainingReporter
from openesd.trainings.schemas import (
    TERMINAL,
    CREATE_TRAINING_SCHEMA,
    DELETE_TRAININGS_SCHEMA,
    CreateTraining,
    DeleteTrainings,
)
from openesd.trainings.service import TrainingService

router = APIRouter(tags=["trainings"])


def get_training_service(
    session: SessionDep, store: StoreDep, settings: SettingsDep, engine: EngineDep
) -> TrainingService:
    return TrainingService(session, store, settings, engine.capacity())


Trainings = Annotated[TrainingService, Depends(get_training_service)]
Trainer = Annotated[Principal, permitted("train:all")]
CreateBody = Annotated[CreateTraining, esd_body(CREATE_TRAINING_SCHEMA, CreateTraining)]
DeleteBody = Annotated[DeleteTrainings, esd_body(DELETE_TRAININGS_SCHEMA, DeleteTrainings)]


def submit(engine: Engine, spec: TrainingSpec, reporter: TrainingReporter) -> None:
    try:
        engine.submit_training(spec)
    except Exception as error:  # the row must not say Training forever
        reporter.training_failed(spec.id, f"the training could not be started: {type(error).__name__}: {error}")


@router.post("/trainings")
def create_training(
    body: CreateBody,
    requester: Trainer,
    trainings: Trainings,
    engine: EngineDep,
    reporter: TrainingReporterDep,
    on_commit: AfterCommitDep,
):
    data, spec = trainings.create(requester, body)
    on_commit(submit, engine, spec, reporter)
    return esd_response(201, data)


@router.get("/trainings")
def list_trainings(
    requester: Trainer, access: AccessDep, trainings: Trainings, limit: int = 10, exclusive_start_key: str | None = None
):
    return esd_response(200, trainings.list(requester, limit, exclusive_start_key, access))


@router.get("/trainings/{training_id}")
def get_training(training_id: str, _: Trainer, access: AccessDep, trainings: Trainings):
    return esd_response(200, trainings.get(training_id, access))


@router.get("/trainings/{training_id}/events")
def training_events(
    training_id: str, _: Trainer, access: AccessDep, trainings: Trainings, streams: Streams, request: Request
) -> StreamingResponse:
    """OpenESD's addition: the training's live events (Server-Sent Events), under `GET /trainings/{id}`'s rules."""
    view = trainings.get(training_id, access)  # the same 404 as GET for a hidden training
    scope = Scope(job_kind="training", job_id=training_id)
    return event_stream(streams, scope, request, ended=view["job_status"] in TERMINAL)


@router.put("/trainings/{training_id}/stop")
def stop_training(
    training_id: str, _: Trainer, access: AccessDep, trainings: Trainings, engine: EngineDep, on_commit: AfterCommitDep
):
    data = trainings.stop(training_id, access)
    on_commit(engine.stop_training, training_id)
    return esd_response(200, data, f"training {training_id} is stopping")


@router.delete("/trainings")
def delete_trainings(
    body: DeleteBody, _: Trainer, access: AccessDep, trainings: Trainings, engine: EngineDep, on_commit: AfterCommitDep
):
    for training_id in trainings.delete(body.training_id_list, access):
        on_commit(engine.stop_training, training_id)
    return esd_response(204)
