"""Rules for inference jobs: create, schedule, start, read, list, delete (esd-api.md §8)."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from sqlalchemy.orm import Session

from openesd.auth.access import Access
from openesd.auth.principal import Principal
from openesd.auth.service import authorize
from openesd.checkpoints.repository import CheckpointRepository
from openesd.endpoints import paging
from openesd.endpoints.repository import EndpointRepository
from openesd.errors import BadRequest, GatewayTimeout, NotFound
from openesd.execution.base import Engine, JobSpec
from openesd.inferences.errors import ModelsNotFound, NoEndpointAvailable
from openesd.inferences.reporter import JobWaiter, mark_cancelled, publish_job_event
from openesd.inferences.repository import InferenceRepository
from openesd.inferences.schemas import (
    DIFFUSION_TASKS,
    EXTRAS_MODEL_TYPES,
    EXTRAS_TASKS,
    MAX_PREVIEW_EVERY,
    STATUSES,
    TERMINAL,
    CreateInference,
)
from openesd.metadata.db import after_commit
from openesd.metadata.models import Endpoint, InferenceJob
from openesd.settings import Settings
from openesd.storage.base import ObjectStore
from openesd.storage.layout import (
    async_output,
    checkpoint_file,
    checkpoint_folder,
    job_param,
    job_preview,
    job_result,
    job_result_info,
    job_results,
    started_job_param,
)
from openesd.users.repository import UserRepository
from openesd.webhooks.service import WebhookService

TASK_TYPES = (*DIFFUSION_TASKS, *EXTRAS_TASKS)
VIRTUAL_VAES = ("Automatic", "None")
# Files a WebUI extension finds on its own (the ControlNet extension's annotators, ADetailer's detectors):
# an ESD payload never lists them, so a txt2img/img2img job gets every Active one its user can see,
# unless `models` names some (docs/decisions.md, "Scripts and extensions").
EXTENSION_MODEL_TYPES = ("ControlNet-annotator", "ADetailer")


def model_names(kind: str, names: object) -> list[str]:
    """The file names listed under one type of `models` (a lone name is taken as a list of one)."""
    if names is None:
        return []
    if isinstance(names, str):
        return [names]
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise BadRequest(f"models.{kind} must be a list of file names, got {json.dumps(names)}")
    return names


def preview_every(value: object, default: int) -> int:
    """OpenESD's `preview_every` of POST /inferences: a live preview every N model calls, 0 for none."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PREVIEW_EVERY:
        raise BadRequest(
            f"preview_every must be an integer from 0 (no previews) to {MAX_PREVIEW_EVERY} model calls, "
            f"got {json.dumps(value)}"
        )
    return value


def job_spec(job: InferenceJob) -> JobSpec:
    """What the worker needs, rebuilt from the row alone (so a restarted server can dispatch it again)."""
    models = {
        kind: [
            {
                "id": m["id"],
                "model_name": m["model_name"],
                "key": None if m["s3"] == "None" else checkpoint_file(kind, m["id"], m["model_name"]),
            }
            for m in entries
        ]
        for kind, entries in (job.params.get("used_models") or {}).items()
    }
    return JobSpec(
        id=job.id,
        endpoint_id=job.endpoint_id or "",
        task=job.task_type,
        param_key=started_job_param(job.task_type, job.id),
        payload_string=job.payload_string,
        models=models,
        attempt=job.attempts,
        preview_every=int(job.params.get("preview_every") or 0),
    )


class Stage(Enum):
    """Where a job stands when `create` or `start` returns."""

    CREATED = "created"  # waits for its payload upload and a start call
    QUEUED = "queued"  # asynchronous: on its endpoint's queue once committed
    RUNNING = "running"  # real-time: reaches the engine once committed; the request waits (`run_to_end`)
    FINISHED = "finished"  # real-time: ran to its end inside the request


@dataclass(frozen=True)
class JobOutcome:
    """`data` is the ESD `data`: {"inference": ...} when created or queued, the job's view when finished."""

    stage: Stage
    data: dict


class InferenceService:
    def __init__(
        self, session: Session, store: ObjectStore, settings: Settings, engine: Engine, waiter: JobWaiter, replica: str
    ):
        self.session, self.replica = session, replica  # replica: the lease owner of the jobs started here
        self.jobs_repo = InferenceRepository(session)
        self.endpoints = EndpointRepository(session)
        self.checkpoints = CheckpointRepository(session)
        self.users = UserRepository(session)
        self.webhooks = WebhookService(session, settings.allow_private_webhooks)
        self.store, self.settings, self.engine, self.waiter = store, settings, engine, waiter

    # --- create -----------------------------------------------------------------------------
    def create(self, body: CreateInference, identify: Callable[[], Principal]) -> JobOutcome:
        """A created job with its upload URL, or, with `payload_string`, a started one."""
        if body.payload_string is not None:
            try:
                json.loads(body.payload_string)  # Python's parser takes Infinity and NaN, as ESD's does
            except (ValueError, RecursionError):  # RecursionError: nested thousands deep
                raise BadRequest("payload_string must be valid json string") from None
        previews = preview_every(body.preview_every, self.settings.preview_every)
        requester = authorize(identify(), ["inference:all", "inference:create"])
        access = Access.of(self.settings.auth_mode, requester)
        if body.task_type not in TASK_TYPES:
            raise BadRequest(
                f"task type {body.task_type} should be in "
                "['extra-single-image', 'extra-batch-images', 'rembg'] or ['txt2img', 'img2img']"
            )
        self.webhooks.check(body.webhook)
        endpoint = self._schedule(requester, body, access)
        used = self._resolve_models(body, access)
        job = self._store_job(requester, body, endpoint, used)
        if previews and body.task_type in DIFFUSION_TASKS:  # only sampling makes previews
            job.params = {**job.params, "preview_every": previews}
        self.webhooks.subscribe("inference", job.id, requester.username, body.webhook)
        if body.payload_string is not None:
            return self.start(job.id, access)  # a real-time one comes back RUNNING: see `run_to_end`
        # The upload URL is handed to the creator here only: no listing or read ever shows it (a read
        # permission must not grant a write).
        upload_url = self.store.signed_url(job_param(job.task_type, job.id), "PUT", self.settings.signed_url_ttl_s)
        view = {
            "id": job.id,
            "type": job.task_type,
            "api_params_s3_location": job.params["input_body_s3"],
            "api_params_s3_upload_url": upload_url,
        }
        if job.task_type in DIFFUSION_TASKS:
            view["models"] = [
                {"id": m["id"], "name": [m["model_name"]], "type": kind}
                for kind, entries in used.items()
                for m in entries
            ]
        return JobOutcome(Stage.CREATED, {"inference": view})

    def _schedule(self, requester: Principal, body: CreateInference, access: Access) -> Endpoint:
        if body.sagemaker_endpoint_name:
            endpoint = access.visible(
                self.endpoints.by_name(body.sagemaker_endpoint_name),
                BadRequest(f"sagemaker endpoint with name {body.sagemaker_endpoint_name} is not found"),
            )
            if endpoint.endpoint_status != "InService":
                raise BadRequest(f"sagemaker endpoint is not ready with status: {endpoint.endpoint_status}")
            return endpoint
        mine = {"*", requester.username, *requester.roles}
        candidates = [e for e in self.endpoints.schedulable(body.inference_type) if mine & set(e.owner_group_or_role)]
        if not candidates:
            raise NoEndpointAvailable(f'no available {body.inference_type} endpoints for user "{requester.username}"')
        return random.choice(candidates)

    def _resolve_models(self, body: CreateInference, access: Access) -> dict[str, list[dict]]:
        if body.task_type in EXTRAS_TASKS:
            return self._extras_models(body, access)
        used: dict[str, list[dict]] = {}
        missing = []
        for kind, names in body.models.items():
            for name in model_names(kind, names):
                if kind == "VAE" and name in VIRTUAL_VAES:
                    used.setdefault(kind, []).append({"id": "VAE", "model_name": name, "s3": "None", "type": kind})
                    continue
                checkpoint = self.checkpoints.active_by_name(kind, name)
                if checkpoint is None or not access.can_see(checkpoint):
                    missing.append(f"checkpoint with name {name}, type {kind} is not found")
                    continue
                used.setdefault(kind, []).append(self._entry(kind, checkpoint.id, name))
        if missing:
            raise ModelsNotFound(missing)
        for kind in EXTENSION_MODEL_TYPES:
            if kind not in used:
                used.update(self._every_active(kind, access))
        return used

    def _extras_models(self, body: CreateInference, access: Access) -> dict[str, list[dict]]:
        """The models an extras task may use: the ones named, or every Active one of its type (as the WebUI
        offers every installed upscaler)."""
        kind = EXTRAS_MODEL_TYPES[body.task_type]
        return self._every_active(kind, access, set(model_names(kind, body.models.get(kind))))

    def _every_active(self, kind: str, access: Access, named: set[str] | None = None) -> dict[str, list[dict]]:
        """Every Active file of `kind` the requester can see (only the `named` ones when some are named)."""
        entries = [
            self._entry(kind, c.id, name)
            for c in access.only_visible(self.checkpoints.list(["Active"], [kind]))
            for name in c.names
            if not named or name in named
        ]
        return {kind: entries} if entries else {}

    def _entry(self, kind: str, checkpoint_id: str, name: str) -> dict:
        return {
            "id": checkpoint_id,
            "model_name": name,
            "s3": self.store.uri(checkpoint_folder(kind, checkpoint_id)),
            "type": kind,
        }

    def _store_job(self, requester: Principal, body: CreateInference, endpoint: Endpoint, used: dict) -> InferenceJob:
        job_id = str(uuid.uuid4())
        key = job_param(body.task_type, job_id)
        params = {
            "input_body_s3": self.store.uri(key),
            "sagemaker_inference_endpoint_id": endpoint.id,
            "sagemaker_inference_instance_type": endpoint.instance_type,
            "sagemaker_inference_endpoint_name": endpoint.endpoint_name,
            "used_models": used,
        }
        return self.jobs_repo.add(
            InferenceJob(
                id=job_id,
                task_type=body.task_type,
                inference_type=body.inference_type,
                status="created",
                owner_group_or_role=[requester.username],
                create_time=str(datetime.now()),
                created=time.time(),
                payload_string=body.payload_string,
                params=params,
                endpoint_id=endpoint.id,
                queued=False,
                attempts=0,
            )
        )

    # --- start ------------------------------------------------------------------------------
    def start(self, job_id: str, access: Access) -> JobOutcome:
        """Queue the job on its endpoint once committed; real-time waits for the result (§8.4)."""
        job = access.changeable(self.jobs_repo.get_for_update(job_id), BadRequest(f"InferenceJobId {job_id} not found"))
        if job.status == "cancelled":  # a cancel is the user's decision: ESD's restart-anything stops here
            raise BadRequest(f"InferenceJobId {job_id} was {job.sagemaker_raw}: create a new job to run it again")
        endpoint = self.endpoints.get(job.endpoint_id or "")
        if endpoint is None:
            raise BadRequest(
                f"sagemaker endpoint with name {job.params.get('sagemaker_inference_endpoint_name')} is not found"
            )
        job.start_time = str(datetime.now())
        job.status = "created" if job.inference_type == "Real-time" else "inprogress"
        job.queued, job.attempts, job.progress = (
            True,
            0,
            {"phase": "queued", "step": 0, "total_steps": None, "eta_seconds": None},
        )
        job.complete_time = job.image_names = job.inference_info_name = job.sagemaker_raw = None
        job.cancelled_by = None  # a cancel that lost its race with the job's end does not stop the rerun
        if job.inference_type != "Real-time":
            job.params = {**job.params, "output_path": self.store.uri(async_output(str(uuid.uuid4())))}
        job.lease_owner, job.lease_expires = self.replica, time.time() + self.settings.job_lease_s
        self._seal_payload(job)
        self.session.flush()  # the queue position counts this job's row as written
        publish_job_event(job, "queued", self._queue_place(job))
        spec = job_spec(job)
        # The row (and its lease) is the truth: the engine sees only committed jobs.
        after_commit(self.session, self.engine.submit, spec)
        if job.inference_type == "Real-time":
            return JobOutcome(Stage.RUNNING, {"inference_id": job.id})
        data = {
            "inference_id": job.id,
            "status": "inprogress",
            "endpoint_name": endpoint.endpoint_name,
            "output_path": job.params["output_path"],
        }
        return JobOutcome(Stage.QUEUED, {"inference": data})

    def _seal_payload(self, job: InferenceJob) -> None:
        """Move the uploaded payload where no signed URL reaches: a write after the start changes nothing."""
        uploaded = job_param(job.task_type, job.id)
        if job.payload_string is None and self.store.stat(uploaded) is not None:
            self.store.move(uploaded, started_job_param(job.task_type, job.id))

    def wait(self, job_id: str) -> JobOutcome:
        """A started real-time job's end, once its row is committed (`run_to_end`)."""
        if not self.waiter.wait(job_id, self.settings.realtime_timeout_s):
            raise GatewayTimeout()
        self.session.expire_all()
        job = self.jobs_repo.get(job_id)
        if job is None:
            raise BadRequest(f"InferenceJobId {job_id} was deleted while it ran")
        if job.status in ("failed", "cancelled"):
            raise BadRequest(job.sagemaker_raw or f"the job {job.status}")
        return JobOutcome(Stage.FINISHED, self.view(job))

    # --- cancel -----------------------------------------------------------------------------
    def cancel(self, job_id: str, access: Access, requester: str) -> dict[str, object]:
        """A waiting job ends `cancelled` here; a queued or running one once its engine stops it (the row
        carries the request to whichever API replica's engine has it). The job's view either way."""
        missing = NotFound(f"inference with id {job_id} not found")  # exactly `GET /inferences/{id}`'s answer
        job = access.changeable(self.jobs_repo.get_for_update(job_id), missing)
        if job.status in TERMINAL:
            raise BadRequest(
                f"inference job {job_id} has already ended with status {job.status}: "
                "only a created, queued or running job can be cancelled"
            )
        job.cancelled_by = job.cancelled_by or requester  # a second cancel changes nothing
        if job.queued:
            after_commit(self.session, self.engine.cancel, job.id)
        else:  # created and never started (or a stray row no engine carries): nothing to stop
            mark_cancelled(job)
        self.session.flush()
        return self.view(job)

    # --- read / list / delete ---------------------------------------------------------------
    def get(self, job_id: str, access: Access) -> dict:
        return self.view(access.visible(self.jobs_repo.get(job_id), NotFound(f"inference with id {job_id} not found")))

    def list(
        self,
        task_type: str,
        username: str | None,
        limit: int,
        exclusive_start_key: str | None,
        access: Access,
        status: str | None = None,
    ) -> dict:
        """One page, filtered and cut in SQL: the jobs the requester may see (strict) and, with `username`,
        ESD's rule that the job's list shares a name with that user or the user's roles; with `status`
        (OpenESD's addition) only the jobs in that status."""
        if status is not None and status not in STATUSES:
            raise BadRequest(f"status {status} should be one of {', '.join(STATUSES)}")
        audiences = [names] if (names := access.sharing_names()) is not None else []
        if username is not None:
            user = self.users.get(username)
            if user is None:
                raise BadRequest(f'user: "{username}" not exist')
            audiences.append(frozenset({"*", username, *user.roles}))
        after = paging.start_after(limit, exclusive_start_key)
        jobs = self.jobs_repo.page(task_type, audiences, after, limit + 1, status)
        chosen, last = paging.cut(jobs, lambda j: {"t": j.created, "id": j.id}, limit)
        return {"inferences": [self.fields(j) for j in chosen], "last_evaluated_key": last}

    def delete(self, ids: list[str], access: Access) -> None:
        """Unknown (and hidden) ids are skipped, as ESD skips them; all are checked before anything goes."""
        for job in access.deletable(self.jobs_repo.get(job_id) for job_id in dict.fromkeys(ids)):
            self.store.delete(job_param(job.task_type, job.id))
            self.store.delete(started_job_param(job.task_type, job.id))
            self.store.delete_prefix(job_results(job.id))  # decisions.md: results go with the job
            self.jobs_repo.delete(job)
            self.webhooks.forget("inference", job.id)

    # --- views ------------------------------------------------------------------------------
    @staticmethod
    def fields(job: InferenceJob) -> dict:
        """Every §8.1 field, null when unknown (the list shape)."""
        return {
            "InferenceJobId": job.id,
            "taskType": job.task_type,
            "inference_type": job.inference_type,
            "status": job.status,
            "owner_group_or_role": list(job.owner_group_or_role),
            "createTime": job.create_time,
            "startTime": job.start_time,
            "completeTime": job.complete_time,
            "image_names": job.image_names,
            "inference_info_name": job.inference_info_name,
            "sagemakerRaw": job.sagemaker_raw,
            "payload_string": job.payload_string,
            # rows written before upload URLs left the record still carry one: never shown
            "params": {k: v for k, v in job.params.items() if k != "input_body_presign_url"},
        }

    def view(self, job: InferenceJob) -> dict:
        """`GET /inferences/{id}`: stored fields, signed result URLs, and progress while running."""
        ttl = self.settings.signed_url_ttl_s
        data = {k: v for k, v in self.fields(job).items() if v is not None}
        data["img_presigned_urls"] = [
            self.store.signed_url(job_result(job.id, n), "GET", ttl) for n in job.image_names or []
        ]
        data["output_presigned_urls"] = [self.store.signed_url(job_result_info(job.id), "GET", ttl)]
        if job.cancelled_by is not None:
            data["cancelled_by"] = job.cancelled_by
        if job.progress and (job.queued or job.status == "cancelled"):  # a cancelled job shows where it stopped
            data["progress"] = {k: job.progress.get(k) for k in ("phase", "step", "total_steps", "eta_seconds")}
            if job.queued and job.progress.get("phase") == "queued":
                data["progress"] |= self._queue_place(job)
            if job.queued and job.progress.get("preview_key"):  # the latest live preview, while it runs
                data["progress"]["preview_url"] = self.store.signed_url(job_preview(job.id), "GET", ttl)
                data["progress"]["preview_step"] = job.progress.get("preview_step")
        if (webhook := self.webhooks.view("inference", job.id)) is not None:
            data["webhook"] = webhook
        return data

    def _queue_place(self, job: InferenceJob) -> dict[str, int]:
        """Where a job waiting for a worker stands: 1 = next, and how many instances its endpoint runs."""
        endpoint = self.endpoints.get(job.endpoint_id or "")
        return {
            "queue_position": self.jobs_repo.waiting_before(job) + 1,
            "instances": endpoint.current_instance_count if endpoint is not None else 0,
        }
