"""`GET /inference/generate-s3-presigned-url-for-uploading` (esd-legacy-api.md §4.6): a signed PUT URL
for one key of the deployment's own store, never of another bucket, and only for an upload still awaited
from the requester: a write permission is never granted over what exists (issue 13, decisions.md).

Signable keys: the `api_param.json` of an inference job not yet started, a file of a checkpoint still
`Initial` or of a dataset still `Initialed` that has no content yet (of the requester's own objects in
strict mode), and `config/aigc.json`, the old WebUI's settings file that nothing on the server reads
(an administrator's, in strict mode)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from openesd.auth.access import Access
from openesd.auth.principal import Principal
from openesd.auth.service import authorize
from openesd.checkpoints.repository import CheckpointRepository
from openesd.datasets.repository import DatasetRepository
from openesd.errors import NotFound, OpenESDError, Unauthorized
from openesd.inferences.repository import InferenceRepository
from openesd.legacy.responses import fastapi_error, unauthorized
from openesd.metadata.models import Checkpoint, Dataset, InferenceJob
from openesd.settings import Settings
from openesd.storage.base import ObjectStore
from openesd.storage.layout import CHECKPOINT_FILE, DATASET_FILE, JOB_PARAM, WEBUI_CONFIG, checkpoint_file


def store_bucket(store: ObjectStore) -> str:
    """The bucket name a legacy client sees (`local` for the local store, as the checkpoint service says)."""
    return urlsplit(store.uri("")).netloc or "local"


class Uploads:
    def __init__(self, session: Session, store: ObjectStore, settings: Settings):
        self.session = session
        self.store = store
        self.settings = settings

    def sign(self, key: str | None, bucket: str | None, requester: Principal | None) -> str:
        """A signed PUT URL for `key`; `requester` None (compat mode) checks no permission or ownership."""
        if not key:
            raise fastapi_error("Key parameter is required", 400)
        if bucket and bucket != store_bucket(self.store):
            raise fastapi_error(f"bucket {bucket} is not served", 400)
        if key.startswith("/") or ".." in key:
            raise fastapi_error(f"key {key} is not allowed: it must be a relative path without '..'", 400)
        access = Access() if requester is None else Access.of(self.settings.auth_mode, requester)
        try:
            self._check(key, requester, access)
        except NotFound:  # absent, or hidden from the requester: the same answer
            raise fastapi_error(_not_awaited(key), 400) from None
        except Unauthorized:
            raise unauthorized() from None
        except OpenESDError as error:
            raise fastapi_error(error.message, error.status_code) from None
        return self.store.signed_url(key, "PUT", self.settings.signed_url_ttl_s)

    def _check(self, key: str, requester: Principal | None, access: Access) -> None:
        """Returns when `key` is an upload awaited from the requester; raises the refusal otherwise. The
        permission comes first and the object's state last, so nothing is told about a hidden object."""
        if key == WEBUI_CONFIG:
            if not access.admin:
                raise Refused(
                    f"key {key} is the deployment's shared WebUI settings file: only an administrator may upload it"
                )
            return
        for pattern, find, accepted in self._kinds():
            match = pattern.fullmatch(key)
            if match is None:
                continue
            if requester is not None:
                authorize(requester, accepted)
            obj = access.changeable(find(key, match), NotFound(key))
            self._check_awaited(key, obj)
            return
        raise NotFound(key)

    def _kinds(self):
        """(key pattern, finder, the 1.5.0 permissions of the operation that hands out such upload URLs)."""
        return (
            (JOB_PARAM, self._job, ["inference:all", "inference:create"]),
            (CHECKPOINT_FILE, self._checkpoint, ["checkpoint:all", "checkpoint:create"]),
            (DATASET_FILE, self._dataset, ["train:all"]),
        )

    def _job(self, key: str, match: re.Match) -> InferenceJob | None:
        job = InferenceRepository(self.session).get(match["id"])
        return job if job is not None and job.task_type == match["task"] else None

    def _checkpoint(self, key: str, match: re.Match) -> Checkpoint | None:
        checkpoint = CheckpointRepository(self.session).get(match["id"])
        if (
            checkpoint is None
            or match["name"] not in checkpoint.names
            or key != checkpoint_file(checkpoint.checkpoint_type, checkpoint.id, match["name"])
        ):
            return None
        return checkpoint

    def _dataset(self, key: str, match: re.Match) -> Dataset | None:
        datasets = DatasetRepository(self.session)
        dataset = datasets.get(match["name"])
        if dataset is None or all(item.key != key for item in datasets.items(dataset.name)):
            return None
        return dataset

    def _check_awaited(self, key: str, obj: InferenceJob | Checkpoint | Dataset) -> None:
        if isinstance(obj, InferenceJob):
            if obj.start_time is not None:
                raise Refused(
                    f"inference job {obj.id} has started (status {obj.status}): its api_param.json can "
                    "no longer be uploaded"
                )
            return  # a job not yet started may have its payload uploaded again
        kind, label, awaiting = (
            ("checkpoint", obj.id, "Initial") if isinstance(obj, Checkpoint) else ("dataset", obj.name, "Initialed")
        )
        if obj.status != awaiting:
            raise Refused(f"{kind} {label} is {obj.status}: its files can no longer be uploaded")
        if self.store.stat(key) is not None:
            raise Refused(f"{kind} {label} already has the file {key}: an uploaded file cannot be replaced")


class Refused(OpenESDError):
    """An upload that is known but no longer (or never) awaited from this requester."""

    status_code = 400


def _not_awaited(key: str) -> str:
    return (
        f"key {key} is not an upload awaited from you: a signed PUT URL is given only for the api_param.json "
        "of your inference job that has not started, a file not yet uploaded of your checkpoint (Initial) or "
        f"dataset (Initialed), or {WEBUI_CONFIG} (administrators)"
    )
