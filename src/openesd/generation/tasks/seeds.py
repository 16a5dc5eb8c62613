"""Seeds and initial noise as A1111 makes them: seed+i per image, subseed slerp, seed resize.

Noise is drawn from a CPU generator (A1111's "CPU" RNG source), so the same seed gives the same
image on any device.
"""

from __future__ import annotations

import random
from typing import Any

MAX_SEED = 2**32 - 1


def resolve_seed(seed: int) -> int:
    """-1 (or any negative) -> a random seed, as the WebUI does; otherwise the seed itself."""
    if seed is None or seed < 0:
        return random.randrange(MAX_SEED)
    return int(seed)


def image_seeds(seed: int, count: int) -> list[int]:
    return [seed + i for i in range(count)]


def randn(seed: int, shape: tuple[int, ...]) -> Any:
    import torch

    generator = torch.Generator("cpu").manual_seed(seed % (2**64))
    return torch.randn(shape, generator=generator, dtype=torch.float32)


def slerp(val: float, low: Any, high: Any) -> Any:
    """A1111's spherical interpolation between two noise tensors (C, H, W), normalised over dim 1."""
    import torch

    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * val + high * (1 - val)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - val) * omega) / so).unsqueeze(1) * low + (torch.sin(val * omega) / so).unsqueeze(1) * high


def noise(
    shape: tuple[int, int, int],
    seed: int,
    subseed: int | None,
    subseed_strength: float,
    resize_from: tuple[int, int] | None,
) -> Any:
    """Initial noise (C, H, W) for one image. `resize_from` is the latent (h, w) the seed was found at."""
    noise_shape = shape if resize_from is None else (shape[0], resize_from[0], resize_from[1])
    x = randn(seed, noise_shape)
    if subseed is not None and subseed_strength:
        x = slerp(subseed_strength, x, randn(subseed, noise_shape))
    if noise_shape != shape:
        x = _paste_centered(randn(seed, shape), x)
    return x


def _paste_centered(base: Any, small: Any) -> Any:
    """Put `small`'s centre onto `base`'s centre, cropping whichever is larger (A1111's seed resize)."""
    dx = (base.shape[2] - small.shape[2]) // 2
    dy = (base.shape[1] - small.shape[1]) // 2
    w = small.shape[2] if dx >= 0 else small.shape[2] + 2 * dx
    h = small.shape[1] if dy >= 0 else small.shape[1] + 2 * dy
    tx, ty = max(dx, 0), max(dy, 0)
    sx, sy = max(-dx, 0), max(-dy, 0)
    base[:, ty : ty + h, tx : tx + w] = small[:, sy : sy + h, sx : sx + w]
    return base


def batch_noise(
    shape: tuple[int, int, int],
    seeds: list[int],
    subseeds: list[int],
    subseed_strength: float,
    resize_from: tuple[int, int] | None,
) -> Any:
    import torch

    return torch.stack([noise(shape, s, ss, subseed_strength, resize_from) for s, ss in zip(seeds, subseeds)])


def generators(seeds: list[int]) -> list[Any]:
    """One CPU generator per image for the sampler's own noise (ancestral/SDE steps)."""
    import torch

    return [torch.Generator("cpu").manual_seed(s) for s in seeds]
