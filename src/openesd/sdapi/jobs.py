"""A WebUI call as an OpenESD job: the models it names resolved to the caller's files, created on an endpoint
the caller may use (an InService Real-time one, else an Async one), waited for, and answered with its images.
The job is an ordinary one: it shows in the caller's job list, its events stream, it can be cancelled."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any

from openesd.auth.principal import Principal
from openesd.errors import BadRequest, GatewayTimeout
from openesd.inferences.errors import NoEndpointAvailable
from openesd.inferences.schemas import CreateInference
from openesd.inferences.service import InferenceService, JobOutcome, Stage
from openesd.metadata.db import commit_now
from openesd.metadata.models import InferenceJob
from openesd.sdapi.catalog import Catalog
from openesd.sdapi.errors import JobFailed
from openesd.sdapi.options import WebUIOptionsService
from openesd.storage.layout import job_result, job_result_info

_LORA_TAG = re.compile(r"<lora:([^:>]+)(?::[^>]*)?>")
_WORD = re.compile(r"[\w.\-]+")
_PROMPTS = ("prompt", "negative_prompt", "hr_prompt", "hr_negative_prompt")
# Hires upscalers the worker runs without a model file.
_NO_FILE_UPSCALERS = ("None", "Lanczos", "Nearest")


@dataclass(frozen=True)
class FinishedJob:
    """A WebUI job's end: its images (PNG bytes) and its stored info (`info`, `html_info`)."""

    job_id: str
    status: str
    images: list[bytes]
    info: dict[str, Any]
    message: str | None = None


class WebUIJobs:
    def __init__(self, inferences: InferenceService, catalog: Catalog, options: WebUIOptionsService):
        self.inferences = inferences
        self.catalog = catalog
        self.options = options

    def generate(self, task: str, payload: dict[str, Any], caller: Principal) -> FinishedJob:
        """txt2img / img2img: 1. the settings (stored ones under the payload's), 2. the model files, 3. the job."""
        overrides = self.options.job_settings(caller.username) | (payload.get("override_settings") or {})
        wanted = overrides.get("sd_model_checkpoint")
        checkpoint = self.catalog.find("Stable-diffusion", wanted) if wanted else self.catalog.default_checkpoint()
        overrides["sd_model_checkpoint"] = checkpoint.name
        payload = {**payload, "override_settings": overrides}
        checkpoints = [checkpoint.name, *self._refiner(payload)]
        models = {"Stable-diffusion": list(dict.fromkeys(checkpoints)), **self._named_models(payload, overrides)}
        return self.run(task, payload, models, caller, self.options.preview_every(caller.username))

    def run(
        self, task: str, payload: dict[str, Any], models: dict[str, list[str]], caller: Principal, previews: int = 0
    ) -> FinishedJob:
        """Create the job on the endpoint the caller may use and wait for its end (504 past the real-time limit)."""
        outcome = self._create(task, payload, models, caller, previews)
        return self._wait(outcome)

    def _named_models(self, payload: dict[str, Any], overrides: dict[str, Any]) -> dict[str, list[str]]:
        """The VAE, LoRAs (`<lora:name:w>` tags), embeddings (words of the prompts) and hires upscaler files a
        payload names, as the caller's file names; a named LoRA or VAE the caller lacks is a 400."""
        prompts = " ".join(str(payload.get(key) or "") for key in _PROMPTS)
        models: dict[str, list[str]] = {}
        vae = overrides.get("sd_vae")
        if vae and vae not in ("Automatic", "None"):
            models["VAE"] = [self.catalog.find("VAE", str(vae)).name]
        for kind, name in self._additional_modules(overrides):
            models.setdefault(kind, [])
            models[kind] = list(dict.fromkeys([*models[kind], name]))
        loras = dict.fromkeys(self.catalog.find("Lora", tag).name for tag in _LORA_TAG.findall(prompts))
        words = set(_WORD.findall(prompts))
        embeddings = [f.name for f in self.catalog.files("embeddings") if f.stem in words]
        upscaler = payload.get("hr_upscaler")
        hires = bool(payload.get("enable_hr")) and upscaler not in _NO_FILE_UPSCALERS
        with_file = hires and not str(upscaler).startswith("Latent")
        upscalers = [f.name for f in self.catalog.files("ESRGAN")] if with_file else []
        controlnets = self._controlnets(payload)
        for kind, names in (("Lora", list(loras)), ("embeddings", embeddings), ("ESRGAN", upscalers)) + controlnets:
            if names:
                models[kind] = names
        return models

    def _additional_modules(self, overrides: dict[str, Any]) -> list[tuple[str, str]]:
        """Forge's `forge_additional_modules` (FLUX.1/SD 3 text encoders and VAE, by path or file name) as
        (type, file name): a `text_encoder` file of that name, else a VAE one; 400 when the caller has neither."""
        wanted = overrides.get("forge_additional_modules") or []
        found = []
        for entry in [wanted] if isinstance(wanted, str) else wanted:
            name = re.split(r"[\\/]", str(entry).strip())[-1]
            if not name:
                continue
            for kind in ("text_encoder", "VAE"):
                match = [f for f in self.catalog.files(kind) if name in (f.name, f.stem)]
                if match:
                    found.append((kind, match[0].name))
                    break
            else:
                raise BadRequest(
                    f"forge_additional_modules names {entry!r}, which is neither a text_encoder nor a VAE file "
                    "you may use: upload it as one of those types"
                )
        return found

    def _refiner(self, payload: dict[str, Any]) -> list[str]:
        """The refiner script's checkpoint (`[enabled, checkpoint, switch_at]`), when it is enabled."""
        args = _script_args(payload, "refiner")
        if len(args) < 2 or not args[0] or not isinstance(args[1], str) or args[1] in ("", "None"):
            return []
        return [self.catalog.find("Stable-diffusion", args[1]).name]

    def _controlnets(self, payload: dict[str, Any]) -> tuple[tuple[str, list[str]], ...]:
        """The ControlNet model files the enabled units name (the WebUI's `name [hash]` titles)."""
        units = [u for u in _script_args(payload, "controlnet") if isinstance(u, dict) and u.get("enabled")]
        wanted = [u["model"] for u in units if isinstance(u.get("model"), str) and u["model"] not in ("", "None")]
        names = list(dict.fromkeys(self.catalog.find("ControlNet", model).name for model in wanted))
        return (("ControlNet", names),) if names else ()

    def _create(
        self, task: str, payload: dict[str, Any], models: dict[str, list[str]], caller: Principal, previews: int
    ) -> JobOutcome:
        def create(kind: str) -> JobOutcome:
            body = CreateInference(
                task_type=task, inference_type=kind, models=models, payload_string=text, preview_every=previews
            )
            return self.inferences.create(body, lambda: caller)

        text = json.dumps(payload)
        try:
            return create("Real-time")
        except NoEndpointAvailable:
            pass  # an Async endpoint queues the job; the call waits for it all the same
        try:
            return create("Async")
        except NoEndpointAvailable:
            raise NoEndpointAvailable(
                f'no InService Real-time or Async endpoint is open to user "{caller.username}"'
            ) from None

    def _wait(self, outcome: JobOutcome) -> FinishedJob:
        if outcome.stage is Stage.RUNNING:
            job_id = outcome.data["inference_id"]
        else:
            job_id = outcome.data["inference"]["inference_id"]
        commit_now(self.inferences.session)  # the engine sees committed jobs only (inferences/realtime.py)
        limit = self.inferences.settings.realtime_timeout_s
        if not self.inferences.waiter.wait(job_id, limit):
            raise GatewayTimeout(
                f"Endpoint request timed out after {limit:g} s: inference job {job_id} goes on "
                "(GET /inferences/{id} or openesd jobs show it)"
            )
        self.inferences.session.expire_all()
        job = self.inferences.jobs_repo.get(job_id)
        if job is None:
            raise JobFailed(f"inference job {job_id} was deleted while it ran")
        if job.status == "failed":
            raise JobFailed(job.sagemaker_raw or f"inference job {job_id} failed")
        return self._finished(job)

    def _finished(self, job: InferenceJob) -> FinishedJob:
        store = self.inferences.store
        images = [store.get_bytes(job_result(job.id, name)) for name in job.image_names or []]
        info: dict[str, Any] = {}
        if job.status == "succeed" and store.stat(job_result_info(job.id)) is not None:
            info = json.loads(store.get_bytes(job_result_info(job.id)))
        return FinishedJob(job.id, job.status, images, info, job.sagemaker_raw)


def _script_args(payload: dict[str, Any], name: str) -> list[Any]:
    """The `args` of one always-on script (its name matched without case, as the worker matches it)."""
    for key, entry in (payload.get("alwayson_scripts") or {}).items():
        if str(key).strip().lower() == name:
            args = entry.get("args") if isinstance(entry, dict) else entry
            return args if isinstance(args, list) else []
    return []


def encoded(images: list[bytes]) -> list[str]:
    return [base64.b64encode(image).decode() for image in images]
