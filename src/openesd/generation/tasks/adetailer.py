"""ADetailer's inpaint passes (the extension's postprocess_image): for each generated image and each running
tab, detect, build the masks, then one "only masked" inpaint per mask through the img2img task itself, with
the job's loaded model; each pass starts from the previous one's image and the last replaces the original."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image, ImageChops

from openesd.errors import UnsupportedFeature
from openesd.generation import job as jobs
from openesd.generation.adetailer.args import (
    SAME_SAMPLER,
    SAME_SCHEDULER,
    DetailerOptions,
    DetailerTab,
    infotext_params,
    ordinal,
)
from openesd.generation.adetailer.detect import YoloDetector, find_model
from openesd.generation.adetailer.masks import build_masks
from openesd.generation.job import PreparedModel, Progress
from openesd.generation.payload.scripts import ScriptOptions
from openesd.generation.payload.settings import GenerationSettings, InpaintSettings
from openesd.generation.tasks.seeds import batches
from openesd.generation.types import GenerationResult

_SEP = re.compile(r"\s*\[SEP\]\s*")
_SKIP = re.compile(r"^\s*\[SKIP\]\s*$")


@dataclass
class Detailer:
    """One job's ADetailer: its tabs and their loaded detectors, the job it details, the LoRAs active on the
    model, and what it found."""

    options: DetailerOptions
    detectors: dict[int, YoloDetector]
    model: PreparedModel
    settings: GenerationSettings
    ctx: Any  # txt2img.JobContext
    loras: list[tuple[Any, float]]
    notes: list[str] = field(default_factory=list)


def prepare(scripts: ScriptOptions, model: PreparedModel, settings: GenerationSettings, ctx: Any) -> Detailer | None:
    """Load every running tab's detector before any step runs: a missing model fails the job first."""
    options = scripts.adetailer
    if options is None:
        return None
    if options.skip_img2img and settings.inpaint is not None:
        raise UnsupportedFeature(
            "ADetailer's skip_img2img (its second argument) is not supported with img2img inpainting: the extension "
            "switches itself off there; send false, or no mask"
        )
    detectors = {n: YoloDetector(find_model(ctx.models, tab["ad_model"])) for n, tab in options.active}
    loras = jobs.resolve_loras(settings.prompt, ctx.models)[1]
    return Detailer(options, detectors, model, settings, ctx, loras)


def run(detailer: Detailer | None, images: list[Any], info: Any, seed: int, subseed: int) -> list[Any]:
    """Every image after the tabs' passes; the extension's entries go into the infotext whatever is found."""
    if detailer is None:
        return images
    job_batches = batches(detailer.settings, seed, subseed)
    all_seeds = [s for b in job_batches for s in b.seeds]
    all_subseeds = [s for b in job_batches for s in b.subseeds]
    info.extra = {**infotext_params(detailer.options), **info.extra}  # added in `process`, before the rest
    out = []
    for i, image in enumerate(images):
        for n, tab in detailer.options.active:
            image = _detail_tab(detailer, image, i, n, tab, all_seeds[i], all_subseeds[i])
        out.append(image)
    return out


def annotate(detailer: Detailer | None, result: GenerationResult) -> GenerationResult:
    """OpenESD's own `info` entry "adetailer": the extension's console notes (nothing detected, ...)."""
    if detailer is not None and result.info is not None:
        data = json.loads(result.info)
        data["adetailer"] = detailer.notes
        result.info = json.dumps(data)
    return result


def _detail_tab(
    detailer: Detailer, image: Image.Image, i: int, n: int, tab: DetailerTab, seed: int, subseed: int
) -> Image.Image:
    settings = detailer.settings
    # 1. Detect and build this tab's masks.
    found = detailer.detectors[n].detect(image, tab["ad_confidence"])
    if not found:
        detailer.notes.append(f"nothing detected on image {i + 1} with {ordinal(n + 1)} settings.")
        return image
    masks = _inside_job_mask(build_masks(found, tab, image.size, detailer.options.sort_by), settings)
    detailer.notes.append(f"{len(masks)} masks on image {i + 1} with {ordinal(n + 1)} settings.")

    # 2. One inpaint per mask, each from the previous pass's image.
    prompts = ad_prompts(tab["ad_prompt"], settings.prompt)
    negatives = ad_prompts(tab["ad_negative_prompt"], settings.negative_prompt)
    for j, mask in enumerate(masks):
        prompt, negative = prompts[min(j, len(prompts) - 1)], negatives[min(j, len(negatives) - 1)]
        if _SKIP.match(prompt):
            continue
        step = 0 if detailer.options.same_seed else j
        pass_settings = _pass_settings(settings, tab, image, mask, prompt, negative, seed + step, subseed + step)
        _use_loras(detailer, prompt)
        image = _inpaint(detailer, pass_settings)
    return image


def ad_prompts(ad_prompt: str, main: str) -> list[str]:
    """`[SEP]` gives one prompt per mask (the last repeats); a blank part is the main prompt, `[PROMPT]` inserts it."""
    parts = _SEP.split(ad_prompt)
    return [main if not part else part.replace("[PROMPT]", main) for part in parts]  # no spaces since 24.4.1


def _pass_settings(
    settings: GenerationSettings,
    tab: DetailerTab,
    image: Image.Image,
    mask: Image.Image,
    prompt: str,
    negative: str,
    seed: int,
    subseed: int,
) -> GenerationSettings:
    """The extension's get_i2i_p: an only-masked inpaint of `image` at the job's size (or the tab's own)."""
    sampler, scheduler = settings.sampler_name, settings.scheduler
    if tab["ad_use_sampler"]:
        sampler = sampler if tab["ad_sampler"] == SAME_SAMPLER else tab["ad_sampler"]
        scheduler = scheduler if tab["ad_scheduler"] == SAME_SCHEDULER else tab["ad_scheduler"]
    override = dict(settings.override_settings)
    if tab["ad_use_clip_skip"]:
        override["CLIP_stop_at_last_layers"] = tab["ad_clip_skip"]
    sized = tab["ad_use_inpaint_width_height"]
    return replace(
        settings,
        prompt=prompt,
        negative_prompt=negative,
        seed=seed,
        subseed=subseed,
        sampler_name=sampler,
        scheduler=scheduler,
        batch_size=1,
        n_iter=1,
        steps=tab["ad_steps"] if tab["ad_use_steps"] else settings.steps,
        cfg_scale=tab["ad_cfg_scale"] if tab["ad_use_cfg_scale"] else settings.cfg_scale,
        width=tab["ad_inpaint_width"] if sized else settings.width,
        height=tab["ad_inpaint_height"] if sized else settings.height,
        override_settings=override,
        refiner_checkpoint=None,
        refiner_switch_at=None,
        alwayson_scripts={},
        hires=None,
        init_images=[_b64png(image.convert("RGB"))],
        resize_mode=0,
        denoising_strength=tab["ad_denoising_strength"],
        inpaint=InpaintSettings(
            mask=_b64png(mask),
            blur_x=tab["ad_mask_blur"],
            blur_y=tab["ad_mask_blur"],
            fill=1,  # original
            full_res=tab["ad_inpaint_only_masked"],
            full_res_padding=tab["ad_inpaint_only_masked_padding"],
            invert=False,
        ),
        include_init_images=False,
    )


def _use_loras(detailer: Detailer, prompt: str) -> None:
    """The WebUI activates the LoRAs each pass's prompt names: an ad_prompt without the main prompt's tags
    runs without them."""
    loras = jobs.resolve_loras(prompt, detailer.ctx.models)[1]
    if loras != detailer.loras:
        jobs.apply_loras(detailer.model.pipe, loras)
        detailer.loras = loras


class _PassProgress(Progress):
    """An inpaint pass's progress counted into the job's: its planned calls are added to the job's total."""

    def __init__(self, job: Progress):
        super().__init__(job.total, job.callback, job.done)
        self.job = job

    def plan(self, total: int) -> None:
        self.job.total += total

    def hook(self) -> Any:
        return self.job.hook()


def _inpaint(detailer: Detailer, pass_settings: GenerationSettings) -> Image.Image:
    ctx = detailer.ctx
    if ctx.run_img2img is None:
        raise RuntimeError("ADetailer's passes need the img2img task in the job context")
    inner = replace(ctx, progress=_PassProgress(ctx.progress), extra_params={})
    result = ctx.run_img2img(detailer.model, pass_settings, ScriptOptions(), inner)
    out = Image.open(io.BytesIO(result.images[0]))
    return out.convert("RGB")


def _inside_job_mask(masks: list[Image.Image], settings: GenerationSettings) -> list[Image.Image]:
    """img2img inpainting of the whole picture: only masks that touch the job's own mask, as the extension."""
    inpaint = settings.inpaint
    if inpaint is None or inpaint.full_res or not masks:
        return masks
    import numpy as np

    from openesd.generation.images import decode_image
    from openesd.generation.images import resize_image

    job = decode_image(inpaint.mask).convert("L")
    if inpaint.invert:
        job = ImageChops.invert(job)
    job = job.point(lambda v: 255 if v > 127 else 0).convert("RGB")
    job = resize_image(settings.resize_mode, job, settings.width, settings.height).convert("L")
    job = job.resize(masks[0].size, Image.Resampling.LANCZOS) if job.size != masks[0].size else job
    area = np.asarray(job) > 0
    return [m for m in masks if (area & (np.asarray(m) > 0)).any()]


def _b64png(image: Image.Image) -> str:
    import base64

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()
