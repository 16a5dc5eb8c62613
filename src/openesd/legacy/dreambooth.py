"""Dreambooth-era base models (esd-legacy-api.md §9): a legacy record naming a 1.5.0 checkpoint.

OpenESD trains from single-file checkpoints, so `PUT /model` completes the upload and the model is
`Complete` at once (§9.4); nothing is converted."""

from __future__ import annotations

import time
import uuid
from typing import Annotated

from fastapi import Depends
from pydantic import ValidationError
from sqlalchemy.orm import Session

from openesd.api.deps import SessionDep, StoreDep
from openesd.auth.access import Access
from openesd.auth.principal import Principal
from openesd.checkpoints.routes import Checkpoints
from openesd.checkpoints.schemas import CreateCheckpoint, UpdateCheckpoint
from openesd.checkpoints.service import CheckpointService
from openesd.datasets.service import visible
from openesd.errors import Forbidden, OpenESDError
from openesd.legacy.archives import unpack_checkpoint
from openesd.legacy.checkpoints import MAX_PARTS
from openesd.legacy.datasets import creating_requester, list_requester
from openesd.legacy.identity import Requesters, RequestersDep
from openesd.legacy.responses import LegacyError, lambda_error
from openesd.legacy.repository import LegacyModelRepository
from openesd.metadata.models import LegacyModel
from openesd.storage.base import ObjectStore
from openesd.storage.layout import legacy_model_output

MODEL_TYPE = "Stable-diffusion"  # a dreambooth base model is an SD checkpoint


class LegacyModels:
    def __init__(self, session: Session, store: ObjectStore, checkpoints: CheckpointService, requesters: Requesters):
        self.models = LegacyModelRepository(session)
        self.store = store
        self.checkpoints = checkpoints
        self.requesters = requesters

    # --- POST /model --------------------------------------------------------------------------
    def create(self, body: dict) -> dict:
        name, kind, params = body.get("name"), body.get("model_type"), body.get("params")
        if not isinstance(name, str) or not name.strip() or "/" in name or "\\" in name or name in (".", ".."):
            raise lambda_error(500, "error", "name is required: a model name without path separators")
        if kind != MODEL_TYPE:
            raise lambda_error(
                500, "error", f"model_type {kind!r} is not supported: a dreambooth base model is '{MODEL_TYPE}'"
            )
        if not isinstance(params, dict):
            raise lambda_error(500, "error", "params is required: an object (create_model_params)")
        requester = creating_requester(self.requesters, body.get("creator"))
        files, checkpoint_id = body.get("filenames") or [], body.get("checkpoint_id") or ""
        if checkpoint_id:
            base, urls = self._existing_checkpoint(checkpoint_id, requester), {}
        elif files:
            base, urls = self._new_checkpoint(name, files, requester)
        else:
            raise lambda_error(400, "errMsg", "either checkpoint_id or filenames need to be provided")
        model_id = str(uuid.uuid4())
        self.models.add(
            LegacyModel(
                id=model_id,
                name=name,
                checkpoint_id=base.id,
                model_type=kind,
                job_status="Initial",
                output_s3_location=self.store.uri(legacy_model_output(kind, name, model_id)),
                params=params,
                created=time.time(),
                allowed_roles_or_users=[requester.username],
            )
        )
        job = {
            "id": model_id,
            "status": "Initial",
            "s3_base": self.checkpoints.location(base),
            "model_type": kind,
            "params": params,
        }
        return {"statusCode": 200, "job": job, "s3PresignUrl": urls}

    def _existing_checkpoint(self, checkpoint_id: str, requester: Principal):
        base = self.checkpoints.checkpoints.get(checkpoint_id)
        if base is None or not self.requesters.access(requester).can_see(base):
            raise lambda_error(500, "error", f"create model ckpt with id {checkpoint_id} is not found")
        if base.status != "Active" or base.checkpoint_type != MODEL_TYPE:
            raise LegacyError({"status": 400, "error": f"checkpoint with id ({checkpoint_id}) is not Active to use"})
        owners = base.allowed_roles_or_users
        if (
            owners
            and "*" not in owners
            and not set(owners) & set(requester.roles)
            and not requester.permissions.has_any(["user:all"])
        ):
            raise LegacyError(
                {
                    "status": 400,
                    "error": f"checkpoint with id ({checkpoint_id}) is not allowed to use by user {requester.username}",
                }
            )
        return base

    def _new_checkpoint(self, name: str, files: object, requester: Principal):
        try:
            event = CreateCheckpoint(
                checkpoint_type=MODEL_TYPE,
                filenames=files,
                params={"message": f"base model of the dreambooth model {name}"},
            )
        except ValidationError:
            raise lambda_error(
                500, "error", 'filenames must be a list of {"filename", "parts_number"} objects'
            ) from None
        for upload in event.filenames or []:
            if not 1 <= upload.parts_number <= MAX_PARTS:
                raise lambda_error(500, "error", f"parts_number of {upload.filename} must be 1 to {MAX_PARTS}")
        try:
            data = self.checkpoints.create(requester, event).upload
        except OpenESDError as error:
            raise lambda_error(500, "error", error.message) from None
        return self.checkpoints.checkpoints.get(data["checkpoint"]["id"]), data["s3PresignUrl"]

    # --- PUT /model ---------------------------------------------------------------------------
    def complete(self, body: dict, access: Access) -> dict:
        model_id, status, tags = body.get("model_id"), body.get("status"), body.get("multi_parts_tags") or {}
        model = self.models.get(model_id) if isinstance(model_id, str) else None
        if model is None or not access.can_see(model):
            raise lambda_error(200, "error", f"create model with id {model_id} is not found")
        try:
            access.check_change(model)
        except Forbidden as error:  # someone else's model (strict mode)
            raise lambda_error(403, "error", error.message) from None
        if status == "Initial":
            raise lambda_error(
                500,
                "error",
                "please create a new model creation job for this, not allowed overwrite old model creation job",
            )
        if status != "Creating":
            raise lambda_error(500, "error", f"status {status!r} is not supported: PUT /model takes 'Creating'")
        if not isinstance(tags, dict):
            raise lambda_error(500, "error", "multi_parts_tags must be an object: file name → [{ETag, PartNumber}]")
        base = self.checkpoints.checkpoints.get_for_update(model.checkpoint_id)
        if base is None:
            raise lambda_error(500, "error", f"checkpoint not found with id {model.checkpoint_id}")
        self._prepare(base, tags, access)
        model.job_status = "Complete"
        model.params = {**model.params, "resp": {"checkpoint_id": base.id, "model_file": base.names[0]}}
        job = {
            "output_path": self.checkpoints.location(base),
            "id": model.id,
            "endpointName": None,
            "jobStatus": "Creating",
            "jobType": model.model_type,
        }
        return {"statusCode": 200, "job": job}

    def _prepare(self, base, tags: dict, access: Access) -> None:
        """Complete the upload of a new checkpoint; unpack a tar archive also in a reused one (§1.7)."""
        try:
            if base.status == "Initial":
                self.checkpoints.update(
                    base.id, UpdateCheckpoint(status="Active", multi_parts_tags=tags), access, require_tags=False
                )
            unpack_checkpoint(self.store, self.checkpoints.checkpoints, base)
        except (OpenESDError, ValidationError) as error:
            raise lambda_error(500, "error", getattr(error, "message", f"multi_parts_tags: {error}")) from None

    # --- GET /models --------------------------------------------------------------------------
    def list(self, types: list[str], statuses: list[str]) -> dict:
        rows = self.models.newest_first(types, statuses)
        if not rows and self.requesters.settings.auth_mode != "strict":  # ESD answered before its identity checks
            return {"statusCode": 200, "models": []}
        requester = list_requester(self.requesters, "400")
        access = self.requesters.access(requester)  # strict: the ownership policy; compat: ESD's owner rule
        rows = (
            access.only_visible(rows)
            if access.checked
            else [m for m in rows if visible(m.allowed_roles_or_users, requester)]
        )
        return {"statusCode": 200, "models": [_item(m) for m in rows]}

    def base_of(self, model_id: str, access: Access) -> tuple[LegacyModel | None, object]:
        """The model and its checkpoint (either may be None, and a model hidden from the requester is): what a
        legacy training starts from."""
        model = self.models.get(model_id)
        model = model if model is not None and access.can_see(model) else None
        return model, (self.checkpoints.checkpoints.get(model.checkpoint_id) if model else None)


def _item(model: LegacyModel) -> dict:
    return {
        "id": model.id,
        "model_name": model.name,
        "created": float(model.created),
        "params": model.params,
        "status": model.job_status,
        "output_s3_location": model.output_s3_location,
    }


def get_legacy_models(
    session: SessionDep, store: StoreDep, checkpoints: Checkpoints, requesters: RequestersDep
) -> LegacyModels:
    return LegacyModels(session, store, checkpoints, requesters)


LegacyModelsDep = Annotated[LegacyModels, Depends(get_legacy_models)]
