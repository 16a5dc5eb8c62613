"""Live previews of a running job: every N model calls, the sampler's current denoised prediction (x0) as a
small JPEG, made from the latents alone ("Approx cheap") or with the user's TAESD decoder file.

FLUX.1 and SD 3.5 (16 latent channels) have no WebUI map of their own here: their "Approx cheap" map is
fitted once per VAE, by least squares against that VAE's own decoder on a few random latents."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from openesd.errors import ModelError, PayloadError, UnsupportedFeature

# The WebUI's `sd_vae_approx.cheap_approximation`: one linear map from the 4 latent channels to RGB in
# [-1, 1] (rows: latent channels, columns: R, G, B), one for SD 1.x/2.x and one for SDXL.
APPROX_CHEAP_SD = (
    (0.298, 0.207, 0.208),
    (0.187, 0.286, 0.173),
    (-0.158, 0.189, 0.264),
    (-0.184, -0.271, -0.473),
)
APPROX_CHEAP_SDXL = (
    (0.3448, 0.4168, 0.4395),
    (-0.1953, -0.0290, 0.0250),
    (0.1074, 0.0886, -0.0163),
    (-0.3730, -0.2499, -0.2088),
)
# The WebUI's names of the TAESD decoder files (models/VAE-taesd), here uploaded as VAE-type files.
TAESD_FILES = {
    "sd1": "taesd_decoder",
    "sd2": "taesd_decoder",
    "sdxl": "taesdxl_decoder",
    "sdxl_refiner": "taesdxl_decoder",
}
PREVIEW_TYPES = ("Approx cheap", "TAESD")
_REFUSED = {
    "Full": "it decodes with the full VAE at every preview, as costly as a second decode of the image",
    "Approx NN": "its weights (VAE-approx/model.pt) are a pickle this worker does not load",
}
JPEG_QUALITY = 85

PreviewSink = Callable[[int, int, bytes], None]  # (model calls done, total, JPEG bytes)


@dataclass(frozen=True)
class PreviewRequest:
    """What the worker asks of a job: a preview every `every` model calls (0: none), handed to `deliver`."""

    every: int
    deliver: PreviewSink


def approx_cheap(latent: Any, family: str) -> Any:
    """One latent (C, H, W) -> uint8 RGB (H, W, 3) as the WebUI's cheap approximation: latent size, truncated."""
    import torch

    coefs = APPROX_CHEAP_SDXL if family.startswith("sdxl") else APPROX_CHEAP_SD
    matrix = torch.tensor(coefs, dtype=torch.float32, device=latent.device)
    rgb = torch.einsum("lxy,lr->xyr", latent.float()[:4], matrix)
    return (torch.clamp(rgb * 0.5 + 0.5, 0.0, 1.0) * 255.0).to(torch.uint8).cpu().numpy()


# The fit: this many random latents of this side (in latents), seeded, decoded by the model's VAE.
FIT_SAMPLES, FIT_SIDE, FIT_SEED = 4, 32, 0


def fit_linear_preview(vae: Any) -> tuple[Any, Any]:
    """A 3x3 convolution (weight (3, C, 3, 3), bias (3,)) from a sampler latent to RGB in [-1, 1]: the least-
    squares fit of the VAE decoder's output, averaged over each latent's pixel block, on FIT_SAMPLES random
    unit-normal latents (the sampler's latents are about unit normal). Linear in the latent, as the WebUI's
    "Approx cheap"; the 3x3 neighbourhood, not one latent pixel, because a decoder's pixel reads its
    neighbours (on the tests' random VAE: R^2 0.52 against 0.19 per pixel). Costs FIT_SAMPLES small decodes,
    once per VAE."""
    import torch

    channels = vae.config.latent_channels
    generator = torch.Generator().manual_seed(FIT_SEED)
    latents = torch.randn(FIT_SAMPLES, channels, FIT_SIDE, FIT_SIDE, generator=generator)
    weight = next(vae.parameters())
    with torch.no_grad():
        scaled = latents / vae.config.scaling_factor + (vae.config.shift_factor or 0.0)
        pixels = vae.decode(scaled.to(weight.device, weight.dtype), return_dict=False)[0].float().cpu()
    factor = pixels.shape[-1] // FIT_SIDE
    target = torch.nn.functional.avg_pool2d(pixels.clamp(-1, 1), factor)  # (N, 3, side, side)
    inputs = torch.cat([_neighbourhoods(latents), torch.ones(FIT_SAMPLES, 1, FIT_SIDE * FIT_SIDE)], dim=1)
    inputs = inputs.permute(0, 2, 1).reshape(-1, channels * 9 + 1).double()
    outputs = target.permute(0, 2, 3, 1).reshape(-1, 3).double()
    solution = torch.linalg.lstsq(inputs, outputs).solution.float()  # (C * 9 + 1, 3)
    return solution[:-1].T.reshape(3, channels, 3, 3).contiguous(), solution[-1].contiguous()


def _neighbourhoods(latents: Any) -> Any:
    """(N, C, H, W) -> (N, C * 9, H * W): each latent pixel's 3x3 neighbourhood, edges repeated."""
    import torch.nn.functional as F

    return F.unfold(F.pad(latents, (1, 1, 1, 1), mode="replicate"), 3)


def linear_preview(latent: Any, fitted: tuple[Any, Any]) -> Any:
    """One latent (C, H, W) -> uint8 RGB (H, W, 3) through a fitted map: latent size, as Approx cheap."""
    import torch
    import torch.nn.functional as F

    weight, bias = (part.to(latent.device) for part in fitted)
    padded = F.pad(latent.float()[None], (1, 1, 1, 1), mode="replicate")
    rgb = F.conv2d(padded, weight, bias)[0].permute(1, 2, 0)
    return (torch.clamp(rgb * 0.5 + 0.5, 0.0, 1.0) * 255.0).to(torch.uint8).cpu().numpy()


def load_taesd(path: Path, device: Any) -> Any:
    """A TAESD decoder file (the WebUI's `taesd_decoder.pth`, weights only, or its safetensors) as diffusers'
    AutoencoderTiny; the file's `Sequential` indices are one above diffusers' `decoder.layers` (its Clamp
    has no weights)."""
    from diffusers import AutoencoderTiny

    from openesd.generation.models.loading import read_state_dict

    state = read_state_dict(path)
    mapped = {}
    for key, value in state.items():
        head, _, rest = key.removeprefix("decoder.").partition(".")
        if not head.isdigit() or int(head) < 1:
            raise ModelError(f"{path.name} is not a TAESD decoder: unexpected weight {key!r}")
        mapped[f"layers.{int(head) - 1}.{rest}"] = value
    tiny: Any = AutoencoderTiny  # untyped in diffusers; its default config is TAESD's
    decoder = tiny().decoder
    try:
        decoder.load_state_dict(mapped)
    except RuntimeError as error:  # missing keys or other shapes: another network
        raise ModelError(f"{path.name} is not a TAESD decoder: {str(error).splitlines()[0]}") from error
    return decoder.to(device).eval()


def taesd_image(decoder: Any, latent: Any) -> Any:
    """One latent (C, H, W) -> uint8 RGB (8H, 8W, 3) through the TAESD decoder (its output is in [-1, 1])."""
    import torch

    weight = next(decoder.parameters())
    with torch.no_grad():
        rgb = decoder(latent[None].to(weight.device, weight.dtype))[0].float()
    return (torch.clamp(rgb * 0.5 + 0.5, 0.0, 1.0) * 255.0).permute(1, 2, 0).to(torch.uint8).cpu().numpy()


def encode_jpeg(pixels: Any) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    # 4:4:4: a preview is already the latent's size (1/8 of the image's side); halving its colour too blurs it.
    Image.fromarray(pixels).save(out, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return out.getvalue()


def preview_type(override_settings: dict[str, Any]) -> str:
    """The WebUI's `show_progress_type` of the job (default "Approx cheap"), refused by name when not done here."""
    wanted = override_settings.get("show_progress_type", "Approx cheap")
    if wanted in PREVIEW_TYPES:
        return str(wanted)
    if wanted in _REFUSED:
        raise UnsupportedFeature(f"show_progress_type {wanted!r} is not supported for previews: {_REFUSED[wanted]}")
    raise PayloadError(f"show_progress_type {wanted!r} should be one of {', '.join(PREVIEW_TYPES)}")


def find_taesd(vae_files: list[Path], family: str) -> Path:
    """The TAESD decoder file for this model family among the job's VAE files, or a ModelError naming it."""
    stem = TAESD_FILES.get(family)
    if stem is None:
        raise UnsupportedFeature(f"TAESD previews are not available for a {family} checkpoint")
    for path in vae_files:
        if path.name.split(".")[0] == stem:
            return path
    available = ", ".join(p.name for p in vae_files) or "none"
    raise ModelError(
        f"show_progress_type 'TAESD' needs the VAE file {stem}.pth (or .safetensors) for a {family} checkpoint "
        f"among this job's VAE files: {available}"
    )


class Previewer:
    """Renders the first image of a batch's prediction every `every` model calls and hands it on."""

    def __init__(self, request: PreviewRequest, render: Callable[[Any], Any]):
        self.every, self.deliver, self.render = request.every, request.deliver, render

    def after_call(self, done: int, total: int, denoised: Any) -> None:
        if self.every <= 0 or denoised is None or done % self.every:
            return
        self.deliver(done, total, encode_jpeg(self.render(denoised[0])))
