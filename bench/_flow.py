"""`bench/generate.py --family flux|sd35`: our worker vs the plain diffusers pipeline on the same weights.

Both sides get the same prompt, size, steps, guidance and initial noise (the WebUI's, from the seed), and the
same sigmas (FLUX: our "Simple" is diffusers' own FLUX schedule; SD 3.5: our "Normal" is diffusers' own
SD 3 schedule), so the run reports speed (our/diffusers) and fidelity (max pixel difference) at once.

Weights: the tests' tiny models (default, CPU figures); --full: the real FLUX.1-dev / SD 3.5 Large
architectures with random weights built on the device (GPU); --model FILE: a user's single file,
through the worker's own loader (the family is the file's).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

# The published configs of FLUX.1-dev and SD 3.5 Large (diffusers names), for --full.
FLUX_DEV = dict(
    patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
    num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
    axes_dims_rope=(16, 56, 56),
)  # fmt: skip
SD35_LARGE = dict(
    sample_size=128, patch_size=2, in_channels=16, out_channels=16, num_layers=38, attention_head_dim=64,
    num_attention_heads=38, joint_attention_dim=4096, caption_projection_dim=2432, pooled_projection_dim=2048,
    pos_embed_max_size=192, qk_norm="rms_norm",
)  # fmt: skip
T5_XXL = dict(
    vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
    feed_forward_proj="gated-gelu", tie_word_embeddings=False,
)  # fmt: skip
PROMPT, NEGATIVE = "a photo of a red house", "blurry"


def _full_components(family: str) -> dict[str, Any]:
    """Full-size random components (text encoders, transformer, 16-channel VAE) on the default device."""
    from diffusers import AutoencoderKL, FluxTransformer2DModel, SD3Transformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    from tests.support import tiny_flow as tf
    from tests.support.tiny_models import tiny_tokenizer

    flux = family == "flux"
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(128, 256, 512, 512),
        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4, layers_per_block=2,
        use_quant_conv=False, use_post_quant_conv=False,
        scaling_factor=tf.FLUX_VAE_SCALE if flux else tf.SD3_VAE_SCALE,
        shift_factor=tf.FLUX_VAE_SHIFT if flux else tf.SD3_VAE_SHIFT,
    )  # fmt: skip
    clip_l = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12)
    parts: dict[str, Any] = {"vae": vae, "tokenizer": tiny_tokenizer(), "scheduler": tf._flow_scheduler(family)}
    t5 = T5EncoderModel(T5Config(**T5_XXL))
    if flux:
        parts.update(
            transformer=FluxTransformer2DModel(**FLUX_DEV), text_encoder=CLIPTextModel(CLIPTextConfig(**clip_l))
        )
        parts.update(text_encoder_2=t5, tokenizer_2=tf.tiny_t5_tokenizer())
        return parts
    clip_g = dict(
        hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20, hidden_act="gelu",
        projection_dim=1280,
    )  # fmt: skip
    parts.update(
        transformer=SD3Transformer2DModel(**SD35_LARGE),
        text_encoder=CLIPTextModelWithProjection(CLIPTextConfig(**clip_l, projection_dim=768)),
        text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**clip_g)),
        tokenizer_2=tiny_tokenizer(pad_token="!"),
        text_encoder_3=t5,
        tokenizer_3=tf.tiny_t5_tokenizer(),
    )
    return parts


def build_pipeline(family: str, full: bool, device: str, dtype: Any) -> Any:
    import torch
    from diffusers import FluxPipeline, StableDiffusion3Pipeline

    from tests.support import tiny_flow as tf

    cls = FluxPipeline if family == "flux" else StableDiffusion3Pipeline
    if not full:
        components = tf.tiny_flux_components() if family == "flux" else tf.tiny_sd3_components()
        return cls(**components).to(device, dtype)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):  # built where it runs: no 30 GB detour through the CPU
            return cls(**_full_components(family))
    finally:
        torch.set_default_dtype(previous)


def _settings(args: Any, family: str) -> dict[str, Any]:
    # FLUX.1-dev: Forge's defaults (cfg 1, distilled 3.5); SD 3.5 Large: CFG 4.5 on a negative prompt.
    if family == "flux":
        return {"scheduler": "Simple", "cfg_scale": 1.0, "distilled_cfg_scale": 3.5, "negative_prompt": ""}
    return {"scheduler": "Normal", "cfg_scale": 4.5, "negative_prompt": NEGATIVE}


def ours(generator: Any, path: Path, args: Any, family: str, size: tuple[int, int]) -> Any:
    from openesd.generation import GenerationRequest

    models = {"Stable-diffusion": [path]}

    def make_run(batch: int) -> Any:
        payload = {
            "prompt": PROMPT, "seed": 1, "steps": args.steps, "width": size[0], "height": size[1],
            "sampler_name": "Euler", "batch_size": batch, **_settings(args, family),
        }  # fmt: skip
        return lambda: generator.run(GenerationRequest("txt2img", payload, models))

    return make_run


def plain(pipe: Any, args: Any, family: str, size: tuple[int, int]) -> Any:
    """diffusers' own call, its own scheduler, given the WebUI noise of seeds 1.. as latents."""
    import torch

    from openesd.generation.sampling.noise import ImageRNG
    from openesd.generation.tasks.passes import randn_source

    settings = _settings(args, family)
    factor = pipe.vae_scale_factor
    h, w = size[1] // factor, size[0] // factor

    def make_run(batch: int) -> Any:
        device = pipe.transformer.device
        source = randn_source("GPU", device)
        noise = ImageRNG((16, h, w), list(range(1, batch + 1)), source=source, device=device).first()
        noise = noise.to(pipe.transformer.dtype)
        common = dict(
            prompt=PROMPT, height=size[1], width=size[0], num_inference_steps=args.steps,
            num_images_per_prompt=batch, output_type="np", generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
        if family == "flux":
            latents = type(pipe)._pack_latents(noise, batch, 16, h, w)
            return lambda: pipe(**common, latents=latents, guidance_scale=settings["distilled_cfg_scale"]).images
        return lambda: pipe(
            **common, latents=noise, guidance_scale=settings["cfg_scale"], negative_prompt=NEGATIVE
        ).images

    return make_run


def fidelity(make_ours: Any, make_plain: Any) -> float:
    """Max difference in 8-bit levels between our first image and diffusers' (same noise, same sigmas)."""
    import io

    import numpy as np
    from PIL import Image

    from openesd.generation.sampling.driver import webui_uint8

    mine = np.asarray(Image.open(io.BytesIO(make_ours(1)().images[0])).convert("RGB"), dtype=np.int16)
    theirs = webui_uint8(make_plain(1)())[0].astype(np.int16)
    return float(np.abs(mine - theirs).max())


def flow_main(args: Any, spec: Any, measure: Any) -> None:
    import tempfile

    import torch

    from openesd.generation import Generator
    from openesd.generation.models.loading import LoadedModel

    family = "flux" if args.family == "flux" else "sd3"
    default = 1024 if args.full or args.model else 64
    size = (args.width or default, args.height or default)
    batches = [int(b) for b in args.batches.split(",")]
    generator = Generator(device=args.device)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        if args.model:  # a user's file: the worker's loader builds it, and the plain side shares its modules
            path = Path(args.model)
            loaded = generator._load(path)
            pipe, family = loaded.pipe, loaded.family
        else:
            path = Path(tmp) / f"{args.family}.safetensors"
            path.write_bytes(b"bench")  # the infotext's model hash reads the file
            pipe = build_pipeline(family, args.full, spec.device, spec.dtype)
            generator.cache.get("checkpoint", path, lambda: LoadedModel(pipe, family, False, path))
        pipe.set_progress_bar_config(disable=True)
        weights = sum(p.numel() for m in pipe.components.values() if hasattr(m, "parameters") for p in m.parameters())
        kind = "file" if args.model else "full-size random" if args.full else "tiny"
        print(
            f"{args.family}: {weights / 1e9:.2f} B parameters ({kind}), "
            f"{size[0]}x{size[1]}, {args.steps} steps, device {spec.device}, dtype {spec.dtype}, "
            f"ready in {time.perf_counter() - start:.1f} s",
            flush=True,
        )
        make_ours, make_plain = ours(generator, path, args, family, size), plain(pipe, args, family, size)
        if spec.is_cuda:
            torch.cuda.reset_peak_memory_stats()
        results = measure({"ours": make_ours, "diffusers": make_plain}, batches, args.repeats)
        print(
            f"max pixel difference ours vs diffusers (same noise, 8-bit levels): {fidelity(make_ours, make_plain):.0f}"
        )
        if spec.is_cuda:
            print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB", flush=True)
    mine, theirs = results["ours"], results["diffusers"]
    print(
        f"ratio ours/diffusers: {mine['per_image'] / theirs['per_image']:.3f}x time per image (batch 1), "
        f"{mine['throughput'] / theirs['throughput']:.3f}x best throughput",
        flush=True,
    )
