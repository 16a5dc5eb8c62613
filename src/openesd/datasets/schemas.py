"""Request bodies and gateway models of the datasets routes (esd-api.md §9)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from openesd.api.validation import array, obj, string

STATUSES = ("Initialed", "Enabled", "Disabled")
NAME_PATTERN = "^[A-Za-z][A-Za-z0-9_-]*$"
UPLOAD_URL_TTL_S = 7 * 24 * 3600  # ESD: dataset upload URLs live 7 days
PREVIEW_URL_TTL_S = 24 * 3600  # ESD: dataset preview URLs live 24 hours


class CreateDataset(BaseModel):
    model_config = ConfigDict(extra="ignore")

    dataset_name: str
    content: list[dict]
    params: dict | None = None
    prefix: str = ""
    creator: str | None = None


class UpdateDataset(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: str


class DeleteDatasets(BaseModel):
    model_config = ConfigDict(extra="ignore")

    dataset_name_list: list[str]


DATASET_NAME = string(maxLength=20, pattern=NAME_PATTERN)
CREATE_DATASET_SCHEMA = obj(
    {
        "dataset_name": DATASET_NAME,
        "content": array(
            obj({"filename": string(), "name": string(), "type": string(), "params": {"type": "object"}}),
            1,
            100,
        ),
        "creator": string(),
        "params": obj({"description": {"type": "string"}}),
        "prefix": {"type": "string"},
    },
    required=["dataset_name", "content", "creator"],
)
UPDATE_DATASET_SCHEMA = obj({"status": string()}, required=["status"])
DELETE_DATASETS_SCHEMA = obj({"dataset_name_list": array(DATASET_NAME, 1, 10)}, required=["dataset_name_list"])
