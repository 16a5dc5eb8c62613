"""`/checkpoints` (esd-api.md §6). Parameter order is stage order: body, then identity, then permission."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from openesd.api.deps import AfterCommitDep, ImporterDep, SessionDep, SettingsDep, StoreDep
from openesd.api.envelope import esd_response
from openesd.api.gateway import esd_body
from openesd.api.identity import AccessDep, permitted, permitted_in_strict
from openesd.auth.principal import Principal
from openesd.checkpoints.schemas import (
    CREATE_CHECKPOINT_SCHEMA,
    DELETE_CHECKPOINTS_SCHEMA,
    UPDATE_CHECKPOINT_SCHEMA,
    CreateCheckpoint,
    DeleteCheckpoints,
    UpdateCheckpoint,
)
from openesd.checkpoints.service import Change, CheckpointService

router = APIRouter(tags=["checkpoints"])

# (status, message) of each kind of update, as ESD answers them
UPDATE_ANSWERS = {
    Change.NOTHING: (200, None),
    Change.STATUS: (200, None),
    Change.SAME_NAME: (200, "no need to update"),
    Change.RENAMED: (202, "rename is processing, please wait"),
}


def get_checkpoint_service(session: SessionDep, store: StoreDep, settings: SettingsDep) -> CheckpointService:
    return CheckpointService(session, store, settings)


Checkpoints = Annotated[CheckpointService, Depends(get_checkpoint_service)]
CreateBody = Annotated[CreateCheckpoint, esd_body(CREATE_CHECKPOINT_SCHEMA, CreateCheckpoint)]
UpdateBody = Annotated[UpdateCheckpoint, esd_body(UPDATE_CHECKPOINT_SCHEMA, UpdateCheckpoint)]
DeleteBody = Annotated[DeleteCheckpoints, esd_body(DELETE_CHECKPOINTS_SCHEMA, DeleteCheckpoints)]


@router.get("/checkpoints")
def list_checkpoints(
    requester: Annotated[Principal, permitted("checkpoint:all", "checkpoint:list")],
    checkpoints: Checkpoints,
    page: int = 1,
    per_page: int = 10,
    username: str | None = None,
    status: Annotated[list[str], Query()] = [],  # noqa: B006 (FastAPI copies query defaults)
    types: Annotated[list[str], Query()] = [],  # noqa: B006
    roles: Annotated[list[str], Query()] = [],  # noqa: B006
):
    return esd_response(200, checkpoints.list(requester, page, per_page, username, status, types, roles))


@router.post("/checkpoints")
def create_checkpoint(
    body: CreateBody,
    requester: Annotated[Principal, permitted("checkpoint:all", "checkpoint:create")],
    checkpoints: Checkpoints,
    importer: ImporterDep,
    on_commit: AfterCommitDep,
):
    created = checkpoints.create(requester, body)
    if created.upload is not None:
        return esd_response(201, created.upload)
    for checkpoint_id in created.imports:  # after the response: the records are committed by then
        on_commit(importer.submit, checkpoint_id)
    return esd_response(202, message="Checkpoint creation in progress, please check later")


@router.put("/checkpoints/{checkpoint_id}")
def update_checkpoint(
    checkpoint_id: str,
    body: UpdateBody,
    # Who may open an upload may complete, rename and delete it; the ownership policy decides whose.
    _: Annotated[Principal | None, permitted_in_strict("checkpoint:all", "checkpoint:create")],
    access: AccessDep,
    checkpoints: Checkpoints,
):
    updated = checkpoints.update(checkpoint_id, body, access)
    status, message = UPDATE_ANSWERS[updated.change]
    return esd_response(status, updated.data, message)


@router.delete("/checkpoints")
def delete_checkpoints(
    body: DeleteBody,
    _: Annotated[Principal | None, permitted_in_strict("checkpoint:all", "checkpoint:create")],
    access: AccessDep,
    checkpoints: Checkpoints,
):
    checkpoints.delete(body.checkpoint_id_list, access)
    return esd_response(204)
