"""The WebUI 1.10's random numbers, rewritten for the reference in `webui_reference` (behaviour from
the WebUI's `modules/rng.py` and `modules/rng_philox.py`; no code copied).

- `ImageNoise` follows `rng.ImageRNG`: one generator per image seeded with that image's seed; the
  first draw is the initial noise in the latent shape (subseed slerp, seed resize), every later draw
  (the samplers' per-step noise) continues the same generators, re-seeded with seed + ENSD
  (`eta_noise_seed_delta`) after the first draw when ENSD is set.
- `randn_source`: "CPU" (torch's CPU generator), "GPU" (torch's generator on the model's device; the
  same as CPU on a CPU-only host), "NV" (`PhiloxGenerator`: what `torch.randn` gives on an NVIDIA GPU,
  computed on any device, as the WebUI's `rng_philox.Generator`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

_PHILOX_M = (0xD2511F53, 0xCD9E8D57)
_PHILOX_W = (0x9E3779B9, 0xBB67AE85)
# One-element float32 arrays, as the WebUI has them: numpy then computes Box-Muller in float64.
_INV_2_32 = np.array([2.3283064e-10], dtype=np.float32)
_INV_2_32_2PI = np.array([2.3283064e-10 * 6.2831855], dtype=np.float32)


class PhiloxGenerator:
    """Philox 4x32-10 plus Box-Muller, one counter per element: CUDA's `torch.randn` on any device.

    Each `randn` call advances the offset by one (counter word 0), the element index is counter
    word 2, the seed is the key; only the first Box-Muller output of each element is used.
    """

    def __init__(self, seed: int):
        self.seed = int(seed)
        self.offset = 0

    def randn(self, shape: tuple[int, ...]) -> np.ndarray:
        n = int(np.prod(shape))
        c0 = np.full(n, self.offset, dtype=np.uint32)
        c1 = np.zeros(n, dtype=np.uint32)
        c2 = np.arange(n, dtype=np.uint32)
        c3 = np.zeros(n, dtype=np.uint32)
        self.offset += 1
        k0 = np.full(n, self.seed & 0xFFFFFFFF, dtype=np.uint32)
        k1 = np.full(n, (self.seed >> 32) & 0xFFFFFFFF, dtype=np.uint32)
        for round_ in range(10):
            if round_:
                k0, k1 = k0 + np.uint32(_PHILOX_W[0]), k1 + np.uint32(_PHILOX_W[1])
            p0 = c0.astype(np.uint64) * np.uint64(_PHILOX_M[0])
            p2 = c2.astype(np.uint64) * np.uint64(_PHILOX_M[1])
            hi0, lo0 = (p0 >> np.uint64(32)).astype(np.uint32), p0.astype(np.uint32)
            hi2, lo2 = (p2 >> np.uint64(32)).astype(np.uint32), p2.astype(np.uint32)
            c0, c1, c2, c3 = hi2 ^ c1 ^ k0, lo2, hi0 ^ c3 ^ k1, lo0
        u = c0 * _INV_2_32 + _INV_2_32 / 2
        v = c1 * _INV_2_32_2PI + _INV_2_32_2PI / 2
        return (np.sqrt(-2.0 * np.log(u)) * np.sin(v)).astype(np.float32).reshape(shape)


def make_generator(seed: int, source: str, device: Any = "cpu") -> Any:
    """A generator for one seed from the WebUI's `randn_source` ("CPU", "GPU" or "NV")."""
    if source == "NV":
        return PhiloxGenerator(seed)
    where = "cpu" if source == "CPU" else device
    return torch.Generator(where).manual_seed(int(seed))


def draw(generator: Any, shape: tuple[int, ...]) -> torch.Tensor:
    """The next normal draw of `shape` from a generator (float32, on the CPU)."""
    if isinstance(generator, PhiloxGenerator):
        return torch.from_numpy(generator.randn(shape))
    return torch.randn(shape, generator=generator, device=generator.device).cpu()


def slerp(val: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of two (C, H, W) noises, normalised over dim 1 (the WebUI's `rng.slerp`)."""
    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * val + high * (1 - val)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - val) * omega) / so).unsqueeze(1) * low + (torch.sin(val * omega) / so).unsqueeze(1) * high


def _paste_centre(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Seed resize: the centres of the two noises aligned, the larger one cropped."""
    dx, dy = (target.shape[2] - source.shape[2]) // 2, (target.shape[1] - source.shape[1]) // 2
    w = source.shape[2] if dx >= 0 else source.shape[2] + 2 * dx
    h = source.shape[1] if dy >= 0 else source.shape[1] + 2 * dy
    tx, ty, sx, sy = max(dx, 0), max(dy, 0), max(-dx, 0), max(-dy, 0)
    target[:, ty : ty + h, tx : tx + w] = source[:, sy : sy + h, sx : sx + w]
    return target


class ImageNoise:
    """Initial and per-step noise for a batch of images, as the WebUI's `rng.ImageRNG` draws it.

    `shape` is one image's latent shape (C, H, W); `resize_from` the latent (H, W) the seed was first
    used at (the WebUI divides seed_resize_from_h/w by 8, its latent factor), or None.
    """

    def __init__(
        self,
        shape: tuple[int, int, int],
        seeds: list[int],
        subseeds: list[int] | None = None,
        subseed_strength: float = 0.0,
        resize_from: tuple[int, int] | None = None,
        ensd: int = 0,
        source: str = "CPU",
        device: Any = "cpu",
    ):
        self.shape, self.seeds, self.subseeds = tuple(shape), list(seeds), subseeds
        self.subseed_strength, self.resize_from, self.ensd = subseed_strength, resize_from, ensd
        self.source, self.device = source, device
        self.generators = [make_generator(s, source, device) for s in self.seeds]
        self.drawn = 0

    def next(self) -> torch.Tensor:
        """(B, C, H, W): the initial noise the first time, the samplers' step noise after."""
        self.drawn += 1
        if self.drawn == 1:
            return self._first()
        return torch.stack([draw(g, self.shape) for g in self.generators])

    def _first(self) -> torch.Tensor:
        noise_shape = self.shape if self.resize_from is None else (self.shape[0], *self.resize_from)
        images = []
        for i, (seed, generator) in enumerate(zip(self.seeds, self.generators)):
            if noise_shape != self.shape:
                noise = draw(make_generator(seed, self.source, self.device), noise_shape)
            else:
                noise = draw(generator, self.shape)
            if self.subseeds is not None and self.subseed_strength != 0:
                subseed = self.subseeds[i] if i < len(self.subseeds) else 0
                subnoise = draw(make_generator(subseed, self.source, self.device), noise_shape)
                noise = slerp(self.subseed_strength, noise, subnoise)
            if noise_shape != self.shape:
                noise = _paste_centre(draw(generator, self.shape), noise)
            images.append(noise)
        if self.ensd:
            self.generators = [make_generator(s + self.ensd, self.source, self.device) for s in self.seeds]
        return torch.stack(images)


class StepNoise:
    """Stands in for `torch` inside `k_diffusion.sampling` while a sampler runs, as the WebUI's
    `TorchHijack` does: `randn_like` returns the next draw of the image generators."""

    def __init__(self, noise: ImageNoise, device: Any, dtype: Any):
        self.noise, self.device, self.dtype = noise, device, dtype

    def randn_like(self, x: torch.Tensor, **_: Any) -> torch.Tensor:
        return self.noise.next().to(self.device, self.dtype)

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)
