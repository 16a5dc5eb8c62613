"""WebUI prompt syntax and live previews on FLUX.1 and SD 3.5 jobs.

A scheduled prompt (`[a:b:when]`, `[a|b]`) must give exactly the image of a sampler whose conditioning
switches at that step: the reference here is our own Euler loop over the diffusers transformer, fed with
diffusers' `encode_prompt` of each text. Previews: the job's last preview against its final image.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from openesd.generation import GenerationRequest, previews
from tests.generation.test_flow import flow_models, flow_pipes  # noqa: F401 (session fixtures)
from tests.support.generation_jobs import png, run, txt2img_payload

FOX, BIRD = "a red fox", "a blue bird in the snow"
# The last preview (the fitted map of the final latent, as the JPEG sent) against the final image box-averaged
# to the preview's size, measured on the tests' tiny random VAEs: flux-schnell 20.6 dB (another seed's image
# 16.4 dB, a flat preview of the right colour 19.2 dB), sd3 19.7 dB (18.4, 19.6). A random decoder is far from
# linear (the fit explains about half its variance, R^2 0.52), so the bar is low; real VAEs are near linear.
PREVIEW_PSNR_MIN = 19.0


def _payload(**overrides) -> dict:
    base = {"steps": 4, "scheduler": "Simple", "cfg_scale": 1, "negative_prompt": "", "seed": 21}
    return txt2img_payload(**{**base, **overrides})


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(png(data).convert("RGB"), dtype=np.int16)


def _job(generator, models, **overrides) -> np.ndarray:
    return _pixels(run(generator, "txt2img", _payload(**overrides), models).images[0])


def _own_loop(
    pipe, family: str, payload: dict, texts: list[tuple[str, str]], negative: str | list[str] = ""
) -> np.ndarray:
    """Euler over the transformer, step i conditioned on texts[i] = (CLIP text, T5 text), decoded as the
    pipelines decode; the sigmas and noise are the job's (both tested against diffusers in test_flow)."""
    import torch
    from diffusers import FluxPipeline

    from openesd.generation.sampling import flow
    from openesd.generation.sampling.driver import webui_uint8
    from openesd.generation.sampling.noise import ImageRNG

    factor = pipe.vae_scale_factor
    h, w = payload["height"] // factor, payload["width"] // factor
    shift = flow.model_shift(pipe.scheduler.config, (h // 2) * (w // 2))
    sigmas = flow.schedule("Simple", payload["steps"], shift, family)
    x = sigmas[0] * ImageRNG((16, h, w), [payload["seed"]], source="NV").first().float()
    dev = getattr(pipe.transformer.config, "guidance_embeds", False)
    with torch.no_grad():
        for i, (sigma, sigma_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
            clip, t5 = texts[i]
            if family == "flux":
                embeds, pooled, text_ids = pipe.encode_prompt(
                    prompt=clip, prompt_2=t5, max_sequence_length=512 if dev else 256
                )
                v = pipe.transformer(
                    hidden_states=FluxPipeline._pack_latents(x, 1, 16, h, w),
                    timestep=torch.tensor([sigma]),
                    guidance=torch.tensor([3.5]) if dev else None,
                    pooled_projections=pooled,
                    encoder_hidden_states=embeds,
                    txt_ids=text_ids,
                    img_ids=FluxPipeline._prepare_latent_image_ids(1, h // 2, w // 2, "cpu", torch.float32),
                    return_dict=False,
                )[0]
                v = FluxPipeline._unpack_latents(v, h * factor, w * factor, factor)
            else:
                embeds, neg, pooled, neg_pooled = pipe.encode_prompt(
                    prompt=clip,
                    prompt_2=None,
                    prompt_3=t5,
                    do_classifier_free_guidance=True,
                    negative_prompt=negative if isinstance(negative, str) else negative[i],
                    max_sequence_length=256,
                )
                out = pipe.transformer(
                    hidden_states=torch.cat([x, x]),
                    timestep=torch.tensor([sigma * 1000.0] * 2),
                    encoder_hidden_states=torch.cat([neg, embeds]),
                    pooled_projections=torch.cat([neg_pooled, pooled]),
                    return_dict=False,
                )[0]
                uncond, cond = out.chunk(2)
                v = uncond + payload["cfg_scale"] * (cond - uncond)
            x = x + (sigma_next - sigma) * v
        vae = pipe.vae
        pixels = vae.decode(x / vae.config.scaling_factor + vae.config.shift_factor, return_dict=False)[0]
    return webui_uint8(pipe.image_processor.postprocess(pixels, output_type="np"))[0].astype(np.int16)


@pytest.mark.parametrize(("name", "family", "cfg"), [("flux-dev", "flux", 1), ("sd3", "sd3", 4)])
def test_prompt_editing_switches_the_conditioning_at_its_step(generator, flow_pipes, flow_models, name, family, cfg):
    negative = "blurry" if family == "sd3" else ""
    common = dict(cfg_scale=cfg, negative_prompt=negative)
    edited = _job(generator, flow_models[name], prompt=f"[{FOX}:{BIRD}:0.5]", **common)
    # The WebUI's steps: 0.5 of 4 is step 2, and the first text conditions steps 0 to 2, the second step 3.
    switched = [(FOX, FOX)] * 3 + [(BIRD, BIRD)]
    reference = _own_loop(flow_pipes[name], family, _payload(**common), switched, negative)
    assert np.abs(edited - reference).max() <= 1
    by_step = _job(generator, flow_models[name], prompt=f"[{FOX}:{BIRD}:2]", **common)
    assert np.array_equal(by_step, edited)  # a whole number is that step
    for plain in (FOX, BIRD):  # the switch is visible: neither prompt alone gives this image
        assert np.abs(edited - _job(generator, flow_models[name], prompt=plain, **common)).max() > 3


def test_the_negative_prompt_is_scheduled_too(generator, flow_pipes, flow_models):
    common = dict(cfg_scale=4, prompt=FOX)
    edited = _job(generator, flow_models["sd3"], negative_prompt="[blurry:dark, noisy:0.25]", **common)
    negatives = ["blurry"] * 2 + ["dark, noisy"] * 2  # 0.25 of 4: step 1
    reference = _own_loop(flow_pipes["sd3"], "sd3", _payload(**common), [(FOX, FOX)] * 4, negatives)
    assert np.abs(edited - reference).max() <= 1


def test_an_edit_to_the_same_text_is_the_plain_prompt(generator, flow_models):
    models = flow_models["flux-schnell"]
    plain = run(generator, "txt2img", _payload(prompt=FOX), models).images[0]
    same = run(generator, "txt2img", _payload(prompt=f"[{FOX}:{FOX}:2]"), models).images[0]
    assert _pixels(same).tobytes() == _pixels(plain).tobytes()


def test_alternation_changes_the_text_every_step(generator, flow_pipes, flow_models):
    alternated = _job(generator, flow_models["flux-schnell"], prompt="a [red fox|blue bird]")
    # The WebUI's alternation: entry k ends at step k, so steps 0 and 1 read the first option, then it turns.
    fox, bird = ("a red fox", "a red fox"), ("a blue bird", "a blue bird")
    texts = [fox, fox, bird, fox]
    reference = _own_loop(flow_pipes["flux-schnell"], "flux", _payload(), texts)
    assert np.abs(alternated - reference).max() <= 1


def test_break_ends_the_clip_text_and_t5_reads_it_all(generator, flow_pipes, flow_models):
    broken = _job(generator, flow_models["flux-schnell"], prompt=f"{FOX} BREAK {BIRD}")
    whole = f"{FOX} {BIRD}"
    reference = _own_loop(flow_pipes["flux-schnell"], "flux", _payload(), [(FOX, whole)] * 4)
    assert np.abs(broken - reference).max() <= 1
    assert np.abs(broken - _job(generator, flow_models["flux-schnell"], prompt=whole)).max() > 3


def test_the_hires_pass_counts_edit_steps_from_the_first_pass(generator, flow_models):
    models = flow_models["flux-schnell"]
    hires = {"enable_hr": True, "hr_scale": 2, "hr_upscaler": "Latent", "hr_second_pass_steps": 2, "steps": 3}
    # `[fox:bird:2]` over a 3-step first pass: the fox to step 2 (the whole first pass), the bird after it
    # (the whole hires pass): the image of a job with the fox as its prompt and the bird as its hires prompt.
    edited = _job(generator, models, prompt=f"[{FOX}:{BIRD}:2]", **hires)
    split = _job(generator, models, prompt=FOX, hr_prompt=BIRD, **hires)
    assert np.array_equal(edited, split)
    assert np.abs(edited - _job(generator, models, prompt=FOX, **hires)).max() > 3


def _preview_run(generator, models, every: int, **overrides) -> tuple[list, np.ndarray]:
    shown: list = []
    request = GenerationRequest("txt2img", _payload(**overrides), models)
    result = generator.run(request, None, previews.PreviewRequest(every, lambda *sent: shown.append(sent)))
    return shown, _pixels(result.images[0])


def _psnr(preview: bytes, image: np.ndarray) -> float:
    """The preview against the final image box-averaged to the preview's size, in dB."""
    from PIL import Image

    small = np.asarray(Image.open(io.BytesIO(preview)).convert("RGB"), dtype=np.float64)
    final = Image.fromarray(image.astype(np.uint8)).resize(small.shape[1::-1], Image.Resampling.BOX)
    return _db(small, np.asarray(final, dtype=np.float64))


def _db(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a - b) ** 2)))


def _flat_psnr(image: np.ndarray) -> float:
    """What a preview of one flat colour (the image's mean) would score: the bar a real preview must clear."""
    flat = np.broadcast_to(image.mean(axis=(0, 1)).round(), (image.shape[0] // 2, image.shape[1] // 2, 3))
    return _psnr(_jpeg_free(flat), image)


def _jpeg_free(pixels: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(("name", "cfg", "every", "expected"), [("flux-schnell", 1, 2, [2, 4]), ("sd3", 4, 3, [3, 6])])
def test_flow_jobs_send_previews_that_end_at_the_image(generator, flow_models, name, cfg, every, expected):
    negative = "blurry" if name == "sd3" else ""
    shown, image = _preview_run(generator, flow_models[name], every, cfg_scale=cfg, negative_prompt=negative)
    total = 8 if cfg > 1 else 4  # true CFG: two model calls per step
    assert [(done, of) for done, of, _ in shown] == [(step, total) for step in expected]
    first, last = (np.asarray(png(jpeg).convert("RGB")) for _, _, jpeg in (shown[0], shown[-1]))
    assert first.shape == last.shape == (image.shape[0] // 2, image.shape[1] // 2, 3)  # the latent's size
    _, other = _preview_run(generator, flow_models[name], 0, cfg_scale=cfg, negative_prompt=negative, seed=99)
    own = _psnr(shown[-1][2], image)
    assert own > PREVIEW_PSNR_MIN
    assert own > _psnr(shown[-1][2], other) + 1.0  # it is this image's preview, not any image's
    if name == "flux-schnell":  # better than a flat preview of the right colour (sd3's tiny VAE: only by 0.1 dB)
        assert own > _flat_psnr(image) + 1.0
    plain, _ = _preview_run(generator, flow_models[name], 0, cfg_scale=cfg, negative_prompt=negative)
    assert plain == []  # previews off: none sent


def test_taesd_previews_are_refused_naming_the_family(generator, flow_models):
    from openesd.errors import UnsupportedFeature

    payload = _payload(override_settings={"show_progress_type": "TAESD"})
    request = GenerationRequest("txt2img", payload, flow_models["flux-schnell"])
    with pytest.raises(UnsupportedFeature, match="TAESD previews are not available for a flux checkpoint"):
        generator.run(request, None, previews.PreviewRequest(1, lambda *_: None))
