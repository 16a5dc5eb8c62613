"""`/datasets` (esd-api.md §9). Parameter order is stage order: body, then identity, then permission."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from openesd.api.deps import SessionDep, StoreDep
from openesd.api.envelope import esd_response
from openesd.api.gateway import esd_body
from openesd.api.identity import AccessDep, permitted, permitted_in_strict
from openesd.auth.principal import Principal
from openesd.datasets.schemas import (
    CREATE_DATASET_SCHEMA,
    DELETE_DATASETS_SCHEMA,
    UPDATE_DATASET_SCHEMA,
    CreateDataset,
    DeleteDatasets,
    UpdateDataset,
)
from openesd.datasets.service import DatasetService

router = APIRouter(tags=["datasets"])


def get_dataset_service(session: SessionDep, store: StoreDep) -> DatasetService:
    return DatasetService(session, store)


Datasets = Annotated[DatasetService, Depends(get_dataset_service)]
Trainer = Annotated[Principal, permitted("train:all")]
CreateBody = Annotated[CreateDataset, esd_body(CREATE_DATASET_SCHEMA, CreateDataset)]
UpdateBody = Annotated[UpdateDataset, esd_body(UPDATE_DATASET_SCHEMA, UpdateDataset)]
DeleteBody = Annotated[DeleteDatasets, esd_body(DELETE_DATASETS_SCHEMA, DeleteDatasets)]


@router.get("/datasets")
def list_datasets(
    requester: Trainer,
    access: AccessDep,
    datasets: Datasets,
    dataset_status: str | None = None,
    limit: int = 10,
    exclusive_start_key: str | None = None,
):
    return esd_response(200, datasets.list(requester, dataset_status, limit, exclusive_start_key, access))


@router.post("/datasets")
def create_dataset(body: CreateBody, requester: Trainer, access: AccessDep, datasets: Datasets):
    return esd_response(201, datasets.create(requester, body, access))


@router.get("/datasets/{dataset_name}")
def get_dataset(dataset_name: str, requester: Trainer, access: AccessDep, datasets: Datasets):
    return esd_response(200, datasets.get(requester, dataset_name, access))


@router.put("/datasets/{dataset_name}")
def update_dataset(dataset_name: str, body: UpdateBody, _: Trainer, access: AccessDep, datasets: Datasets):
    return esd_response(200, datasets.set_status(dataset_name, body.status, access))


@router.delete("/datasets")
def delete_datasets(
    body: DeleteBody,
    _: Annotated[Principal | None, permitted_in_strict("train:all")],
    access: AccessDep,
    datasets: Datasets,
):
    datasets.delete(body.dataset_name_list, access)
    return esd_response(204)
