"""Connectivity, job views and inference v2 (esd-legacy-api.md §4, §5): thin routes over `inferences.py`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from openesd.api.deps import SessionDep, SettingsDep, StoreDep
from openesd.auth.access import Access
from openesd.inferences.routes import READ_ONE, Inferences
from openesd.legacy.checkpoints import LegacyCheckpoints, get_legacy_checkpoints
from openesd.legacy.identity import RequestersDep, access_in_strict
from openesd.legacy.inferences import LegacyInferences, job_view
from openesd.legacy.responses import answer, fastapi_error, lambda_error
from openesd.legacy.schemas import InferenceApiBody, InferenceV2Body
from openesd.legacy.uploads import Uploads

router = APIRouter(tags=["legacy inference"])


def get_legacy_inferences(inferences: Inferences, store: StoreDep, requesters: RequestersDep) -> LegacyInferences:
    return LegacyInferences(inferences, store, requesters)


Jobs = Annotated[LegacyInferences, Depends(get_legacy_inferences)]
Checkpoints = Annotated[LegacyCheckpoints, Depends(get_legacy_checkpoints)]
# Routes ESD left without identity: in strict mode the 1.5.0 permission of the operation each maps to.
Lister = Annotated[Access, access_in_strict("inference:all", "inference:list")]
Reader = Annotated[Access, access_in_strict(*READ_ONE)]
Starter = Annotated[Access, access_in_strict("inference:all", refuse=lambda m: lambda_error("403", "error", m))]
ModelLister = Annotated[Access, access_in_strict("checkpoint:all", "checkpoint:list")]
MODEL_LISTS = {
    "texual-inversion": "embeddings",
    "lora": "Lora",
    "hypernetwork": "hypernetworks",
    "controlnet-model": "ControlNet",
}


@router.get("/inference/test-connection")
def test_connection():
    return answer({"message": "Success"})


@router.get("/inference/list-inference-jobs")
def list_inference_jobs(jobs: Jobs, access: Lister):
    return answer(jobs.jobs(access))


@router.get("/inference/get-inference-job")
def get_inference_job(jobs: Jobs, access: Reader, jobID: str | None = None):  # noqa: N803 (ESD's query name)
    if not jobID:
        raise fastapi_error("Inference job id must not be None or empty", 500)
    job = jobs.job(jobID, access)
    if job is None:
        raise fastapi_error(f"There is no inference job info item for id: {jobID}", 500)
    return answer(job_view(job))


@router.get("/inference/get-inference-job-image-output")
def get_inference_job_image_output(jobs: Jobs, access: Reader, jobID: str | None = None):  # noqa: N803
    job = jobs.job(jobID.strip() if jobID else None, access)
    return answer(job["img_presigned_urls"] if job else [])


@router.get("/inference/get-inference-job-param-output")
def get_inference_job_param_output(jobs: Jobs, access: Reader, jobID: str | None = None):  # noqa: N803
    job = jobs.job(jobID.strip() if jobID else None, access)
    return answer(job["output_presigned_urls"] if job else [])


@router.get("/inference/generate-s3-presigned-url-for-uploading")
def generate_presigned_url(
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    requesters: RequestersDep,
    key: str | None = None,
    s3_bucket_name: str | None = None,
):
    uploads = Uploads(session, store, settings)
    return answer(uploads.sign(key, s3_bucket_name, requesters.strict_requester()))


def _model_list_route(slug: str, kind: str) -> None:
    def names(checkpoints: Checkpoints, access: ModelLister):
        return answer(checkpoints.active_names(kind, access))

    router.add_api_route(f"/inference/get-{slug}-list", names, methods=["GET"], name=f"legacy_{slug}_list")


for _slug, _kind in MODEL_LISTS.items():
    _model_list_route(_slug, _kind)


@router.post("/inference/v2")
def inference_v2(body: InferenceV2Body, jobs: Jobs):
    return answer(jobs.prepare(body) if "filters" in body else jobs.one_call(body, deployed=False))


@router.post("/inference-api/inference")
def inference_api(body: InferenceApiBody, jobs: Jobs):
    return answer(jobs.one_call(body, deployed=True))


@router.put("/inference/v2/{inference_id}/run")
def run_inference(inference_id: str, jobs: Jobs, access: Starter):
    return answer(jobs.run(inference_id, access))
