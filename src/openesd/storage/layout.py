"""Where each object lives in the store: every key the services, legacy layer, engine and workers use.

The layout is ESD's own (esd-api.md §6, §7, §8.6), so a bucket written by ESD reads the same here."""

from __future__ import annotations

import re

# Keys a legacy client may ask to upload to (legacy/uploads.py): a job's payload, a checkpoint file, a dataset file.
JOB_PARAM = re.compile(r"(?P<task>[^/]+)/infer_v2/(?P<id>[^/]+)/api_param\.json")
CHECKPOINT_FILE = re.compile(r"(?P<type>[^/]+)/checkpoint/custom/(?P<id>[^/]+)/(?P<name>[^/]+)")
DATASET_FILE = re.compile(r"dataset/(?P<name>[^/]+)/.+")
WEBUI_CONFIG = "config/aigc.json"  # the old WebUI's settings file, uploaded by it; nothing on the server reads it


def checkpoint_folder(checkpoint_type: str, checkpoint_id: str) -> str:
    """The folder of one checkpoint's files (§6.1)."""
    return f"{checkpoint_type}/checkpoint/custom/{checkpoint_id}"


def checkpoint_file(checkpoint_type: str, checkpoint_id: str, name: str) -> str:
    """One file of a checkpoint."""
    return f"{checkpoint_folder(checkpoint_type, checkpoint_id)}/{name}"


def dataset_folder(name: str) -> str:
    """The folder of one dataset's files (§7)."""
    return f"dataset/{name}"


def dataset_upload_folder(name: str, prefix: str | None) -> str:
    """Where a dataset's files are uploaded: its folder, or the sub-folder `prefix` of it."""
    return "/".join(part for part in (dataset_folder(name), prefix) if part)


def training_folder(training_id: str) -> str:
    """The folder of one training's input and output."""
    return f"kohya/train/{training_id}"


def training_input(training_id: str) -> str:
    """What a training reads: its TOML config and, for a legacy training, its images."""
    return f"{training_folder(training_id)}/input"


def training_output(training_id: str) -> str:
    """What the trainer writes."""
    return f"{training_folder(training_id)}/output"


def legacy_training_concept(training_id: str, concept: str) -> str:
    """A legacy training's images of one concept, in kohya's `<repeats>_<concept>` folder."""
    return f"{training_input(training_id)}/dataset/1_{concept}"


def legacy_training_dataset(training_id: str) -> str:
    """The folder that holds a legacy training's concept folders."""
    return f"{training_input(training_id)}/dataset/"


def legacy_model_output(kind: str, name: str, model_id: str) -> str:
    """Where a legacy model says its output goes (`output_s3_location`)."""
    return f"{kind}/model/{name}/{model_id}/output"


def job_param(task_type: str, job_id: str) -> str:
    """Where a job's payload is uploaded (§8.2)."""
    return f"{task_type}/infer_v2/{job_id}/api_param.json"


def started_job_param(task_type: str, job_id: str) -> str:
    """Where a started job's payload is moved: no upload URL was ever signed for it, so what a job runs
    cannot change once it has started."""
    return f"{task_type}/infer_v2/{job_id}/started/api_param.json"


def job_results(job_id: str) -> str:
    """The prefix of everything a job wrote, deleted with the job."""
    return f"out/{job_id}/"


def job_result(job_id: str, name: str) -> str:
    """One result of a job (§8.6): an image or the job's `<id>_param.json`."""
    return f"out/{job_id}/result/{name}"


def job_result_info(job_id: str) -> str:
    """The job's generation info, next to its images."""
    return job_result(job_id, f"{job_id}_param.json")


def job_preview(job_id: str) -> str:
    """A running job's latest live preview (a JPEG, overwritten at each one), under its results' prefix."""
    return f"out/{job_id}/preview/latest.jpg"


def async_output(name: str) -> str:
    """The `output_path` an asynchronous SageMaker endpoint would write to."""
    return f"sagemaker_output/{name}.out"
