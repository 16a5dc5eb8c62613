"""The worker's entry point: one `Generator` per process owns the device and the model cache and runs
WebUI-payload jobs (`txt2img`, `img2img`, extras, rembg) one at a time."""

from __future__ import annotations

import importlib.util
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from openesd.generation import job as jobs
from openesd.errors import PayloadError, UnsupportedFeature
from openesd.generation.models import device as devices
from openesd.generation.models import fastpath as fast
from openesd.generation.models._flow_detect import FLOW_FAMILIES
from openesd.generation.models.cache import ModelCache, default_budget
from openesd.generation.payload.scripts import ScriptOptions, apply_scripts
from openesd.generation.payload.settings import GenerationSettings, read_settings
from openesd.generation.previews import PreviewRequest
from openesd.generation.sampling import samplers
from openesd.generation.types import GenerationResult, ModelFiles

log = logging.getLogger("openesd.generation")
ProgressCallback = Callable[[int, int], None]
DIFFUSION_TASKS = ("txt2img", "img2img")
EXTRAS_TASKS = ("extra-single-image", "extra-batch-images")
TASKS = (*DIFFUSION_TASKS, *EXTRAS_TASKS, "rembg")
# The warm-up job of a preloaded checkpoint: the smallest image every family can make, one step.
WARM_UP = {"prompt": "", "steps": 1, "width": 64, "height": 64, "sampler_name": "Euler", "seed": 0}


@dataclass
class GenerationRequest:
    task: str
    payload: dict
    models: ModelFiles


# One job of `Generator.run_together`: the arguments of `Generator.run`.
JobRun = tuple[GenerationRequest, ProgressCallback | None, PreviewRequest | None]


class Generator:
    """Serves many jobs on one device; loaded checkpoints stay cached between them."""

    def __init__(self, device: str = "auto", cache_bytes: int | None = None, fastpath: fast.FastPath | None = None):
        self.fastpath = fastpath or fast.FastPath()
        fp = self.fastpath
        self.device = devices.resolve(device, fp.cuda_dtype, fp.cpu_dtype, fp.sdxl_vae_fp32)
        budget = cache_bytes if cache_bytes is not None else default_budget(self.device.device)
        self.cache = ModelCache(budget)
        self._upscalers: Any = None
        self._lock = threading.Lock()

    def preload(self, checkpoint: Path) -> None:
        """Load a checkpoint into the model cache and run one tiny txt2img on it, so that the first job finds
        the model loaded and the job path warm (lazy imports, the device's first kernels)."""
        with self._lock:
            self._load(Path(checkpoint))
        try:
            self.run(GenerationRequest("txt2img", dict(WARM_UP), {"Stable-diffusion": [Path(checkpoint)]}))
        except Exception:  # a model that cannot txt2img (a refiner, say) is still loaded: jobs use it as they can
            log.warning("warm-up txt2img on %s failed; its first job warms the job path", checkpoint, exc_info=True)

    @property
    def upscalers(self) -> Any:
        if self._upscalers is None:
            from openesd.generation.tasks.upscalers import Upscalers

            self._upscalers = Upscalers()
        return self._upscalers

    def run(
        self,
        request: GenerationRequest,
        progress: ProgressCallback | None = None,
        previews: PreviewRequest | None = None,
    ) -> GenerationResult:
        """Run one job; client mistakes raise GenerationError subclasses with exact messages. `previews`: live
        previews of txt2img/img2img sampling (a script's cells and the other tasks make none)."""
        with self._lock:
            return self._run(request, progress, previews)

    def run_together(self, runs: list[JobRun]) -> list[GenerationResult | BaseException]:
        """Run several jobs of one model as one UNet batch (generation/batching.py): each gets the images it
        would get alone, or the exception it would raise alone (a cancel or a failure ends that job only)."""
        from openesd.generation.batching import run_gathered

        with self._lock:
            return run_gathered([lambda run=run: self._run(*run) for run in runs])

    def _run(
        self, request: GenerationRequest, progress: ProgressCallback | None, previews: PreviewRequest | None
    ) -> GenerationResult:
        if not isinstance(request.payload, dict):
            raise PayloadError(f"payload must be a JSON object, got {type(request.payload).__name__}")
        models = {k: [Path(p) for p in v] for k, v in (request.models or {}).items() if isinstance(v, list)}
        if request.task in DIFFUSION_TASKS:
            return self._diffusion(request.task, request.payload, models, progress, previews)
        if request.task in EXTRAS_TASKS:
            from openesd.generation.tasks.extras import run_extras

            return run_extras(request.task, request.payload, models, self.upscalers)
        if request.task == "rembg":
            from openesd.generation.tasks.rembg import run_rembg

            return run_rembg(request.payload, models)
        raise UnsupportedFeature(f"task {request.task!r} is not supported; valid tasks: {', '.join(TASKS)}")

    # -- txt2img / img2img -------------------------------------------------------------------------

    def _diffusion(
        self,
        task: str,
        payload: dict,
        models: ModelFiles,
        progress: ProgressCallback | None,
        previews: PreviewRequest | None = None,
    ) -> GenerationResult:
        from openesd.generation import scripts as selectable
        from openesd.generation.tasks.img2img import run_img2img
        from openesd.generation.tasks.txt2img import JobContext, run_txt2img

        # A selectable script (X/Y/Z plot, ...) runs its cells through this same path, each as a lone job.
        if selectable.wanted(payload):
            result = selectable.run_script(self, task, payload, models, progress)
            result.parameters = _echo(payload, task)
            return result

        # 1. Validate the whole payload before loading anything.
        settings, scripts = self.check(task, payload, models)
        checkpoint = jobs.select_checkpoint(models, settings.override_settings.get("sd_model_checkpoint"))
        _, loras = jobs.resolve_loras(settings.prompt, models)

        # 2. Load (or reuse) the model and set this job's state on it.
        model = self._prepare(checkpoint, models, settings, scripts, loras)
        flow = model.family in FLOW_FAMILIES
        counter = jobs.Progress(1, progress)  # the task plans the real total (Progress.plan)
        if previews is not None and previews.every > 0:
            counter.previewer = self._previewer(previews, settings, model, models)
        ctx = JobContext(
            models=models,
            progress=counter,
            load_model=lambda name: self._named(name, models),
            upscalers=self.upscalers,
            device=model.pipe.device,
            dtype=(model.pipe.transformer if flow else model.pipe.unet).dtype,
            extra_params=self._extra_params(settings, loras),
            run_img2img=run_img2img,
        )

        # 3. Run, then answer as the WebUI does.
        if flow:
            from openesd.generation.tasks.flow import run_flow

            result = run_flow(task, model, settings, scripts, ctx)
        else:
            runner = run_txt2img if task == "txt2img" else run_img2img
            result = runner(model, settings, scripts, ctx)
        if progress is not None:
            progress(counter.total, counter.total)
        result.parameters = _echo(payload, task)
        return result

    def check(self, task: str, payload: dict, models: ModelFiles) -> tuple[GenerationSettings, ScriptOptions]:
        """Validate a txt2img/img2img payload against this job's files without loading any model."""
        settings = read_settings(payload, task)
        scripts = apply_scripts(settings)
        self._validate(settings, models)
        checkpoint = jobs.select_checkpoint(models, settings.override_settings.get("sd_model_checkpoint"))
        jobs.select_vae(models, settings.override_settings.get("sd_vae"), checkpoint)
        jobs.resolve_loras(settings.prompt, models)  # an unknown LoRA tag is refused before any load
        if settings.refiner_checkpoint and settings.refiner_checkpoint != "None":
            jobs.select_checkpoint(models, settings.refiner_checkpoint)
        return settings, scripts

    def run_cell(self, task: str, payload: dict, models: ModelFiles, progress: ProgressCallback) -> GenerationResult:
        """One cell of a script: a payload without script_name, run exactly as a lone job."""
        return self._diffusion(task, payload, models, progress)

    def _validate(self, settings: GenerationSettings, models: ModelFiles) -> None:
        samplers.resolve(settings.sampler_name, settings.scheduler)
        if settings.hires is not None:
            hr = settings.hires
            samplers.resolve(hr.sampler_name or settings.sampler_name, hr.scheduler or settings.scheduler)
            from openesd.generation.tasks.hires import LATENT_MODES, target_size

            target_size(settings, hr)
            if hr.upscaler not in LATENT_MODES:
                from openesd.generation.tasks.upscalers import resolve_upscaler

                resolve_upscaler(hr.upscaler, models)

    def _previewer(
        self, previews: PreviewRequest, settings: GenerationSettings, model: jobs.PreparedModel, models: ModelFiles
    ) -> Any:
        """The job's previewer: the WebUI's "Approx cheap" map, or the user's TAESD decoder (`show_progress_type`)."""
        from openesd.generation import previews as preview

        family, device = model.family, model.pipe.device
        kind = preview.preview_type(settings.override_settings)
        if family in FLOW_FAMILIES and kind != "TAESD":  # a map fitted to this VAE, once (FLUX.1 / SD 3.5)
            vae = model.vae_path or model.path
            fitted = self.cache.get("preview-map", vae, lambda: preview.fit_linear_preview(model.pipe.vae))
            return preview.Previewer(previews, lambda latent: preview.linear_preview(latent, fitted))
        if kind == "TAESD":
            path = preview.find_taesd([Path(p) for p in models.get("VAE", [])], family)
            decoder = self.cache.get("taesd", path, lambda: preview.load_taesd(path, device))
            return preview.Previewer(previews, lambda latent: preview.taesd_image(decoder, latent))
        return preview.Previewer(previews, lambda latent: preview.approx_cheap(latent, family))

    def _load(self, path: Path) -> Any:
        from openesd.generation.models.loading import load_checkpoint

        d = self.device

        def load() -> Any:
            loaded = load_checkpoint(path, d.device, d.dtype, d.vae_dtype_sdxl, self.fastpath)
            if loaded.family not in FLOW_FAMILIES:  # the fast path's settings are the UNet's
                fast.apply(loaded.pipe, self.fastpath)
            return loaded

        return self.cache.get("checkpoint", path, load)

    def _prepare(
        self, checkpoint: Path, models: ModelFiles, settings: GenerationSettings, scripts: ScriptOptions, loras: list
    ) -> jobs.PreparedModel:
        loaded = self._load(checkpoint)
        flow = loaded.family in FLOW_FAMILIES  # a transformer, no UNet: no QKV fusing, no circular padding
        if flow:
            vae_path = self._flow_parts(loaded, models, settings.override_settings)
        else:
            vae_path = jobs.select_vae(models, settings.override_settings.get("sd_vae"), checkpoint)
            loaded.pipe.vae = self._vae(vae_path, loaded.family) if vae_path else loaded.own_vae
        if loras or importlib.util.find_spec("openesd.generation.adapters.lora") is not None:
            if not flow:
                fast.before_loras(loaded.pipe, loras, self.fastpath)
            jobs.apply_loras(loaded.pipe, loras)  # [] switches off the previous job's LoRAs
        if not flow:
            jobs.set_tiling(loaded.pipe, settings.tiling)
        self._vae_tiling(loaded.pipe, settings, scripts)
        jobs.check_size(settings.width, settings.height, loaded.pipe.vae_scale_factor)
        return jobs.PreparedModel(
            pipe=loaded.pipe,
            family=loaded.family,
            inpainting=loaded.inpainting,
            path=checkpoint,
            vae_path=vae_path,
            embeddings=[Path(p) for p in models.get("embeddings", [])],
        )

    def _vae_tiling(self, pipe: Any, settings: GenerationSettings, scripts: ScriptOptions) -> None:
        """The Tiled VAE script when asked; else tiled and sliced above the fast path's pixel count (hires fix
        decodes at its target size, so that is the size that counts)."""
        width, height = settings.width, settings.height
        if settings.hires is not None:
            from openesd.generation.tasks.hires import target_size

            width, height = target_size(settings, settings.hires)
        if scripts.tiled_vae:
            fast.set_vae_tiling(pipe, False)
            jobs.set_vae_tiling(pipe, True)
        else:
            fast.set_vae_tiling(pipe, self.fastpath.wants_vae_tiling(width, height, settings.batch_size))

    def _flow_parts(self, loaded: Any, models: ModelFiles, overrides: dict) -> Path | None:
        """FLUX.1/SD 3: the job's text encoder and VAE files into the pipeline (cached like checkpoints)."""
        from openesd.generation.models.flow import load_text_encoder
        from openesd.generation.models.flow_parts import complete_pipeline
        from openesd.generation.quant import offload_text_encoders

        d, family, offload = self.device, loaded.family, self.fastpath.text_encoder_offload
        home = d.device if offload == "none" else "cpu"  # an offloaded encoder never lands on the GPU whole

        def text_encoder(path: Path, role: str) -> Any:
            load = lambda: load_text_encoder(path, role, family, home, d.dtype)  # noqa: E731
            return self.cache.get(f"text_encoder-{family}-{role}", path, load)

        vae = complete_pipeline(loaded, models, overrides, text_encoder, lambda path: self._vae(path, family))
        offload_text_encoders(loaded.pipe, offload, d.device)  # the swapped-in encoders get the setting too
        return vae

    def _vae(self, path: Path, family: str) -> Any:
        from openesd.generation.models.loading import load_vae

        d = self.device
        dtype = d.vae_dtype_sdxl if family.startswith("sdxl") else d.dtype
        if family in FLOW_FAMILIES:
            from openesd.generation.models.flow import flow_dtype

            dtype = flow_dtype(dtype)
        return self.cache.get(f"vae-{family}", path, lambda: load_vae(path, d.device, dtype, family))

    def _named(self, name: str, models: ModelFiles) -> jobs.PreparedModel:
        path = jobs.select_checkpoint(models, name)
        loaded = self._load(path)
        loaded.pipe.vae = loaded.own_vae
        return jobs.PreparedModel(
            pipe=loaded.pipe,
            family=loaded.family,
            inpainting=loaded.inpainting,
            path=path,
            vae_path=None,
            embeddings=[Path(p) for p in models.get("embeddings", [])],
        )

    @staticmethod
    def _extra_params(settings: GenerationSettings, loras: list) -> dict[str, Any]:
        from openesd.generation.tasks.hires import hires_params
        from openesd.generation.tasks.infotext import short_hash

        extra: dict[str, Any] = {}
        if loras:
            extra["Lora hashes"] = ", ".join(f"{p.stem}: {short_hash(p)}" for p, _ in loras)
        if settings.hires is not None:
            extra.update(hires_params(settings))
        return extra


def _echo(payload: dict, task: str) -> dict:
    """The WebUI's `parameters`: the request, without the (large) input images unless asked to keep them."""
    echo = dict(payload)
    if task == "img2img" and not payload.get("include_init_images"):
        echo["init_images"] = None
        echo["mask"] = None
    return echo
