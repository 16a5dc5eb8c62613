"""Legacy checkpoint routes (esd-legacy-api.md §4.7, §8) over the 1.5.0 checkpoint service."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import Depends
from pydantic import ValidationError
from sqlalchemy.orm import Session

from openesd.api.deps import ImporterDep, SessionDep
from openesd.api.validation import validate
from openesd.auth.access import Access
from openesd.checkpoints.repository import CheckpointRepository
from openesd.checkpoints.routes import Checkpoints
from openesd.checkpoints.schemas import CreateCheckpoint, UpdateCheckpoint
from openesd.checkpoints.service import CheckpointService
from openesd.errors import Forbidden, NotFound, OpenESDError
from openesd.legacy.archives import unpack_checkpoint
from openesd.legacy.identity import Requesters, RequestersDep, holds
from openesd.legacy.responses import BODY_HEADERS, LegacyError
from openesd.metadata.db import after_commit, commit_now

LEGACY_TYPES = ["Stable-diffusion", "embeddings", "Lora", "hypernetworks", "ControlNet", "VAE"]
MAX_PARTS = 10000
ALL = 1_000_000  # one page holding every record: legacy lists are unpaged
CREATE = ("checkpoint:all", "checkpoint:create")


def checkpoint_error(status_code: int | str, key: str, message: str) -> LegacyError:
    return LegacyError({"statusCode": status_code, "headers": BODY_HEADERS, key: message})


def list_error(message: str) -> LegacyError:
    return LegacyError({"statusCode": "400", "error": message})


class LegacyCheckpoints:
    def __init__(self, service: CheckpointService, session: Session, requesters: Requesters, importer: Any):
        self.service = service
        self.session = session
        self.requesters = requesters
        self.importer = importer

    def active_names(self, kind: str, access: Access) -> list[str]:
        """§4.7: file names of every Active checkpoint of one type the requester may see, de-duplicated and
        sorted (ESD filtered nothing; neither does compat mode)."""
        records = access.only_visible(CheckpointRepository(self.session).list(["Active"], [kind]))
        return sorted({name for c in records for name in c.names})

    # --- POST /checkpoint ---------------------------------------------------------------------
    def create_upload(self, body: dict) -> dict:
        params = body.get("params") if isinstance(body.get("params"), dict) else {}
        kind = self._check_type(body.get("checkpoint_type"))
        files = body.get("filenames")
        if not isinstance(files, list) or not files:
            raise checkpoint_error(400, "errorMsg", "no checkpoint name (file names) detected")
        requester = self.requesters.resolve(params.get("creator"))
        if not holds(requester, *CREATE):
            raise checkpoint_error(400, "error", "user has no permissions to create a model")
        try:
            event = CreateCheckpoint(checkpoint_type=kind, params=params, filenames=files)
        except ValidationError:
            raise checkpoint_error(
                500, "error", 'filenames must be a list of {"filename", "parts_number"} objects'
            ) from None
        for upload in event.filenames or []:
            if not 1 <= upload.parts_number <= MAX_PARTS:
                raise checkpoint_error(500, "error", f"parts_number of {upload.filename} must be 1 to {MAX_PARTS}")
        try:
            data = self.service.create(requester, event).upload
        except OpenESDError as error:
            raise checkpoint_error(500, "error", error.message) from None
        return {"statusCode": 200, "headers": BODY_HEADERS, **data}

    @staticmethod
    def _check_type(kind: object) -> str:
        errors = validate(kind, {"type": "string", "enum": LEGACY_TYPES})
        if errors:
            raise checkpoint_error(500, "error", errors[0])
        return str(kind)

    # --- PUT /checkpoint ----------------------------------------------------------------------
    def complete(self, body: dict, access: Access) -> dict:
        checkpoint_id, status = body.get("checkpoint_id"), body.get("status")
        tags = body.get("multi_parts_tags") or {}
        if not isinstance(checkpoint_id, str) or not isinstance(status, str) or not isinstance(tags, dict):
            raise checkpoint_error(
                500, "msg", "checkpoint_id and status (strings) and multi_parts_tags (an object) are required"
            )
        try:
            data = self.service.update(
                checkpoint_id, UpdateCheckpoint(status=status, multi_parts_tags=tags), access, require_tags=False
            ).data
            # §1.7: the WebUI uploads a tar archive under the model's own name
            unpack_checkpoint(self.service.store, self.service.checkpoints, self.service.checkpoints.get(checkpoint_id))
        except NotFound as error:
            raise checkpoint_error(500, "error", error.message) from None
        except Forbidden as error:  # someone else's checkpoint (strict mode)
            raise checkpoint_error(403, "error", error.message) from None
        except (OpenESDError, ValidationError) as error:
            raise checkpoint_error(500, "msg", getattr(error, "message", "multi_parts_tags: " + str(error))) from None
        return {"statusCode": 200, "headers": BODY_HEADERS, **(data or {})}

    # --- GET /checkpoints (legacy mount) --------------------------------------------------------
    def list(self, username: str | None, statuses: list[str], types: list[str]) -> dict:
        requester = self.requesters.resolve()
        if not requester.exists:
            raise list_error(f'user: "{requester.username}" not exist')
        if not holds(requester, "checkpoint:all", "checkpoint:list"):
            raise list_error(f"User {requester.username} has no permissions: ['checkpoint:all', 'checkpoint:list']")
        try:
            listed = self.service.list(requester, 1, ALL, username, statuses, types, [])
        except OpenESDError as error:
            raise list_error(error.message) from None
        return {"statusCode": 200, "checkpoints": [legacy_item(c) for c in listed["checkpoints"]]}

    # --- POST /upload_checkpoint --------------------------------------------------------------
    def import_urls(self, body: dict, wait_s: float) -> dict:
        kind = body.get("checkpointType")
        if kind not in LEGACY_TYPES:
            raise checkpoint_error(
                500,
                "error",
                "please choose the right type from :'Stable-diffusion', "
                "'embeddings', 'Lora', 'hypernetworks', 'Controlnet', 'VAE'",
            )
        params = body.get("params") if isinstance(body.get("params"), dict) else {}
        requester = self.requesters.resolve(params.get("creator"))
        if not holds(requester, *CREATE):
            raise checkpoint_error(400, "error", "user has no permissions to create a model")
        urls = body.get("modelUrl")
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) and u.strip() for u in urls):
            raise checkpoint_error(500, "error", "modelUrl must be a non-empty list of URLs")
        try:
            ids = self.service.create(
                requester, CreateCheckpoint(checkpoint_type=kind, params=params, urls=urls)
            ).imports
        except OpenESDError as error:
            raise checkpoint_error(500, "error", error.message) from None
        for checkpoint_id in ids:
            after_commit(self.session, self.importer.submit, checkpoint_id)
        commit_now(self.session)  # the old API answers once the imports ended: the importer needs the rows now
        views = self._wait_for(ids, wait_s)
        answer = {"statusCode": 200, "headers": BODY_HEADERS, "checkpoint": views[0]}
        if len(views) > 1:
            answer["checkpoints"] = views
        return answer

    def _wait_for(self, ids: list[str], wait_s: float) -> list[dict]:
        """The records once every import has ended, or as they stand when `wait_s` has passed."""
        repository = CheckpointRepository(self.session)
        deadline = time.monotonic() + wait_s
        while True:
            self.session.rollback()  # nothing is pending: end the read transaction to see the importer's commits
            records = [repository.get(i) for i in ids]
            if all(r is None or r.status != "Initial" for r in records) or time.monotonic() >= deadline:
                return [self._view(r) for r in records if r is not None]
            time.sleep(0.2)

    def _view(self, record) -> dict:
        return {
            "id": record.id,
            "type": record.checkpoint_type,
            "s3_location": self.service.location(record),
            "status": record.status,
            "params": record.params,
        }


def legacy_item(item: dict) -> dict:
    """§8.3 item shape, `created` as a JSON number; `params` kept so a client can read a failure."""
    keys = ("id", "s3Location", "type", "status", "name", "created", "allowed_roles_or_users", "params")
    view = {k: item[k] for k in keys}
    view["created"] = float(item["created"])
    return view


def get_legacy_checkpoints(
    service: Checkpoints, session: SessionDep, requesters: RequestersDep, importer: ImporterDep
) -> LegacyCheckpoints:
    return LegacyCheckpoints(service, session, requesters, importer)


LegacyCheckpointsDep = Annotated[LegacyCheckpoints, Depends(get_legacy_checkpoints)]
