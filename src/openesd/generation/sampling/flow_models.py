"""The transformer of a FLUX.1 or SD 3.5 pipeline as the flow sampler calls it: prompts in, velocity out.

Each family's calls follow its diffusers pipeline (FluxPipeline, StableDiffusion3Pipeline): the same
text encoding, latent packing, timestep and guidance inputs, so that a job equals the plain pipeline
given the same sigmas and noise. CFG: SD 3.5 runs the negative prompt in the same batch (as diffusers);
FLUX runs it as a second call when cfg_scale > 1 (Forge's and diffusers' "true CFG").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# T5 tokens each family's reference pipeline gives the prompt (BFL: 512 for dev, 256 for schnell).
MAX_SEQUENCE = {"flux-dev": 512, "flux-schnell": 256, "sd3": 256}


def has_guidance(pipe: Any) -> bool:
    """FLUX.1-dev (and its fine-tunes) embed a distilled guidance scale; schnell and SD 3.5 do not."""
    return bool(getattr(pipe.transformer.config, "guidance_embeds", False))


def variant(family: str, pipe: Any) -> str:
    if family == "flux":
        return "flux-dev" if has_guidance(pipe) else "flux-schnell"
    return family


@dataclass
class FlowPrompts:
    """One job's encoded prompt and negative prompt (batch 1; repeated to the batch at call time)."""

    embeds: Any
    pooled: Any
    negative: Any = None
    negative_pooled: Any = None
    text_ids: Any = None  # FLUX only


def encode(
    family: str,
    pipe: Any,
    prompt: str,
    negative_prompt: str,
    with_negative: bool,
    clip_skip: int = 1,
    emphasis: str = "Original",
) -> FlowPrompts:
    """Both prompts encoded; WebUI weights `(word:1.2)` go to T5 as Forge's emphasis does (the CLIPs read the
    text without the weight syntax). A prompt without weights is exactly the pipeline's own encoding.

    `BREAK`: the CLIPs read the text before the first BREAK (the WebUI's first 75-token chunk, the one its
    pooled vector comes from); T5, which has no 75-token chunks, reads the whole text without the BREAKs."""
    runs, negative_runs = weighted(prompt, emphasis), weighted(negative_prompt, emphasis)
    texts = _split_break(runs), _split_break(negative_runs)
    found = _encode(family, pipe, texts[0], texts[1], with_negative, clip_skip, negative_prompt == "")
    length = MAX_SEQUENCE[variant(family, pipe)]
    normalize = emphasis != "No norm"
    runs, negative_runs = _without_break(runs), _without_break(negative_runs)
    if _has_weights(runs):
        found.embeds = _with_t5(found.embeds, _t5_weighted(family, pipe, runs, length, normalize))
    if found.negative is not None and _has_weights(negative_runs):
        found.negative = _with_t5(found.negative, _t5_weighted(family, pipe, negative_runs, length, normalize))
    return found


def weighted(text: str, emphasis: str) -> list[tuple[str, float]]:
    """The WebUI's attention runs per its emphasis mode: "None" reads the text as written, "Ignore" drops
    the weights but not the parsing (BREAK stays ("BREAK", -1)), "Original" / "No norm" keep both."""
    from openesd.generation.prompts._parser import parse_attention

    if emphasis == "None":
        return [(text, 1.0)]
    runs = parse_attention(text)
    return (
        [(part, weight if _is_break(part, weight) else 1.0) for part, weight in runs] if emphasis == "Ignore" else runs
    )


def _is_break(part: str, weight: float) -> bool:
    from openesd.generation.prompts._parser import BREAK

    return part == BREAK and weight == -1


def _without_break(runs: list[tuple[str, float]]) -> list[tuple[str, float]]:
    return [(part, weight) for part, weight in runs if not _is_break(part, weight)]


def _split_break(runs: list[tuple[str, float]]) -> tuple[str, str]:
    """(the CLIPs' text: up to the first BREAK, T5's text: the BREAK-separated parts joined by a space),
    weights dropped."""
    parts: list[list[tuple[str, float]]] = [[]]
    for part, weight in runs:
        if _is_break(part, weight):
            parts.append([])
        else:
            parts[-1].append((part, weight))
    texts = [_plain(part) for part in parts]
    return texts[0], " ".join(text for text in texts if text)


def _plain(runs: list[tuple[str, float]]) -> str:
    return "".join(part for part, _ in runs)


def _has_weights(runs: list[tuple[str, float]]) -> bool:
    return any(weight != 1.0 for _, weight in runs)


def _with_t5(embeds: Any, t5: Any) -> Any:
    """FLUX's embeds are T5's; SD 3 puts its CLIP states first and T5's last."""
    import torch

    return torch.cat([embeds[:, : embeds.shape[1] - t5.shape[1]], t5.to(embeds.dtype)], dim=1)


def _t5_weighted(family: str, pipe: Any, runs: list[tuple[str, float]], length: int, normalize: bool) -> Any:
    """T5 states of the weighted runs, the "Original" emphasis: each token's state times its weight, then
    the whole rescaled to the unweighted mean (A1111 / Forge; "No norm" skips the rescaling)."""
    import torch

    tokenizer, encoder = (
        (pipe.tokenizer_2, pipe.text_encoder_2) if family == "flux" else (pipe.tokenizer_3, pipe.text_encoder_3)
    )
    ids: list[int] = []
    weights: list[float] = []
    for part, weight in runs:
        tokens = tokenizer(part, add_special_tokens=False).input_ids
        ids += tokens
        weights += [weight] * len(tokens)
    ids, weights = ids[: length - 1] + [tokenizer.eos_token_id], weights[: length - 1] + [1.0]
    pad = length - len(ids)
    ids, weights = ids + [tokenizer.pad_token_id] * pad, weights + [1.0] * pad
    with torch.no_grad():
        states = encoder(torch.tensor([ids], device=encoder.device))[0].float()
    mean = states.mean()
    states = states * torch.tensor(weights, device=states.device)[None, :, None]
    return states * (mean / states.mean()) if normalize else states


def _encode(
    family: str,
    pipe: Any,
    prompt: tuple[str, str],
    negative_prompt: tuple[str, str],
    with_negative: bool,
    clip_skip: int = 1,
    empty_negative: bool = False,
) -> FlowPrompts:
    """The pipeline's own encode_prompt, each prompt as (CLIPs' text, T5's text); SD 3.5's empty negative
    prompt is zeros, as Forge (and SDXL) do.

    `clip_skip` is the WebUI's (1: none). SD 3's CLIPs already give their penultimate layer, diffusers'
    `clip_skip` 0; each WebUI step past 1 goes one layer further up, as Forge's does. FLUX ignores it."""
    import torch

    length = MAX_SEQUENCE[variant(family, pipe)]
    device = pipe.transformer.device
    (clip, t5), (negative_clip, negative_t5) = prompt, negative_prompt
    with torch.no_grad():
        if family == "flux":
            embeds, pooled, text_ids = pipe.encode_prompt(
                prompt=clip, prompt_2=t5, device=device, max_sequence_length=length
            )
            found = FlowPrompts(embeds, pooled, text_ids=text_ids)
            if with_negative:
                found.negative, found.negative_pooled, _ = pipe.encode_prompt(
                    prompt=negative_clip, prompt_2=negative_t5, device=device, max_sequence_length=length
                )
            return found
        embeds, negative, pooled, negative_pooled = pipe.encode_prompt(
            prompt=clip,
            prompt_2=clip,
            prompt_3=t5,
            device=device,
            do_classifier_free_guidance=with_negative,
            negative_prompt=negative_clip,
            negative_prompt_2=negative_clip,
            negative_prompt_3=negative_t5,
            max_sequence_length=length,
            clip_skip=clip_skip - 1 if clip_skip > 1 else None,
        )
    if with_negative and empty_negative:
        negative, negative_pooled = torch.zeros_like(negative), torch.zeros_like(negative_pooled)
    return FlowPrompts(embeds, pooled, negative, negative_pooled)


@dataclass
class PromptSchedule:
    """The job's encoded prompts over its steps, as the WebUI's prompt schedule: each entry conditions
    every step up to and including its end step (steps count from 0, one per sampler step)."""

    entries: list[tuple[int, FlowPrompts]]

    def at(self, step: int) -> FlowPrompts:
        for end, prompts in self.entries:
            if step <= end:
                return prompts
        return self.entries[0][1]  # past the last end: the WebUI's text_at_step


def _repeat(x: Any, count: int) -> Any:
    return x.repeat(count, *([1] * (x.dim() - 1)))


class FlowTransformer:
    """velocity(x, sigma, step) for a (B, 16, h, w) latent batch, with the step's prompts and the job's guidance."""

    def __init__(
        self, family: str, pipe: Any, prompts: PromptSchedule, cfg_scale: float, distilled: float | None
    ) -> None:
        self.family, self.pipe, self.prompts = family, pipe, prompts
        self.transformer = pipe.transformer
        self.cfg_scale = cfg_scale
        self.distilled = distilled
        self.cfg = prompts.entries[0][1].negative is not None and cfg_scale > 1
        self._image_ids: tuple[tuple[int, int], Any] | None = None

    @property
    def calls_per_step(self) -> int:
        return 2 if self.cfg else 1

    def __call__(self, x: torch.Tensor, sigma: float, step: int = 0) -> torch.Tensor:
        import torch

        prompts = self.prompts.at(step)
        with torch.no_grad():
            if self.family == "flux":
                return self._flux(x, sigma, prompts)
            return self._sd3(x, sigma, prompts)

    def _timestep(self, sigma: float, count: int, dtype: Any) -> torch.Tensor:
        """sigma * 1000 as the pipelines pass it: float32 for SD 3, the latents' dtype for FLUX (bf16 on a GPU)."""
        import torch

        return torch.full([count], sigma * 1000.0, device=self.transformer.device).to(dtype)

    def _sd3(self, x: torch.Tensor, sigma: float, p: FlowPrompts) -> torch.Tensor:
        import torch

        dtype, count = self.transformer.dtype, x.shape[0]
        embeds, pooled = _repeat(p.embeds, count), _repeat(p.pooled, count)
        latents = x.to(dtype)
        if self.cfg:
            embeds = torch.cat([_repeat(p.negative, count), embeds])
            pooled = torch.cat([_repeat(p.negative_pooled, count), pooled])
            latents = torch.cat([latents, latents])
        out = self.transformer(
            hidden_states=latents,
            timestep=self._timestep(sigma, latents.shape[0], torch.float32),
            encoder_hidden_states=embeds,
            pooled_projections=pooled,
            return_dict=False,
        )[0]
        if not self.cfg:
            return out
        uncond, cond = out.chunk(2)
        return uncond + self.cfg_scale * (cond - uncond)

    def _flux(self, x: torch.Tensor, sigma: float, p: FlowPrompts) -> torch.Tensor:
        from diffusers import FluxPipeline

        count, _, h, w = x.shape
        dtype, device = self.transformer.dtype, self.transformer.device
        packed = FluxPipeline._pack_latents(x.to(dtype), count, x.shape[1], h, w)
        if self._image_ids is None or self._image_ids[0] != (h, w):  # once per size, as the pipeline
            self._image_ids = ((h, w), FluxPipeline._prepare_latent_image_ids(count, h // 2, w // 2, device, dtype))
        image_ids = self._image_ids[1]
        t = self._timestep(sigma, count, dtype) / 1000
        guidance = None
        if self.distilled is not None:
            import torch

            guidance = torch.full([count], self.distilled, device=device, dtype=torch.float32)

        def call(embeds: Any, pooled: Any) -> Any:
            return self.transformer(
                hidden_states=packed,
                timestep=t,
                guidance=guidance,
                pooled_projections=_repeat(pooled, count),
                encoder_hidden_states=_repeat(embeds, count),
                txt_ids=p.text_ids,
                img_ids=image_ids,
                return_dict=False,
            )[0]

        v = call(p.embeds, p.pooled)
        if self.cfg:
            uncond = call(p.negative, p.negative_pooled)
            v = uncond + self.cfg_scale * (v - uncond)
        factor = self.pipe.vae_scale_factor  # unpacking counts in pixels
        return FluxPipeline._unpack_latents(v, h * factor, w * factor, factor)


def encode_images(pipe: Any, images: list[Any]) -> Any:
    """PIL images -> flow latents (the posterior's mean, shifted and scaled as the pipelines do), float32."""
    import torch

    vae = pipe.vae
    width, height = images[0].size
    pixels = pipe.image_processor.preprocess(images, height=height, width=width)
    with torch.no_grad():
        mean = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mean
    return (mean.float() - vae.config.shift_factor) * vae.config.scaling_factor


def decode(pipe: Any, latents: Any) -> Any:
    """Flow latents (B, 16, h, w) -> the VAE's `np` output, as the pipelines decode them."""
    import torch

    vae = pipe.vae
    with torch.no_grad():
        scaled = latents / vae.config.scaling_factor + vae.config.shift_factor
        pixels = vae.decode(scaled.to(vae.dtype), return_dict=False)[0]
    return pipe.image_processor.postprocess(pixels.float(), output_type="np")
