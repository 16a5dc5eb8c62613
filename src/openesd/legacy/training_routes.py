"""Dreambooth-era models and trainings and the legacy datasets (esd-legacy-api.md §9–§11).

`router` is served on both mounts; `colliding` (`GET /datasets`, which 1.5.0 also has) and
`top_level` (the documented `GET /{dataset_name}/data`, registered last) on the legacy mount only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from openesd.api.deps import AfterCommitDep, EngineDep, TrainingReporterDep
from openesd.auth.access import Access
from openesd.legacy.datasets import LegacyDatasetsDep
from openesd.legacy.dreambooth import LegacyModelsDep
from openesd.legacy.identity import access_in_strict
from openesd.legacy.responses import answer, lambda_error
from openesd.legacy.schemas import (
    CompleteModelBody,
    CreateDatasetBody,
    CreateModelBody,
    CreateTrainBody,
    StartTrainBody,
    UpdateDatasetBody,
)
from openesd.legacy.trainings import LegacyTrainingsDep
from openesd.trainings.routes import submit

router = APIRouter(tags=["legacy training"])
colliding = APIRouter(tags=["legacy training"])
top_level = APIRouter(tags=["legacy training"])
Repeated = Annotated[list[str], Query()]
# `PUT /model`, `/train`, `/dataset` had no identity in ESD: in strict mode, 1.5.0's training permission.
Trainer = Annotated[Access, access_in_strict("train:all", refuse=lambda m: lambda_error(403, "error", m))]


@router.post("/model")
def create_model(body: CreateModelBody, models: LegacyModelsDep):
    return answer(models.create(body))


@router.put("/model")
def complete_model(body: CompleteModelBody, models: LegacyModelsDep, access: Trainer):
    return answer(models.complete(body, access))


@router.get("/models")
def list_models(models: LegacyModelsDep, types: Repeated = [], status: Repeated = []):  # noqa: B006
    return answer(models.list(types, status))


@router.post("/train")
@router.post("/train-api/train")
def create_train(body: CreateTrainBody, trainings: LegacyTrainingsDep):
    return answer(trainings.create(body))


@router.put("/train")
def start_train(
    body: StartTrainBody,
    trainings: LegacyTrainingsDep,
    access: Trainer,
    engine: EngineDep,
    reporter: TrainingReporterDep,
    on_commit: AfterCommitDep,
):
    data, spec = trainings.start(body, access)
    if spec is not None:  # after the response: the rows are committed by then
        on_commit(submit, engine, spec, reporter)
    return answer(data)


@router.get("/trains")
def list_trains(trainings: LegacyTrainingsDep, types: Repeated = [], status: Repeated = []):  # noqa: B006
    return answer(trainings.list(types, status))


@router.post("/dataset")
def create_dataset(body: CreateDatasetBody, datasets: LegacyDatasetsDep):
    return answer(datasets.create(body))


@router.put("/dataset")
def update_dataset(body: UpdateDatasetBody, datasets: LegacyDatasetsDep, access: Trainer):
    return answer(datasets.set_status(body, access))


@router.get("/dataset/{dataset_name}/data")
def dataset_data(dataset_name: str, datasets: LegacyDatasetsDep):
    return answer(datasets.get(dataset_name))


@colliding.get("/datasets")
def list_datasets(datasets: LegacyDatasetsDep, dataset_status: str | None = None):
    return answer(datasets.list(dataset_status))


@top_level.get("/{dataset_name}/data")
def dataset_data_documented(dataset_name: str, datasets: LegacyDatasetsDep):
    return answer(datasets.get(dataset_name))
