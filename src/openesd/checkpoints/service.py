"""Rules for model files: multipart upload, import by URL, completion, rename, listing (esd-api.md §6)."""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from sqlalchemy.orm import Session

from openesd.auth.access import Access
from openesd.auth.principal import Principal
from openesd.checkpoints.downloads import probe
from openesd.checkpoints.repository import CheckpointRepository, Filters, NameTaken
from openesd.checkpoints.schemas import (
    IMPORT_EXTENSIONS,
    STATUSES,
    CreateCheckpoint,
    UpdateCheckpoint,
)
from openesd.checkpoints.verify import RejectedFile, check_parts, verify_file
from openesd.errors import BadRequest, NotFound
from openesd.metadata.db import keep_despite_error
from openesd.metadata.models import Checkpoint
from openesd.settings import Settings
from openesd.storage import MAX_SEGMENT_LENGTH
from openesd.storage.base import ObjectStore
from openesd.storage.layout import checkpoint_file, checkpoint_folder
from openesd.users.repository import UserRepository


def esd_now() -> str:
    """ESD's `params.created` format: `str(datetime.now())`."""
    return str(datetime.now())


def already_exists(name: str) -> BadRequest:
    return BadRequest(f"{name} already exists, please use another or rename/delete exists")


def check_file_name(name: str) -> str:
    name = name.strip()
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
        raise BadRequest(f"file name {name!r} is not allowed: it must be a plain name without path separators")
    if len(name.encode("utf-8")) > MAX_SEGMENT_LENGTH:
        raise BadRequest(
            f"file name {name[:64]!r}... is longer than {MAX_SEGMENT_LENGTH} bytes (UTF-8): use a shorter name"
        )
    return name


def _part_number(name: str, value: object) -> int:
    """As S3 takes it: an integer, not `1.5`, `true`, `"1"` or an overflowing `1e400` (legacy bodies skip the
    schema)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"PartNumber {json.dumps(value)} of {name} is not an integer")
    return value


@dataclass(frozen=True)
class NewCheckpoint:
    """What `create` made: an upload record (`upload`: its view and part URLs), or, for URLs, import records
    (`imports`: their ids, for the importer once they are committed)."""

    upload: dict | None = None
    imports: list[str] = field(default_factory=list)


class Change(Enum):
    """What `update` changed."""

    NOTHING = "nothing"
    STATUS = "status"
    RENAMED = "renamed"  # the file is moving to the new name
    SAME_NAME = "same_name"  # a rename to the name it already has


@dataclass(frozen=True)
class UpdatedCheckpoint:
    """What `update` did; `data` is the ESD `data` a status change answers with."""

    change: Change
    data: dict | None = None  # {"checkpoint": the record's view} after a status change


class CheckpointService:
    def __init__(self, session: Session, store: ObjectStore, settings: Settings):
        self.checkpoints = CheckpointRepository(session)
        self.users = UserRepository(session)
        self.store = store
        self.settings = settings

    # --- create -----------------------------------------------------------------------------
    def create(self, requester: Principal, body: CreateCheckpoint) -> NewCheckpoint:
        if body.params is None:
            raise BadRequest("CreateCheckPointEvent.__init__() missing 1 required positional argument: 'params'")
        if body.urls:
            return NewCheckpoint(imports=self._create_imports(requester, body))
        if not body.filenames:
            raise BadRequest("no checkpoint name (file names) detected")
        return NewCheckpoint(upload=self._create_upload(requester, body))

    def _new_record(
        self,
        requester: Principal,
        body: CreateCheckpoint,
        names: list[str],
        params: dict,
        checkpoint_id: str | None = None,
    ) -> Checkpoint:
        checkpoint = Checkpoint(
            id=checkpoint_id or str(uuid.uuid4()),
            checkpoint_type=body.checkpoint_type,
            status="Initial",
            names=names,
            created=time.time(),
            allowed_roles_or_users=list(requester.roles),
            params={**(body.params or {}), **params, "created": esd_now(), "creator": requester.username},
            hashes={},
            content_hash=None,
            version="v1.0",
        )
        try:
            return self.checkpoints.add(checkpoint)
        except NameTaken as taken:
            raise already_exists(taken.name) from None

    def _create_upload(self, requester: Principal, body: CreateCheckpoint) -> dict:
        names = [check_file_name(f.filename) for f in body.filenames]
        self._check_unique(names)
        checkpoint_id = str(uuid.uuid4())
        uploads, urls = {}, {}
        for upload, name in zip(body.filenames, names, strict=True):
            key = checkpoint_file(body.checkpoint_type, checkpoint_id, name)
            upload_id = self.store.create_multipart(key)
            uploads[name] = {
                "upload_id": upload_id,
                "bucket": self._bucket(),
                "key": key,
                "parts_number": upload.parts_number,
            }
            urls[name] = self.store.signed_part_urls(
                key, upload_id, upload.parts_number, self.settings.signed_url_ttl_s
            )
        checkpoint = self._new_record(requester, body, names, {"multipart_upload": uploads}, checkpoint_id)
        return {"checkpoint": self._created_view(checkpoint), "s3PresignUrl": urls}

    def _create_imports(self, requester: Principal, body: CreateCheckpoint) -> list[str]:
        planned: dict[str, str] = {}
        for url in dict.fromkeys(u.strip() for u in body.urls):
            name = check_file_name(probe(url, self.settings.allow_private_url_imports, 10.0))
            if not name.lower().endswith(IMPORT_EXTENSIONS):
                raise BadRequest(
                    f"{name} has an extension that cannot be imported; allowed: {', '.join(IMPORT_EXTENSIONS)}"
                )
            if name in planned.values():
                raise already_exists(name)
            planned[url] = name
        self._check_unique(planned.values())
        ids = []
        for url, name in planned.items():
            params = {"import": {"url": url, "state": "pending"}, "progress": {"bytes_done": 0, "bytes_total": None}}
            ids.append(self._new_record(requester, body, [name], params).id)
        return ids

    def _check_unique(self, names) -> None:
        names = list(names)
        duplicate = next((n for i, n in enumerate(names) if n in names[:i]), None)
        taken = duplicate or self.checkpoints.taken(names)
        if taken:
            raise already_exists(taken)

    # --- update -----------------------------------------------------------------------------
    def update(
        self, checkpoint_id: str, body: UpdateCheckpoint, access: Access, require_tags: bool = True
    ) -> UpdatedCheckpoint:
        """`require_tags=False`: a status change alone (the legacy `PUT /checkpoint` allows it)."""
        checkpoint = access.changeable(
            self.checkpoints.get_for_update(checkpoint_id), NotFound(f"checkpoint not found with id {checkpoint_id}")
        )
        if body.status is not None:
            view = self._set_status(checkpoint, body, require_tags)
            return UpdatedCheckpoint(Change.STATUS, {"checkpoint": view})
        if body.name is not None:
            return UpdatedCheckpoint(self._rename(checkpoint, body.name))
        return UpdatedCheckpoint(Change.NOTHING)

    def _set_status(self, checkpoint: Checkpoint, body: UpdateCheckpoint, require_tags: bool = True) -> dict:
        if require_tags and not body.multi_parts_tags:
            raise BadRequest("multi parts tags is empty")
        if body.status not in STATUSES:
            raise BadRequest(f"'{body.status}'")
        hashes = dict(checkpoint.hashes)
        tags = body.multi_parts_tags or {}
        uploads = {
            n: u for n, u in checkpoint.params.get("multipart_upload", {}).items() if n in tags and n not in hashes
        }
        parts = {
            name: self._parts(name, upload, tags[name]) for name, upload in uploads.items()
        }  # all, before any completes
        for name, upload in uploads.items():
            stored = self.store.complete_multipart(upload["key"], upload["upload_id"], parts[name])
            hashes[name] = stored.sha256 or self._hash_stored(upload["key"])
            if name == checkpoint.names[0]:  # the model file's size, shown by listings (the console's Models page)
                checkpoint.params = {**checkpoint.params, "size": stored.size}
            self._verify_completed(checkpoint, name, upload["key"], hashes)
        if body.status == "Active":
            missing = [n for n in checkpoint.names if n not in hashes]
            if missing:
                raise BadRequest(
                    f"cannot activate checkpoint {checkpoint.id}: no uploaded content for {', '.join(missing)}; "
                    "send its parts' ETags in multi_parts_tags"
                )
        self.record_hashes(checkpoint, hashes)
        checkpoint.status = body.status
        return self._created_view(checkpoint)

    @staticmethod
    def _parts(name: str, upload: dict, tags: list[dict]) -> list[tuple[int, str]]:
        try:
            parts = sorted((_part_number(name, t["PartNumber"]), str(t["ETag"])) for t in tags)
        except (KeyError, TypeError, ValueError):
            raise BadRequest(f'multi_parts_tags of {name} must be a list of {{"ETag", "PartNumber"}} objects') from None
        check_parts(name, upload, [number for number, _ in parts])
        return parts

    def _verify_completed(self, checkpoint: Checkpoint, name: str, key: str, hashes: dict) -> None:
        """Record what the file is; a bad file is deleted and the record `Disabled` with the reason, kept
        although the request answers 400 (the upload is used up: the client must upload again)."""
        try:
            found = self.verify(checkpoint, name, key)
        except RejectedFile as rejected:
            del hashes[name]
            self.store.delete(key)
            self.record_hashes(checkpoint, hashes)
            checkpoint.params = {**checkpoint.params, "error": rejected.message}
            checkpoint.status = "Disabled"
            keep_despite_error(self.checkpoints.session)
            raise
        if found and (name == checkpoint.names[0] or "model_family" not in checkpoint.params):  # the model file's
            checkpoint.params = {**checkpoint.params, **found}

    def verify(self, checkpoint: Checkpoint, name: str, key: str) -> dict:
        """What to record about a stored file (`model_family`), or RejectedFile."""
        return verify_file(self.store, key, name, checkpoint.checkpoint_type, self.settings.data_dir / "tmp" / "verify")

    def _hash_stored(self, key: str) -> str:
        import hashlib

        digest = hashlib.sha256()
        with self.store.open(key) as stream:
            for chunk in iter(lambda: stream.read(1024 * 1024), b""):
                digest.update(chunk)
        return digest.hexdigest()

    def record_hashes(self, checkpoint: Checkpoint, hashes: dict) -> None:
        checkpoint.hashes = hashes
        first = hashes.get(checkpoint.names[0]) if checkpoint.names else None
        if first and checkpoint.content_hash != first:
            checkpoint.content_hash = first
            twin = self.checkpoints.with_content(checkpoint.checkpoint_type, first, checkpoint.id)
            if twin is not None:
                checkpoint.params = {**checkpoint.params, "duplicate_of": twin.id}

    def _rename(self, checkpoint: Checkpoint, new_name: str) -> Change:
        if checkpoint.status != "Active":
            raise BadRequest("only active can update name")
        old_name = checkpoint.names[0]
        if new_name == old_name:
            return Change.SAME_NAME
        if self.checkpoints.taken([new_name]):
            raise already_exists(new_name)
        self.checkpoints.release([old_name])
        try:
            self.checkpoints.reserve(checkpoint.id, [new_name])
        except NameTaken:
            raise already_exists(new_name) from None
        hashes = {(new_name if k == old_name else k): v for k, v in checkpoint.hashes.items()}
        checkpoint.names = [new_name, *checkpoint.names[1:]]
        checkpoint.hashes = hashes
        kind = checkpoint.checkpoint_type
        self.store.move(checkpoint_file(kind, checkpoint.id, old_name), checkpoint_file(kind, checkpoint.id, new_name))
        return Change.RENAMED

    # --- delete -----------------------------------------------------------------------------
    def delete(self, ids: list[str], access: Access) -> None:
        for checkpoint in access.deletable(self.checkpoints.get(i) for i in dict.fromkeys(ids)):
            for name, upload in checkpoint.params.get("multipart_upload", {}).items():
                if name not in checkpoint.hashes:
                    self.store.abort_multipart(upload["key"], upload["upload_id"])
            self.checkpoints.delete(checkpoint)
            self.store.delete_prefix(checkpoint_folder(checkpoint.checkpoint_type, checkpoint.id) + "/")

    # --- list -------------------------------------------------------------------------------
    def list(
        self,
        requester: Principal,
        page: int,
        per_page: int,
        username: str | None,
        statuses: list[str],
        types: list[str],
        roles: list[str],
    ) -> dict:
        if page < 1 or per_page < 1:
            raise BadRequest(f"page and per_page must be at least 1 (got page={page}, per_page={per_page})")
        access = Access.of(self.settings.auth_mode, requester)
        # strict: what the requester may see (the `username` query narrows it further); compat: ESD's rule
        esd_rule = username is not None or not access.checked
        if not esd_rule or requester.permissions.has_any(["user:all"]):  # ESD's rule lets everything through
            if username is not None:
                self._visibility_roles(requester, username)  # an unknown `username` is still a 400
            return self._sql_page(page, per_page, Filters(statuses, types, roles, access))
        principal_roles = self._visibility_roles(requester, username)
        visible = [
            c
            for c in access.only_visible(self.checkpoints.list(statuses, types))
            if (not esd_rule or self._visible(c, requester, username, principal_roles))
            and (not roles or set(roles) & set(c.allowed_roles_or_users))
        ]
        start = (page - 1) * per_page
        return {
            "page": page,
            "per_page": per_page,
            "pages": math.ceil(len(visible) / per_page),
            "total": len(visible),
            "checkpoints": [self.list_view(c) for c in visible[start : start + per_page]],
        }

    def _sql_page(self, page: int, per_page: int, filters: Filters) -> dict:
        """One page read in SQL (the ownership policy and the `roles` query as SQL conditions), so a page does
        not load every record: the console's Models page (bench/console.py)."""
        total, rows = self.checkpoints.page(filters, (page - 1) * per_page, per_page)
        return {
            "page": page,
            "per_page": per_page,
            "pages": math.ceil(total / per_page),
            "total": total,
            "checkpoints": [self.list_view(c) for c in rows],
        }

    def _visibility_roles(self, requester: Principal, username: str | None) -> set[str]:
        if username is None:
            query_roles = {"*"}
        else:
            user = self.users.get(username)
            if user is None:
                raise BadRequest(f'user: "{username}" not exist')
            query_roles = set(user.roles)
        from openesd.roles.repository import RoleRepository

        created = {r.name for r in RoleRepository(self.checkpoints.session).list() if r.creator == requester.username}
        return query_roles | created

    @staticmethod
    def _visible(c: Checkpoint, requester: Principal, username: str | None, roles: set[str]) -> bool:
        owners = set(c.allowed_roles_or_users)
        return (
            requester.permissions.has_any(["user:all"])
            or not owners
            or "*" in owners
            or (username is not None and username in owners)
            or bool(owners & roles)
        )

    # --- views ------------------------------------------------------------------------------
    def _bucket(self) -> str:
        from urllib.parse import urlsplit

        return urlsplit(self.store.uri("")).netloc or "local"

    def location(self, checkpoint: Checkpoint) -> str:
        return self.store.uri(checkpoint_folder(checkpoint.checkpoint_type, checkpoint.id))

    def _created_view(self, checkpoint: Checkpoint) -> dict:
        return {
            "id": checkpoint.id,
            "type": checkpoint.checkpoint_type,
            "s3_location": self.location(checkpoint),
            "status": checkpoint.status,
            "params": checkpoint.params,
        }

    def list_view(self, checkpoint: Checkpoint) -> dict:
        first_hash = checkpoint.hashes.get(checkpoint.names[0]) if checkpoint.names else None
        return {
            "id": checkpoint.id,
            "s3Location": self.location(checkpoint),
            "type": checkpoint.checkpoint_type,
            "status": checkpoint.status,
            "name": list(checkpoint.names),
            "created": str(checkpoint.created),
            "params": checkpoint.params,
            "allowed_roles_or_users": list(checkpoint.allowed_roles_or_users),
            "hash": first_hash,
            "short_hash": first_hash[:10] if first_hash else None,
            "size": checkpoint.params.get("size"),  # bytes of the model file, once its content is complete
        }


class ImportRecords:
    """What the background importer may change on a record: progress, completion, failure."""

    def __init__(self, session: Session, store: ObjectStore, settings: Settings):
        self.service = CheckpointService(session, store, settings)
        self.checkpoints = self.service.checkpoints

    def start(self, checkpoint_id: str) -> tuple[str, str] | None:
        """(url, destination key) of a pending import, or None when there is nothing to do."""
        checkpoint = self.checkpoints.get_for_update(checkpoint_id)
        if checkpoint is None or checkpoint.status != "Initial" or "import" not in checkpoint.params:
            return None
        job = checkpoint.params["import"]
        checkpoint.params = {**checkpoint.params, "import": {**job, "state": "running"}}
        key = checkpoint_file(checkpoint.checkpoint_type, checkpoint.id, checkpoint.names[0])
        return job["url"], key

    def progress(self, checkpoint_id: str, done: int, total: int | None) -> None:
        checkpoint = self.checkpoints.get(checkpoint_id)
        if checkpoint is not None:
            checkpoint.params = {**checkpoint.params, "progress": {"bytes_done": done, "bytes_total": total}}

    def finish(self, checkpoint_id: str, key: str, sha256: str) -> bool:
        """Check the stored file and mark the import done; False when the file is not kept (the record was
        deleted meanwhile, or the file is bad: the record is then `Disabled` with `params.error`)."""
        checkpoint = self.checkpoints.get_for_update(checkpoint_id)
        if checkpoint is None:
            return False
        try:
            found = self.service.verify(checkpoint, checkpoint.names[0], key)
        except RejectedFile as rejected:
            self.fail(checkpoint_id, rejected.message)
            return False
        job = {**checkpoint.params["import"], "state": "done"}
        stored = self.service.store.stat(key)
        size = {"size": stored.size} if stored is not None else {}
        checkpoint.params = {**checkpoint.params, **found, **size, "import": job}
        self.service.record_hashes(checkpoint, {checkpoint.names[0]: sha256})
        checkpoint.status = "Active"
        return True

    def fail(self, checkpoint_id: str, error: str) -> None:
        checkpoint = self.checkpoints.get_for_update(checkpoint_id)
        if checkpoint is not None:
            job = {**checkpoint.params.get("import", {}), "state": "failed"}
            checkpoint.params = {**checkpoint.params, "import": job, "error": error}
            checkpoint.status = "Disabled"

    def pending(self) -> list[str]:
        return [c.id for c in self.checkpoints.pending_imports()]
