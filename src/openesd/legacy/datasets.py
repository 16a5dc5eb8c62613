"""Legacy dataset routes (esd-legacy-api.md §11) over the 1.5.0 dataset service.

Legacy datasets are plain image folders (`prefix` ""), so `Enabled` checks the uploads only; the
kohya folder a training needs is laid out when a legacy training starts (`legacy/trainings.py`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from openesd.api.validation import validate
from openesd.auth.access import Access
from openesd.datasets.routes import Datasets
from openesd.datasets.schemas import DATASET_NAME, CreateDataset
from openesd.datasets.service import DatasetService
from openesd.errors import Forbidden, NotFound, OpenESDError
from openesd.legacy.identity import Requesters, RequestersDep, holds
from openesd.legacy.responses import lambda_error

ALL = 1_000_000  # one page holding every record: legacy lists are unpaged
CREATE = ("train:all",)  # the 1.5.0 dataset permission (§11.1 Rec.)
LIST = ("train:all", "train:list")
ITEM_SCHEMA = {
    "type": "object",
    "required": ["filename", "name", "type"],
    "properties": {
        "filename": {"type": "string"},
        "name": {"type": "string"},
        "type": {"type": "string"},
        "params": {"type": ["object", "null"]},
    },
}


def list_requester(requesters: Requesters, status_code: int | str = 400):
    """The requester of a legacy list (§9.3, §10.3, §11.3), refused in the list routes' `error` shape."""
    requester = requesters.resolve()
    if not requester.exists:
        raise lambda_error(status_code, "error", f'user: "{requester.username}" not exist')
    if not holds(requester, *LIST):
        raise lambda_error(status_code, "error", "user has no permission to train")
    return requester


def creating_requester(requesters: Requesters, creator: object):
    """The requester of a legacy create (§9.1, §10.1, §11.1), refused in the `errMsg` shape."""
    requester = requesters.resolve(creator)
    if not requester.exists:
        raise lambda_error(400, "errMsg", f'user: "{requester.username}" not exist')
    if not holds(requester, *CREATE):
        raise lambda_error(400, "errMsg", f"user {requester.username} has not permission to create a train job")
    return requester


class LegacyDatasets:
    def __init__(self, service: DatasetService, requesters: Requesters):
        self.service = service
        self.requesters = requesters

    # --- POST /dataset ------------------------------------------------------------------------
    def create(self, body: dict) -> dict:
        name, content = body.get("dataset_name"), body.get("content")
        problems = validate(name, DATASET_NAME) if name is not None else ["dataset_name is required"]
        if not isinstance(content, list) or not content:
            problems.append('content must be a non-empty list of {"filename", "name", "type", "params"} objects')
        else:
            problems += [f"content[{n}]: {p}" for n, item in enumerate(content) for p in validate(item, ITEM_SCHEMA)]
        params = body.get("params")
        if params is not None and not isinstance(params, dict):
            problems.append("params must be an object")
        if problems:
            raise lambda_error(500, "error", "; ".join(problems))
        requester = creating_requester(self.requesters, body.get("creator"))
        entries = [
            {**item, "filename": _base_name(item["filename"]), "params": item.get("params") or {}} for item in content
        ]
        event = CreateDataset(dataset_name=name, content=entries, params=params or {}, prefix="")
        try:
            return {"statusCode": 200, **self.service.create(requester, event, self.requesters.access(requester))}
        except OpenESDError as error:
            raise lambda_error(500, "error", error.message) from None

    # --- PUT /dataset -------------------------------------------------------------------------
    def set_status(self, body: dict, access: Access) -> dict:
        name, status = body.get("dataset_name"), body.get("status")
        if not isinstance(name, str) or not isinstance(status, str):
            raise lambda_error(500, "error", "dataset_name and status (strings) are required")
        try:
            data = self.service.set_status(name, status, access, kohya_layout=False)
        except NotFound as error:
            raise lambda_error(404, "errorMsg", error.message) from None
        except Forbidden as error:  # someone else's dataset (strict mode)
            raise lambda_error(403, "error", error.message) from None
        except OpenESDError as error:
            raise lambda_error(500, "error", error.message) from None
        return {"statusCode": 200, **data}

    # --- GET /datasets (legacy mount) ---------------------------------------------------------
    def list(self, status: str | None) -> dict:
        requester = list_requester(self.requesters, 400)
        listed = self.service.list(requester, status, ALL, None, self.requesters.access(requester))["datasets"]
        return {"statusCode": 200, "datasets": [{**d, "timestamp": float(d["timestamp"])} for d in listed]}

    # --- GET /dataset/{dataset_name}/data -----------------------------------------------------
    def get(self, name: str) -> dict:
        """Compat mode looks the dataset up before identity, as ESD did; strict mode asks for the token first
        and answers a dataset hidden from the requester as an absent one."""
        strict = self.requesters.strict_requester()
        if strict is not None and not holds(strict, *CREATE):  # 1.5.0's `GET /datasets/{name}` permission
            raise lambda_error(403, "error", f"User {strict.username} has no permissions: {list(CREATE)!r}")
        dataset = self.service.datasets.get(name)
        if dataset is None or (strict is not None and not self.requesters.access(strict).can_see(dataset)):
            raise lambda_error(500, "error", "path parameter /dataset/{dataset_name}/ are not found")
        requester = strict or self.requesters.resolve()
        try:
            data = self.service.get(requester, name, self.requesters.access(requester))
        except (NotFound, Forbidden) as error:
            status = 500 if isinstance(error, NotFound) else 400
            raise lambda_error(status, "error", error.message) from None
        return {"statusCode": 200, **data, "timestamp": float(data["timestamp"])}


def _base_name(filename: str) -> str:
    """§11.1 Rec.: the last path segment of a client path; `..` anywhere is refused."""
    parts = filename.replace("\\", "/").split("/")
    if ".." in parts or parts[-1] in ("", "."):
        raise lambda_error(500, "error", f"filename {filename!r} is not allowed: it must name a file, without '..'")
    return parts[-1]


def get_legacy_datasets(service: Datasets, requesters: RequestersDep) -> LegacyDatasets:
    return LegacyDatasets(service, requesters)


LegacyDatasetsDep = Annotated[LegacyDatasets, Depends(get_legacy_datasets)]
