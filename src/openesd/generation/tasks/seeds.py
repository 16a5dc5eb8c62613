"""Seeds as A1111 makes them (-1 is random, seed + i per image); the noise itself is
`generation/sampling/noise.py`'s (the WebUI's ImageRNG)."""

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


def generators(seeds: list[int]) -> list[Any]:
    """One CPU generator per image for what the pipeline still draws itself (the VAE's posterior sample)."""
    import torch

    return [torch.Generator("cpu").manual_seed(s) for s in seeds]
