"""Seeds and initial noise as A1111 makes them: seed+i per image, subseed slerp, seed resize.

The noise comes from `sampling.noise` (the WebUI's ImageRNG) with the "CPU" RNG source, so the same seed
gives the same image on any device.
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
    from openesd.generation.sampling.noise import RandnSource

    return RandnSource("CPU").randn(seed, shape)


def slerp(val: float, low: Any, high: Any) -> Any:
    """A1111's spherical interpolation between two noise tensors (C, H, W), normalised over dim 1."""
    from openesd.generation.sampling import noise as sampling_noise

    return sampling_noise.slerp(val, low, high)


def noise(
    shape: tuple[int, int, int],
    seed: int,
    subseed: int | None,
    subseed_strength: float,
    resize_from: tuple[int, int] | None,
) -> Any:
    """Initial noise (C, H, W) for one image. `resize_from` is the latent (h, w) the seed was found at."""
    subseeds = None if subseed is None else [subseed]
    return batch_noise(shape, [seed], subseeds, subseed_strength, resize_from)[0]


def batch_noise(
    shape: tuple[int, int, int],
    seeds: list[int],
    subseeds: list[int] | None,
    subseed_strength: float,
    resize_from: tuple[int, int] | None,
) -> Any:
    """Initial noise (B, C, H, W) of a batch, on the CPU, from the CPU source (sampling.noise.ImageRNG)."""
    from openesd.generation.sampling.noise import ImageRNG

    return ImageRNG(shape, seeds, subseeds, subseed_strength, resize_from).first()


def generators(seeds: list[int]) -> list[Any]:
    """One CPU generator per image for the sampler's own noise (ancestral/SDE steps)."""
    import torch

    return [torch.Generator("cpu").manual_seed(s) for s in seeds]
