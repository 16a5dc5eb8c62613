"""The VAE as the WebUI uses it around sampling: encode to the posterior's mean, decode to 8-bit truncating."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def _fp32_if_needed(vae: Any) -> Iterator[None]:
    """An fp16 VAE marked force_upcast (SDXL's) overflows; run it in fp32 as diffusers' pipelines do."""
    import torch

    dtype = vae.dtype
    upcast = dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
    if upcast:
        vae.to(torch.float32)
    try:
        yield
    finally:
        if upcast:
            vae.to(dtype)


def encode_mean(pipe: Any, images: list[Any]) -> Any:
    """PIL images -> scaled latents (B, C, h, w) in the UNet's dtype: the posterior's mean.

    The WebUI samples the posterior with an unseeded generator, which no payload can reproduce; for a
    trained VAE that sample is the mean to within its tiny spread, so the mean is what it gives.
    """
    import torch

    vae = pipe.vae
    width, height = images[0].size
    pixels = pipe.image_processor.preprocess(images, height=height, width=width)
    with _fp32_if_needed(vae), torch.no_grad():
        mean = vae.encode(pixels.to(pipe.device, vae.dtype)).latent_dist.mean
    return (mean.float() * vae.config.scaling_factor).to(pipe.unet.dtype)


def decode_latents(pipe: Any, latents: Any) -> list[Any]:
    """Latents (scaled, as `output_type="latent"` returns them) -> PIL images, 8 bits as the WebUI makes them."""
    import torch

    vae = pipe.vae
    with _fp32_if_needed(vae), torch.no_grad():
        decoded = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
    return to_pil(pipe.image_processor.postprocess(decoded.float(), output_type="np"))


def to_pil(images: Any) -> list[Any]:
    """A pipeline's `np` output -> PIL images, converted to 8 bits as the WebUI does (truncating)."""
    from PIL import Image

    from openesd.generation.sampling.driver import webui_uint8

    return [Image.fromarray(array) for array in webui_uint8(images)]
