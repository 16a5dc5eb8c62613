"""Seeds as A1111 makes them (-1 is random, seed + i per image); the noise itself is
`generation/sampling/noise.py`'s (the WebUI's ImageRNG)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openesd.generation.payload.settings import GenerationSettings

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


@dataclass
class Batch:
    """One n_iter step: the seeds and subseeds of its images."""

    seeds: list[int]
    subseeds: list[int]


def batches(settings: GenerationSettings, seed: int, subseed: int) -> list[Batch]:
    """The WebUI's `all_seeds`/`all_subseeds`: seed + i per image, except that with a variation
    strength every image keeps the seed and only the subseeds count up."""
    size = settings.batch_size
    step = 0 if settings.subseed_strength else 1
    return [
        Batch(
            [seed + (n * size + i) * step for i in range(size)],
            image_seeds(subseed + n * size, size),
        )
        for n in range(settings.n_iter)
    ]
