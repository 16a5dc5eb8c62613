"""Legacy checkpoint routes (esd-legacy-api.md §7, §8); `colliding` is served on the legacy mount only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request

from openesd.api.deps import SettingsDep
from openesd.auth.access import Access
from openesd.legacy._merge_runner import MergeRunner
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


def merge_runner(state) -> MergeRunner:
    """One runner per app, made on first use (the store and database exist only after start-up)."""
    if getattr(state, "legacy_merge_runner", None) is None:
        state.legacy_merge_runner = MergeRunner(state.sessionmaker, state.store, state.settings)
    return state.legacy_merge_runner


def get_merge_runner(request: Request) -> MergeRunner:
    return merge_runner(request.app.state)


Runner = Annotated[MergeRunner, Depends(get_merge_runner)]
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
def run_model_merge(body: ModelMergeBody, merges: LegacyMergesDep, runner: Runner, background: BackgroundTasks):
    started, job = merges.start(body)
    background.add_task(runner.submit, job)  # after the response: the reserved record is committed by then
    return answer(started)
