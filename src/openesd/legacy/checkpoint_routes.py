"""Legacy checkpoint routes (esd-legacy-api.md §7, §8); `colliding` is served on the legacy mount only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from openesd.api.deps import AfterCommitDep, EngineDep, SettingsDep
from openesd.auth.access import Access
from openesd.legacy.checkpoints import LegacyCheckpointsDep, checkpoint_error
from openesd.legacy.identity import access_in_strict
from openesd.legacy.merges import LegacyMergesDep
from openesd.legacy.responses import answer
from openesd.legacy.schemas import (
    CompleteCheckpointBody,
    CreateCheckpointBody,
    ImportCheckpointsBody,
    ModelMergeBody,
)

router = APIRouter(tags=["legacy checkpoints"])
colliding = APIRouter(tags=["legacy checkpoints"])


# `PUT /checkpoint` had no identity in ESD: in strict mode, 1.5.0's `PUT /checkpoints/{id}` permission.
Changer = Annotated[Access, access_in_strict("checkpoint:all", refuse=lambda m: checkpoint_error(403, "error", m))]


@router.post("/checkpoint")
def create_checkpoint(body: CreateCheckpointBody, checkpoints: LegacyCheckpointsDep):
    return answer(checkpoints.create_upload(body))


@router.put("/checkpoint")
def complete_checkpoint(body: CompleteCheckpointBody, checkpoints: LegacyCheckpointsDep, access: Changer):
    return answer(checkpoints.complete(body, access))


@router.post("/upload_checkpoint")
def upload_checkpoint(body: ImportCheckpointsBody, checkpoints: LegacyCheckpointsDep, settings: SettingsDep):
    return answer(checkpoints.import_urls(body, settings.legacy_upload_wait_seconds))


@colliding.get("/checkpoints")
def list_checkpoints(
    checkpoints: LegacyCheckpointsDep,
    username: Annotated[list[str], Query()] = [],  # noqa: B006 (FastAPI copies query defaults)
    status: Annotated[list[str], Query()] = [],  # noqa: B006
    types: Annotated[list[str], Query()] = [],  # noqa: B006
):
    return answer(checkpoints.list(username[0] if username else None, status, types))


@router.post("/inference/run-model-merge")
def run_model_merge(body: ModelMergeBody, merges: LegacyMergesDep, engine: EngineDep, on_commit: AfterCommitDep):
    started, spec = merges.start(body)
    on_commit(engine.submit_merge, spec)  # the engine sees only the committed output record
    return answer(started)
