"""Run a WebUI sampler inside a diffusers pipeline: the pipeline keeps its plumbing (VAE, ControlNet,
SDXL's added conditioning, inpainting channels), the WebUI's sampling replaces its scheduler and CFG.

Two objects take the places a pipeline gives them:
- `SamplerScheduler` stands where the pipeline expects a scheduler. The pipeline calls
  `scale_model_input`, the UNet, then `step`; here the sampler coroutine (`samplers.py`) decides
  every point the model is evaluated at, so the latents the pipeline carries between calls are
  the sampler's next evaluation point, and its list of timesteps is one per model call, known
  in advance by a dry run of the coroutine.
- `ConditionedUNet` stands where the pipeline expects the UNet. It is the WebUI's CFG denoiser:
  the conditioning of each call comes from the prompt schedule at the WebUI's step counter (one
  per model call, from 0), composable `AND` parts are evaluated with their weights, cond and
  uncond of different lengths are evaluated apart (the WebUI pads neither), and it hands the
  pipeline an uncond/cond pair whose guidance `uncond + scale * (cond - uncond)` is the WebUI's.

The UNet sees the WebUI's inputs: `x * c_in(sigma)` and the fractional timestep of `sigma` (log-sigma
interpolation); the denoised prediction given back to the sampler is `x - sigma * eps` (eps models)
or `c_skip * x + c_out * v` (v-prediction), as k-diffusion's CompVis denoisers compute them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from openesd.errors import PayloadError
from openesd.generation.payload.settings import SamplerOptions
from openesd.generation.sampling.conditioning import Cond, Conditioning, pad_with_empty
from openesd.generation.sampling import samplers
from openesd.generation.sampling.schedules import ModelSigmas, SigmaPlan, sigma_plan

SamplerRun = Generator[tuple[Any, float], Any, Any]
NoiseSampler = Callable[[float, float], Any]
# Jobs run together (generation/batching.py) hand their UNet calls to this gate, which merges them:
# `gate(unet, x, t, kwargs) -> output`. Unset (a job alone), the UNet is called directly.
UNET_GATE: ContextVar[Callable[[Any, Any, Any, dict[str, Any]], Any] | None] = ContextVar("unet_gate", default=None)


# ---- the sampling plan of one pass -----------------------------------------------------------------


@dataclass
class PassPlan:
    """One sampling pass: the sampler, the sigmas it runs (txt2img: all; img2img: the WebUI's part) and options."""

    spec: Any  # samplers.SamplerSpec
    plan: SigmaPlan
    full_sigmas: list[float]  # img2img: the whole list its part comes from (the SDE noise spans it)
    options: SamplerOptions
    model_sigmas: ModelSigmas  # the denoiser's view of the model (LCM: its 50 quantized timesteps)
    prediction_type: str
    steps: int  # the step count the prompt schedule is built for (WebUI: total_steps = steps * 2 if second order)
    denoising_strength: float | None = None  # img2img passes
    evaluation_sigmas: list[float] = field(default_factory=list)

    @property
    def sigmas(self) -> list[float]:
        return self.plan.sigmas

    @property
    def evaluations(self) -> int:
        return len(self.evaluation_sigmas)

    def start(self, x: Any, noise: NoiseSampler) -> SamplerRun:
        return samplers.start(self.spec, x, self.plan.sigmas, noise, self.options, self.plan.extra)

    def starting_latent(self, noise: Any, init_latent: Any = None) -> Any:
        return samplers.starting_latent(self.spec, self.plan, noise, self.options, init_latent)

    def t(self, sigma: float) -> float:
        """The UNet's timestep for a sigma: fractional (log-sigma interpolation), or LCM's quantized one."""
        return float(self.model_sigmas.sigma_to_t(sigma))


def plan_pass(
    scheduler_config: dict[str, Any],
    sampler_name: str,
    scheduler_name: str | None,
    steps: int,
    options: SamplerOptions,
    *,
    family: str,
    denoising_strength: float | None = None,
    exact_steps: bool = False,
) -> PassPlan:
    """The sigmas the WebUI samples for this pass.

    txt2img: the scheduler's list for `steps`. img2img (`denoising_strength` given): the WebUI's
    `setup_img2img_steps`: by default `t_enc = int(min(strength, 0.999) * steps)` and the sampler runs
    the last `t_enc + 1` steps of the `steps`-step list; with `exact_steps` (the hires pass) the list is
    made for `int(steps / strength)` steps and exactly `steps` of them run.
    """
    spec, label = samplers.resolve(sampler_name, scheduler_name)
    model_sigmas = ModelSigmas.from_config(scheduler_config)
    is_sdxl = family in ("sdxl", "sdxl_refiner")
    total, t_enc = steps, None
    if denoising_strength is not None:
        if denoising_strength <= 0:
            raise PayloadError("denoising_strength must be above 0 for a pass that samples, got 0")
        if exact_steps:
            total, t_enc = int(steps / min(denoising_strength, 0.999)), steps - 1
        else:
            t_enc = int(min(denoising_strength, 0.999) * steps)
        if spec.timesteps and t_enc < 1:
            raise PayloadError(
                f"denoising_strength {denoising_strength} leaves no step for {spec.name} at {steps} steps "
                "(the WebUI's DDIM, PLMS and UniPC need at least one); raise it or the steps"
            )
    full = sigma_plan(label, spec, total, model_sigmas, options, is_sdxl=is_sdxl)
    plan = (
        full if t_enc is None else sigma_plan(label, spec, total, model_sigmas, options, is_sdxl=is_sdxl, t_enc=t_enc)
    )
    result = PassPlan(
        spec=spec,
        plan=plan,
        full_sigmas=list(full.sigmas),
        options=options,
        model_sigmas=model_sigmas.lcm() if spec.lcm else model_sigmas,
        prediction_type=str(scheduler_config.get("prediction_type", "epsilon")),
        steps=steps * (2 if spec.second_order else 1),
        denoising_strength=denoising_strength,
    )
    result.evaluation_sigmas = _dry_run(result)
    return result


def _dry_run(plan: PassPlan) -> list[float]:
    """Every sigma the sampler will evaluate the model at, from a run on a one-element latent."""
    import torch

    x = torch.zeros(1, 1, 1, 1, dtype=torch.float64)
    run = plan.start(x, lambda sigma, sigma_next: torch.zeros_like(x))
    seen: list[float] = []
    try:
        point, sigma = next(run)
        while True:
            seen.append(float(sigma))
            point, sigma = run.send(torch.zeros_like(point))
    except StopIteration:
        return seen


# ---- the sampler in the scheduler's place ---------------------------------------------------------------


class _Output(tuple):  # diffusers reads `.prev_sample` when return_dict is true
    @property
    def prev_sample(self) -> Any:
        return self[0]


class SamplerScheduler:
    """A diffusers-scheduler stand-in driving one sampler coroutine per pipeline call (see the module doc)."""

    order = 1

    def __init__(self, plan: PassPlan, base_config: dict[str, Any]):
        from diffusers.configuration_utils import FrozenDict

        self.plan = plan
        config = {k: v for k, v in base_config.items() if not k.startswith("_")}
        self.config = FrozenDict({**config, "steps_offset": 1, "clip_sample": False})
        # The pipeline is given the sampler's starting latent itself (PassPlan.starting_latent).
        self.init_noise_sigma = 1.0
        self.model_dtype: Any = None
        self.timesteps: Any = None
        self.batch_size = 1
        self.initial_noise: Any = None
        self.noise_factory: Callable[[Any], NoiseSampler] | None = None
        self.step_index = 0
        self.sigma = plan.sigmas[0]
        self._run: SamplerRun | None = None
        self._padding = 0
        self.init_latent: Any = None
        self.latent_mask: Any = None  # inpainting with a 4-channel model: 1 where the image is regenerated
        self._x: Any = None
        self.on_step: Callable[[int], None] | None = None
        self.denoised: Any = None  # the last call's prediction (x0): the job's live previews read it
        # Per-pass corrections of the prediction, (x, denoised) -> denoised: ControlNet's inpaint_only
        # keeps the unmasked area.
        self.denoised_hooks: list[Callable[[Any, Any], Any]] = []

    # diffusers' pipeline protocol

    def set_timesteps(self, num_inference_steps: int | None = None, device: Any = None, **_: Any) -> None:
        """One timestep per model call. An img2img pipeline then drops the first `n - int(n * strength)`
        entries (its own idea of img2img); they are padding here, as the sampler's sigmas are already
        the WebUI's img2img slice."""
        import torch

        ts = [self.plan.t(s) for s in self.plan.evaluation_sigmas]
        self._padding = 0
        strength = self.plan.denoising_strength
        if strength is not None and num_inference_steps:
            self._padding = num_inference_steps - min(int(num_inference_steps * strength), num_inference_steps)
        self.timesteps = torch.tensor(ts[:1] * self._padding + ts, dtype=torch.float32, device=device)

    def set_begin_index(self, begin_index: int = 0) -> None:
        if begin_index != self._padding:
            raise RuntimeError(f"the pipeline skips {begin_index} timesteps where the sampler planned {self._padding}")

    def add_noise(self, original: Any, noise: Any, timesteps: Any) -> Any:
        """img2img's start: the init latent + the WebUI's noise * the first sigma.

        Inpainting pipelines also call it after every step to blend the noised original into the
        unmasked area; the WebUI blends the prediction instead (`_denoised`), so here that blend is
        made a no-op by handing back the sampler's own latents.
        """
        import torch

        self.init_latent = original.float()
        if self._run is None and self.initial_noise is not None:
            noise = self.initial_noise.to(original.device, torch.float32)
            return self.plan.starting_latent(noise, init_latent=original.float())
        return self._x.to(original.dtype)

    def scale_model_input(self, sample: Any, timestep: Any = None) -> Any:
        if self._run is None:
            self._begin(sample[: self.batch_size])
        copies = sample.shape[0] // self.batch_size
        x_in = (self._x * (1.0 / math.sqrt(self.sigma**2 + 1.0))).to(self.model_dtype or sample.dtype)
        return x_in if copies == 1 else x_in.repeat(copies, *([1] * (x_in.ndim - 1)))

    def step(self, model_output: Any, timestep: Any, sample: Any, return_dict: bool = True, **_: Any) -> Any:
        denoised = self.denoised = self._denoised(model_output)
        if self.on_step is not None:
            self.on_step(self.step_index)
        assert self._run is not None
        try:
            self._x, self.sigma = self._run.send(denoised)
            self.step_index += 1
        except StopIteration as done:
            self._x = done.value
        # The pipeline carries the sampler's next point in the model's dtype (its VAE decodes the last
        # one); the sampler itself keeps float32.
        latents = self._x.to(self.model_dtype or sample.dtype)
        return _Output((latents,)) if return_dict else (latents,)

    # the sampler

    def _begin(self, x: Any) -> None:
        noise = self.noise_factory(x) if self.noise_factory is not None else None
        if noise is None:
            raise RuntimeError("the sampler's step noise was not set up")
        self._run = self.plan.start(x.float(), noise)
        self._x, self.sigma = next(self._run)
        self.step_index = 0

    def _denoised(self, output: Any) -> Any:
        sigma, x = self.sigma, self._x
        output = output.to(x.dtype)
        if self.plan.prediction_type == "v_prediction":
            c_skip = 1.0 / (sigma**2 + 1.0)
            c_out = -sigma / math.sqrt(sigma**2 + 1.0)
            denoised = x * c_skip + output * c_out
        elif self.plan.prediction_type == "sample":
            denoised = output
        else:
            denoised = x - output * sigma
        if self.plan.spec.lcm:
            # The WebUI's LCM denoiser: LCM's boundary condition at its quantized timestep (sigma_data 0.5).
            scaled = self.current_t * 10.0
            c_skip = 0.25 / (scaled**2 + 0.25)
            c_out = scaled / math.sqrt(scaled**2 + 0.25)
            denoised = denoised * c_out + x * c_skip
        if self.latent_mask is not None and self.init_latent is not None:
            # Inpainting with an ordinary model, as the WebUI's CFG denoiser: outside the mask the
            # prediction is the original.
            mask = self.latent_mask.to(denoised.device, denoised.dtype)
            denoised = self.init_latent.to(denoised.device) * (1.0 - mask) + denoised * mask
        for hook in self.denoised_hooks:
            denoised = hook(x, denoised)
        return denoised

    def reset(
        self,
        batch_size: int,
        initial_noise: Any,
        noise_factory: Callable[[Any], NoiseSampler],
        model_dtype: Any = None,
    ) -> None:
        """Ready for the next pipeline call (one per n_iter batch)."""
        self.batch_size = batch_size
        self.model_dtype = model_dtype
        self.init_latent = self.latent_mask = None
        self.initial_noise = initial_noise
        self.noise_factory = noise_factory
        self._run, self._x, self.step_index, self.sigma = None, None, 0, self.plan.sigmas[0]
        self.denoised = None

    @property
    def current_t(self) -> float:
        return self.plan.t(self.sigma)


# ---- the WebUI's CFG denoiser in the UNet's place ----------------------------------------------------


@dataclass
class ModelSwitch:
    """The WebUI's SDXL refiner: once the denoising is `at` done, the same sampler run goes on with
    another UNet, its own conditioning and its SDXL time ids (aesthetic scores for cond and uncond).

    "Done" is the WebUI's measure: `(999 - t) / 1000` for the model timestep t nearest the sigma.
    """

    at: float
    unet: Any
    conditioning: Conditioning
    time_ids: tuple[Any, Any]  # (uncond, cond), each (1, n)
    model_sigmas: list[float]

    def reached(self, sigma: float) -> bool:
        nearest = min(range(len(self.model_sigmas)), key=lambda i: abs(self.model_sigmas[i] - sigma))
        return (999 - nearest) / 1000 >= self.at


class ConditionedUNet:
    """Wraps the pipeline's UNet (see the module doc); everything else about the UNet is the UNet's."""

    _own = ("_unet", "_scheduler", "_conditioning", "_cfg_scale", "_switch", "_switched", "_tiled", "_extras")

    def __init__(self, unet: Any, scheduler: SamplerScheduler, conditioning: Conditioning, cfg_scale: float) -> None:
        state = self.__dict__
        state.update(_unet=unet, _scheduler=scheduler, _conditioning=conditioning, _cfg_scale=float(cfg_scale))
        state.update(_switch=None, _switched=False, _tiled=None, _extras=[])

    @property
    def extras(self) -> list[Any]:
        """Adapters that add UNet inputs per call (IP-Adapter image embeds, T2I-Adapter residuals): each has
        `inputs(progress, which, batch) -> dict` with `which` 0 for the uncond half, 1 for the cond half, and
        may have `before_call(unet, x, t, kwargs, halves)` / `after_call()` around each UNet call and
        `correct(x, output, halves, batch) -> output` after it."""
        extras: list[Any] = self.__dict__["_extras"]
        return extras

    def use_extras(self, extras: list[Any]) -> None:
        self.__dict__["_extras"] = list(extras)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_unet"], name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._own:
            self.__dict__[name] = value
        else:
            setattr(self.__dict__["_unet"], name, value)

    def switch_at(self, switch: ModelSwitch | None) -> None:
        self._switch, self._switched = switch, False

    def tile_with(self, tiled: Any) -> None:
        """Tiled diffusion (sampling/tiled.py `TiledModel`): every UNet evaluation runs tile by tile."""
        self._tiled = tiled

    def restart(self) -> None:
        """A new sampler run (the next batch) starts on the first model."""
        self._switched = False

    def __call__(self, sample: Any, timestep: Any, encoder_hidden_states: Any = None, **kwargs: Any) -> Any:
        import torch

        scheduler: SamplerScheduler = self._scheduler
        batch = scheduler.batch_size
        pipeline_cfg = sample.shape[0] == 2 * batch
        unet, conditioning, time_ids = self._unet, self._conditioning, None
        switch: ModelSwitch | None = self._switch
        if switch is not None and (self._switched or switch.reached(scheduler.sigma)):
            self._switched = True
            unet, conditioning, time_ids = switch.unet, switch.conditioning, switch.time_ids
        step, options = scheduler.step_index, scheduler.plan.options
        uncond, parts = conditioning.at(step)
        empty = conditioning.empty
        if empty is not None and uncond.hidden.shape[1] != parts[0][1].hidden.shape[1]:  # pad_cond_uncond
            longest = max(uncond.hidden.shape[1], parts[0][1].hidden.shape[1])
            uncond = pad_with_empty(uncond, longest, empty)
            parts = [(weight, pad_with_empty(cond, longest, empty)) for weight, cond in parts]
        # The WebUI's CFG denoiser skips the negative prompt early on (skip_early_cond) or, below a sigma, on
        # every other call (NGMS, s_min_uncond); the first cond then stands in for it.
        total = max(scheduler.plan.steps, 1)
        skip_uncond = (options.skip_early_cond != 0 and step / total <= options.skip_early_cond) or (
            (step % 2 or options.s_min_uncond_all)
            and options.s_min_uncond > 0
            and scheduler.sigma < options.s_min_uncond
        )
        x_in = sample[:batch].to(unet.dtype)
        t = torch.full((batch,), scheduler.current_t, dtype=torch.float32, device=sample.device)
        added = kwargs.pop("added_cond_kwargs", None) or {}
        down = kwargs.pop("down_block_additional_residuals", None)
        mid = kwargs.pop("mid_block_additional_residual", None)
        extras = self.extras
        if time_ids is not None:  # the base model's ControlNet and adapters do not steer the refiner
            down = mid = None
            extras = []
        kwargs.pop("return_dict", None)
        cfg_scale: float = self._cfg_scale
        guided = cfg_scale != 1.0 or len(parts) > 1 or parts[0][0] != 1.0

        def half(value: Any, which: int) -> Any:  # which: 0 the pipeline's uncond half, 1 its cond half
            if value is None or not pipeline_cfg:
                return value
            return value[which * batch : (which + 1) * batch]

        def inputs(cond: Cond, which: int) -> dict[str, Any]:
            extra: dict[str, Any] = {
                "encoder_hidden_states": cond.hidden.to(sample.device, unet.dtype).expand(batch, -1, -1)
            }
            if added:
                overrides = {}
                if cond.pooled is not None:
                    overrides["text_embeds"] = cond.pooled.to(sample.device, unet.dtype).expand(batch, -1)
                if time_ids is not None:
                    overrides["time_ids"] = time_ids[which].to(sample.device).expand(batch, -1)
                extra["added_cond_kwargs"] = {**{k: half(v, which) for k, v in added.items()}, **overrides}
            if down is not None:
                extra["down_block_additional_residuals"] = [half(r, which) for r in down]
                extra["mid_block_additional_residual"] = half(mid, which)
            for adapter in extras:
                for key, value in adapter.inputs(step / total, which, batch).items():
                    if key == "added_cond_kwargs":
                        value = {**extra.get(key, {}), **value}
                    extra[key] = value
            return extra

        def predict(wanted: list[tuple[Cond, int]]) -> list[Any]:
            """One UNet call per hidden-state length (the WebUI's batch_cond_uncond), split back per cond."""
            out: list[Any] = [None] * len(wanted)
            lengths = sorted({cond.hidden.shape[1] for cond, _ in wanted})
            for length in lengths:
                members = [i for i, (cond, _) in enumerate(wanted) if cond.hidden.shape[1] == length]
                calls = [inputs(*wanted[i]) for i in members]
                merged = _concat(calls)
                n = len(members)
                x = x_in if n == 1 else x_in.repeat(n, *([1] * (x_in.ndim - 1)))
                times = t if n == 1 else t.repeat(n)
                # Adapters that run the UNet themselves first (reference_only's write pass) see this call's inputs.
                around = [a for a in extras if hasattr(a, "before_call")]
                for adapter in around:
                    adapter.before_call(unet, x, times, {**merged, **kwargs}, [wanted[i][1] for i in members])
                gate = UNET_GATE.get()
                if self._tiled is not None:
                    result = self._tiled(unet, x, times, {**merged, **kwargs})
                elif gate is not None:
                    result = gate(unet, x, times, {**merged, **kwargs})
                else:
                    result = unet(x, times, return_dict=False, **merged, **kwargs)[0]
                # Adapters that rewrite the output per half (ControlNet's tile_colorfix), as the extension's UNet hook.
                for adapter in (a for a in extras if hasattr(a, "correct")):
                    result = adapter.correct(x, result, [wanted[i][1] for i in members], batch)
                for adapter in around:
                    adapter.after_call()
                for k, i in enumerate(members):
                    out[i] = result[k * batch : (k + 1) * batch]
            return out

        wanted = [(cond, 1) for _, cond in parts]
        if guided and not skip_uncond:
            wanted.append((uncond, 0))
        predictions = predict(wanted)
        conds = predictions[: len(parts)]
        if not guided:
            eps = conds[0]
            return (torch.cat([eps, eps]) if pipeline_cfg else eps,)
        eps_uncond = conds[0] if skip_uncond else predictions[-1]
        combined = eps_uncond
        for (weight, _), eps in zip(parts, conds):
            combined = combined + (eps - eps_uncond) * weight
        if pipeline_cfg:
            return (torch.cat([eps_uncond, combined]),)
        return (eps_uncond + (combined - eps_uncond) * cfg_scale,)


def _concat(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The UNet keyword arguments of several evaluations as one batch (tensors, lists and dicts of them)."""
    import torch

    if len(calls) == 1:
        return calls[0]

    def join(values: list[Any]) -> Any:
        first = values[0]
        if first is None:
            return None
        if isinstance(first, dict):
            return {key: join([v[key] for v in values]) for key in first}
        if isinstance(first, (list, tuple)):
            return [join([v[i] for v in values]) for i in range(len(first))]
        return torch.cat(values)

    return {key: join([call[key] for call in calls]) for key in calls[0]}


def webui_uint8(images: Any) -> Any:
    """Decoded images in [0, 1] (N, H, W, C floats) -> uint8 as the WebUI converts them: truncated, not rounded."""
    import numpy as np

    return (255.0 * np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0)).astype(np.uint8)
