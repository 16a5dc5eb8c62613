"""Inference v2 and the job views (esd-legacy-api.md §4.2–§4.5, §5) over the 1.5.0 inference service."""

from __future__ import annotations

import json
import uuid
from typing import Any

from openesd.auth.access import Access
from openesd.auth.principal import Principal
from openesd.endpoints.repository import EndpointRepository
from openesd.errors import BadRequest, Forbidden, GatewayTimeout, OpenESDError, Unauthorized
from openesd.inferences.errors import ModelsNotFound, NoEndpointAvailable
from openesd.inferences.schemas import DIFFUSION_TASKS, CreateInference
from openesd.inferences.realtime import run_to_end
from openesd.inferences.service import TASK_TYPES, InferenceService
from openesd.legacy.identity import Requesters
from openesd.legacy.payloads import one_call_payload
from openesd.legacy.responses import LegacyError, lambda_error
from openesd.storage.base import ObjectStore
from openesd.storage.layout import job_param

ONE_CALL_KEYS = ("task_type", "sagemaker_endpoint_name", "models")
PAGE = 1000


class PrepareFailed(Exception):
    """The prepare step refused: `status_code` and `message` as ESD's prepare handler reported them."""

    def __init__(self, status_code: int, message: Any):
        super().__init__(message)
        self.status_code = status_code
        self.message = message


class LegacyInferences:
    def __init__(self, inferences: InferenceService, store: ObjectStore, requesters: Requesters):
        self.inferences = inferences
        self.endpoints = EndpointRepository(inferences.session)
        self.store = store
        self.requesters = requesters

    # --- POST /inference/v2, form A ---------------------------------------------------------
    def prepare(self, body: dict) -> dict:
        try:
            data, _ = self._prepare(body)
        except PrepareFailed as failed:
            raise lambda_error(failed.status_code, "errMsg", failed.message) from None
        return {"statusCode": 200, "inference": data}

    def _prepare(self, body: dict) -> tuple[dict, Principal]:
        """The 1.5.0 create without a payload: the job waits for its payload upload and a run call. The job's
        view, and who it was created for."""
        task_type, models = body.get("task_type"), body.get("models")
        if task_type not in TASK_TYPES:
            raise PrepareFailed(
                400,
                f"task type {task_type} should be in "
                "['extra-single-image', 'extra-batch-images', 'rembg'] or ['txt2img', 'img2img']",
            )
        if not isinstance(models, dict):
            raise PrepareFailed(400, "models should be an object of checkpoint type -> file names")
        requester = self.requesters.resolve(body.get("user_id"))
        name = body.get("sagemaker_endpoint_name") or None
        if name is not None and not isinstance(name, str):
            raise PrepareFailed(400, "sagemaker_endpoint_name should be a string")
        kinds = [self._endpoint_type(name)] if name else ["Async", "Real-time"]
        for kind in kinds:
            event = CreateInference(
                task_type=task_type, inference_type=kind, models=models, sagemaker_endpoint_name=name
            )
            try:
                return self.inferences.create(event, lambda: requester).data["inference"], requester
            except OpenESDError as error:
                if not (error.code == NoEndpointAvailable.code and kind != kinds[-1]):
                    raise _prepare_failure(error, requester) from None
        raise AssertionError("unreachable: the last endpoint type re-raises")

    def _endpoint_type(self, name: str) -> str:
        endpoint = self.endpoints.by_name(name)
        if endpoint is None:
            raise PrepareFailed(500, f"sagemaker endpoint with name {name} is not found")
        return endpoint.endpoint_type

    # --- one call: POST /inference/v2 form B and POST /inference-api/inference ---------------
    def one_call(self, body: dict, deployed: bool) -> dict:
        """Prepare, store the merged payload, run. `deployed` picks the alias's shape over the seed's."""
        missing = [k for k in ONE_CALL_KEYS if not body.get(k)]
        if missing:
            raise _one_call_error(
                deployed, 400, "task_type, sagemaker_endpoint_name, models should be in the request body"
            )
        try:
            prepared, requester = self._prepare(body)
        except PrepareFailed as failed:
            message = failed.message if isinstance(failed.message, str) else " ".join(failed.message)
            raise _one_call_error(deployed, 500, message) from None
        job_id, access = prepared["id"], self.requesters.access(requester)
        self.store.put_bytes(job_param(body["task_type"], job_id), json.dumps(one_call_payload(body)).encode())
        try:
            inference = self.run(job_id, access)["inference"]
        except LegacyError as failed:
            raise _one_call_error(deployed, 500, failed.body["error"], inference_id=job_id) from None
        view = {**inference, **self._summary(job_id, access)}
        if deployed:
            return {"status": 200, "inference": view}
        return {
            "inference_id": job_id,
            "status": view["status"],
            "endpoint_name": view["endpoint_name"],
            "output_path": view["output_path"],
            "inference": view,
        }

    def _summary(self, job_id: str, access: Access) -> dict:
        job = self.inferences.get(job_id, access)
        params = job.get("params", {})
        models = [
            {"id": m["id"], "name": [m["model_name"]], "type": kind}
            for kind, entries in (params.get("used_models") or {}).items()
            for m in entries
        ]
        return {
            "inference_id": job_id,
            "status": legacy_status(job["status"]),
            "output_path": params.get("output_path"),
            "models": models if job["taskType"] in DIFFUSION_TASKS else [],
            "api_params_s3_location": params.get("input_body_s3"),
            "type": job["taskType"],
            "endpoint_name": params.get("sagemaker_inference_endpoint_name"),
        }

    # --- PUT /inference/v2/{id}/run ----------------------------------------------------------
    def run(self, job_id: str, access: Access) -> dict:
        """The 1.5.0 start (its permission stage is the route's, strict mode only); a real-time job answers
        with its final state. Someone else's job is refused with `statusCode` "403", a hidden one is absent."""
        try:
            data = run_to_end(self.inferences.start(job_id, access), self.inferences).data
        except GatewayTimeout:
            data = {}
        except OpenESDError as error:
            if not self._failed(job_id, access):
                raise lambda_error("403" if isinstance(error, Forbidden) else "500", "error", error.message) from None
            data = {}
        inference = data.get("inference")
        if inference is None:  # real-time: the job has finished (or timed out); show where it stands
            summary = self._summary(job_id, access)
            inference = {k: summary[k] for k in ("inference_id", "status", "endpoint_name")} | {"output_path": None}
        return {"statusCode": 200, "inference": inference}

    def _failed(self, job_id: str, access: Access) -> bool:
        try:
            return self.inferences.get(job_id, access)["status"] == "failed"
        except OpenESDError:
            return False

    # --- job views (§4.2–§4.5) ---------------------------------------------------------------
    def jobs(self, access: Access) -> list[dict]:
        found = []
        for task in TASK_TYPES:
            cursor = None
            while True:
                listed = self.inferences.list(task, None, PAGE, cursor, access)
                found += listed["inferences"]
                cursor = listed["last_evaluated_key"]
                if cursor is None:
                    break
        found.sort(key=lambda j: j["createTime"], reverse=True)
        return [job_view(j) for j in found]

    def job(self, job_id: str | None, access: Access) -> dict | None:
        """The job's 1.5.0 view; None when it is absent or hidden from the requester."""
        if not job_id:
            return None
        try:
            return self.inferences.get(job_id, access)
        except OpenESDError:
            return None


def job_view(fields: dict) -> dict:
    """§5.4: every stored field, nulls omitted, `startTime` always present. Legacy clients stop polling on
    `succeed` or `failed` only, so a `cancelled` job shows as `failed` (its `sagemakerRaw` says by whom)."""
    view = {
        k: v for k, v in fields.items() if v is not None and k not in ("img_presigned_urls", "output_presigned_urls")
    }
    view.setdefault("startTime", fields.get("createTime"))
    if "status" in view:
        view["status"] = legacy_status(view["status"])
    return view


def legacy_status(status: str) -> str:
    """The status a legacy client understands: it knows no `cancelled` and would poll such a job forever."""
    return "failed" if status == "cancelled" else status


def _prepare_failure(error: OpenESDError, requester: Principal) -> PrepareFailed:
    if isinstance(error, Unauthorized):
        return PrepareFailed(500, f'user: "{requester.username}" not exist')
    if isinstance(error, ModelsNotFound):
        return PrepareFailed(400, error.missing)
    if error.code == NoEndpointAvailable.code:
        return PrepareFailed(500, f'no available Endpoints for user "{requester.username}"')
    if isinstance(error, Forbidden | BadRequest):
        return PrepareFailed(400 if isinstance(error, Forbidden) else 500, error.message)
    return PrepareFailed(500, error.message)


def _one_call_error(deployed: bool, status: int, message: str, **extra: Any) -> LegacyError:
    if deployed:
        if status == 500:
            message = (
                f"fail to prepare inference for {extra.get('inference_id') or uuid.uuid4()}, "
                f"no s3 location is generated: {message}"
            )
        return LegacyError({"status": status, "err": message})
    return LegacyError({"status": "failed", "error": message, **extra})
