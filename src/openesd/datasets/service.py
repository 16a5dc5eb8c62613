"""Rules for training datasets: upload URLs, statuses with validation on `Enabled`, visibility (esd-api.md §9)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from sqlalchemy.orm import Session

from openesd.auth.access import Access
from openesd.auth.principal import Principal
from openesd.checkpoints.service import check_file_name
from openesd.datasets.repository import DatasetRepository
from openesd.datasets.schemas import PREVIEW_URL_TTL_S, STATUSES, UPLOAD_URL_TTL_S, CreateDataset
from openesd.endpoints import paging
from openesd.errors import BadRequest, Forbidden, NotFound
from openesd.metadata.models import Dataset, DatasetItem
from openesd.storage import MAX_SEGMENT_LENGTH
from openesd.storage.base import ObjectStore
from openesd.storage.layout import dataset_folder, dataset_upload_folder

ITEM_KEYS = ("filename", "name", "type", "params")
DEFAULT_CAPTION_EXTENSION = ".txt"


def visible(owners: list[str], requester: Principal) -> bool:
    """§12.3 owner rule with the requester as principal; owner-less legacy rows only for `user:all`."""
    if not owners:
        return requester.permissions.has_any(["user:all"])
    return "*" in owners or requester.username in owners or bool(set(owners) & set(requester.roles))


class DatasetService:
    def __init__(self, session: Session, store: ObjectStore):
        self.datasets = DatasetRepository(session)
        self.store = store

    # --- create -----------------------------------------------------------------------------
    def create(self, requester: Principal, body: CreateDataset, access: Access) -> dict:
        """Store the info and one item per file, both `Initialed`; a signed PUT URL per file (§9.2)."""
        if body.params is None:
            raise BadRequest("DatasetCreateEvent.__init__() missing 1 required positional argument: 'params'")
        prefix = self._check_prefix(body.prefix)
        entries = [self._check_entry(entry) for entry in body.content]
        now = time.time()
        dataset = self.datasets.get_for_update(body.dataset_name)
        if dataset is not None and access.checked and dataset.creator != requester.username:
            raise BadRequest(
                f"dataset {body.dataset_name} already exists and belongs to another user: choose another name"
            )
        if dataset is None:  # ESD has no uniqueness check: a second POST overwrites the info
            dataset = self.datasets.add(Dataset(name=body.dataset_name, status="Initialed", created=now))
        dataset.status, dataset.created, dataset.prefix = "Initialed", now, prefix
        dataset.params, dataset.creator = dict(body.params), requester.username
        dataset.allowed_roles_or_users = list(requester.roles)
        folder = dataset_upload_folder(body.dataset_name, prefix)
        urls = {}
        for entry in entries:
            key = f"{folder}/{entry['filename']}"
            self.datasets.replace_item(
                DatasetItem(
                    dataset_name=dataset.name,
                    sort_key=f"{now}_{entry['name']}",
                    key=key,
                    name=entry["name"],
                    item_type=entry["type"],
                    status="Initialed",
                    params={**entry["params"], "original_file_name": entry["filename"]},
                    allowed_roles_or_users=list(requester.roles),
                )
            )
            urls[entry["filename"]] = self.store.signed_url(key, "PUT", UPLOAD_URL_TTL_S)
        return {"datasetName": dataset.name, "s3PresignUrl": urls}

    @staticmethod
    def _check_prefix(prefix: str) -> str:
        prefix = prefix.strip().strip("/")
        if prefix and ("/" in prefix or "\\" in prefix or prefix in (".", "..") or "\x00" in prefix):
            raise BadRequest(
                f"prefix {prefix!r} is not allowed: it must be one folder name, "
                "such as the kohya <repeats>_<concept> folder 10_cat"
            )
        if len(prefix.encode("utf-8")) > MAX_SEGMENT_LENGTH:
            raise BadRequest(
                f"prefix {prefix[:64]!r}... is longer than {MAX_SEGMENT_LENGTH} bytes (UTF-8): "
                "use a shorter folder name"
            )
        return prefix

    @staticmethod
    def _check_entry(entry: dict) -> dict:
        for key in ITEM_KEYS:
            if key not in entry:
                raise BadRequest(f"DataUploadEvent.__init__() missing 1 required positional argument: '{key}'")
        return {**entry, "filename": check_file_name(str(entry["filename"])), "params": entry["params"] or {}}

    # --- status -----------------------------------------------------------------------------
    def set_status(self, name: str, status: str, access: Access, kohya_layout: bool = True) -> dict:
        """`kohya_layout=False` (legacy datasets: plain images): `Enabled` checks the uploads only."""
        dataset = access.changeable(self.datasets.get_for_update(name), NotFound(f"dataset {name} is not found"))
        if status not in STATUSES:
            raise BadRequest(f"'{status}'")
        items = self.datasets.items(name)
        notes = []
        if status == "Enabled":
            notes = self._check_trainable(dataset, items, kohya_layout)
            # The notes of the last check, shown by GET next to the client's params; Disabled keeps them.
            params = {key: value for key, value in dataset.params.items() if key != "notes"}
            dataset.params = (params | {"notes": notes}) if notes else params
        dataset.status = status
        for item in items:
            item.status = status
        return {"datasetName": name, "status": status} | ({"notes": notes} if notes else {})

    def _check_trainable(self, dataset: Dataset, items: list[DatasetItem], kohya_layout: bool = True) -> list[str]:
        """Every file uploaded, every image's header readable: one 400 that lists every problem.

        Images without a caption file are not a problem (kohya captions them with the concept name, as
        ESD's client expects); they come back as notes. Only headers are read: no Pillow on the API.
        """
        from openesd.trainer.dataset import scan
        from openesd.trainer.errors import TrainingError

        extension = dataset.params.get("caption_extension") or DEFAULT_CAPTION_EXTENSION
        missing = [
            item.params.get("original_file_name", item.name) for item in items if self.store.stat(item.key) is None
        ]
        if missing:
            raise BadRequest(
                f"dataset {dataset.name} cannot be Enabled: {len(missing)} file(s) were never uploaded "
                f"to their signed URL: {', '.join(missing)}"
            )
        if not kohya_layout:
            return []
        root = dataset_folder(dataset.name) + "/"
        with tempfile.TemporaryDirectory(prefix="openesd-dataset-") as folder:
            local = Path(folder) / dataset.name
            for item in items:
                self.store.download(item.key, local / item.key[len(root) :])
            try:
                return scan(local, extension, decode=False).warnings
            except TrainingError as error:
                raise BadRequest(
                    error.message.replace(
                        f"dataset {local.name!r} has", f"dataset {dataset.name} cannot be Enabled: it has", 1
                    )
                ) from None

    # --- read -------------------------------------------------------------------------------
    def list(
        self, requester: Principal, status: str | None, limit: int, exclusive_start_key: str | None, access: Access
    ) -> dict:
        rows = self.datasets.newest_first(status)  # strict: the ownership policy; compat: ESD's owner rule
        rows = (
            access.only_visible(rows)
            if access.checked
            else [d for d in rows if visible(d.allowed_roles_or_users, requester)]
        )
        chosen, last = paging.page(rows, lambda d: {"t": d.created, "id": d.name}, limit, exclusive_start_key)
        if not chosen:
            return {"datasets": []}
        return {"datasets": [self._list_view(d) for d in chosen], "last_evaluated_key": last}

    def get(self, requester: Principal, name: str, access: Access) -> dict:
        dataset = access.visible(self.datasets.get(name), NotFound(f"dataset {name} is not found"))
        if not access.checked and not visible(dataset.allowed_roles_or_users, requester):
            raise Forbidden("no permission to view dataset")
        items = [
            {
                **item.params,
                "key": item.sort_key,
                "name": item.name,
                "type": item.item_type,
                "preview_url": self.store.signed_url(item.key, "GET", PREVIEW_URL_TTL_S),
                "dataStatus": item.status,
            }
            for item in self.datasets.items(name)
        ]
        return {
            "dataset_name": name,
            "datasetName": name,
            "prefix": dataset.prefix,
            **self._summary(dataset),
            "data": items,
        }

    def _list_view(self, dataset: Dataset) -> dict:
        return {"datasetName": dataset.name, **self._summary(dataset)}

    def _summary(self, dataset: Dataset) -> dict:
        folder = dataset_upload_folder(dataset.name, dataset.prefix)
        # The client's params are merged in (ESD shows `description` so); ours win a clash of keys.
        return {
            **dataset.params,
            "s3": self.store.uri(folder),
            "status": dataset.status,
            "timestamp": str(dataset.created),
        }

    # --- delete -----------------------------------------------------------------------------
    def delete(self, names: list[str], access: Access) -> None:
        for dataset in access.deletable(self.datasets.get(name) for name in dict.fromkeys(names)):
            self.datasets.delete(dataset)
            self.store.delete_prefix(dataset_folder(dataset.name) + "/")
