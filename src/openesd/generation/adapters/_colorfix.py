"""sd-webui-controlnet's `tile_colorfix` and `tile_colorfix+sharp`: after every UNet call the prediction's x0
keeps its own high frequencies and takes its low frequencies (a box blur of radius `Variation`) from the
control image's latent; `+sharp` also softens the negative rows' x0 by `Sharpness` %, which CFG turns into a
sharpening of the result."""

from __future__ import annotations

import math
from typing import Any

MODULES = ("tile_colorfix", "tile_colorfix+sharp")


def handles(module: str) -> bool:
    return module in MODULES


def blur(x: Any, k: int) -> Any:
    """The extension's blur: edges replicated by k, then the mean over each (2k+1)^2 window."""
    import torch

    padded = torch.nn.functional.pad(x, (k, k, k, k), mode="replicate")
    return torch.nn.functional.avg_pool2d(padded, 2 * k + 1, stride=1)


def fixed_x0(x0: Any, reference: Any, k: int) -> Any:
    """x0 with its low frequencies replaced by the reference latent's."""
    return x0 - blur(x0, k) + blur(reference, k)


def softened_x0(x0: Any, k: int, sharpness: float) -> Any:
    """`+sharp`'s negative rows: x0 moved `sharpness` % of the way to its own blur."""
    detail = sharpness * 0.01
    return detail * blur(x0, k) + (1.0 - detail) * x0


class ColorFix:
    """One tile_colorfix unit as a `ConditionedUNet` extra: `correct` rewrites each UNet call's output."""

    keep_in_hires = True  # the extension applies it in the hires pass too, with twice the variation

    def __init__(self, rgb_image: Any, variation: float, sharpness: float | None, weight: float) -> None:
        self.image, self.sharpness = rgb_image, sharpness
        self.variation = int(variation)  # the extension's int(threshold_a)
        self.weight = max(0.0, min(1.0, float(weight)))
        self.run: Any = None
        self.k = self.variation
        self.latent: Any = None

    def attach(self, run: Any, hires: bool = False) -> None:
        self.run, self.latent = run, None  # encoded at the first call, at that pass's size
        self.k = self.variation * (2 if hires else 1)

    def inputs(self, progress: float, which: int, batch: int) -> dict[str, Any]:
        return {}

    def correct(self, x_in: Any, output: Any, whiches: list[int], batch: int) -> Any:
        """The UNet's output for rows of halves `whiches` (0 negative, 1 prompt), as the extension rewrites it:
        x0 from the output, fixed, then blended back by the unit's weight (clipped to [0, 1])."""
        import torch

        if self.run is None or self.weight == 0.0:
            return output
        scheduler = self.run.scheduler
        sigma, kind = float(scheduler.sigma), scheduler.plan.prediction_type
        out = output.float()
        x = x_in.float() * math.sqrt(sigma**2 + 1.0)  # the sampler's point, before the UNet's input scaling
        x0 = _x0(kind, x, out, sigma)
        target = fixed_x0(x0, self._reference(out), self.k)
        if self.sharpness is not None:
            negative = torch.tensor([w == 0 for w in whiches for _ in range(batch)], device=out.device)
            target = torch.where(negative[:, None, None, None], softened_x0(target, self.k, self.sharpness), target)
        change = self.weight * (target - x0)
        if kind == "v_prediction":
            out = out + change / (-sigma / math.sqrt(sigma**2 + 1.0))
        elif kind == "sample":
            out = out + change
        else:
            out = out - change / sigma
        return out.to(output.dtype)

    def _reference(self, like: Any) -> Any:
        """The control image's latent at the size of this pass (the hires pass: the image resized to it)."""
        from PIL import Image

        from openesd.generation.tasks.vae import encode_mean

        if self.latent is None or self.latent.shape[-2:] != like.shape[-2:]:
            pipe = self.run.pipe
            factor = getattr(pipe, "vae_scale_factor", 8)
            size = (like.shape[-1] * factor, like.shape[-2] * factor)
            image = self.image if self.image.size == size else self.image.resize(size, Image.Resampling.LANCZOS)
            self.latent = encode_mean(pipe, [image]).float()
        return self.latent.to(like.device)


def _x0(kind: str, x: Any, output: Any, sigma: float) -> Any:
    if kind == "v_prediction":
        return x / (sigma**2 + 1.0) - output * sigma / math.sqrt(sigma**2 + 1.0)
    if kind == "sample":
        return output
    return x - output * sigma
