"""The WebUI's random numbers: each image's initial noise (seed, subseed slerp, seed resize), the step noise that
continues the same generators (ENSD re-seeds them), the CPU / GPU / NV sources, and the Brownian-tree noise of
the SDE samplers.

What the WebUI 1.10 does (modules/rng.py, sd_samplers_common.py), restated here as behaviour:
- one generator per image, seeded with that image's seed; its first draw is the image's initial noise and its
  later draws are the ancestral samplers' step noise (k-diffusion's `torch.randn_like`, which the WebUI routes
  to `ImageRNG.next`), so an image comes out the same in a batch of 1 or of 8;
- the subseed's and the seed-resize noises come from fresh generators, seeded for that one draw;
- after the initial noise, a nonzero ENSD (eta_noise_seed_delta) replaces each generator by one seeded with
  seed + ENSD, for every sampler (the infotext only shows ENSD for samplers that use it);
- every draw is float32; "CPU" draws on the CPU and moves the numbers to the device, "GPU" draws on the device
  (the CPU on a CPU worker, and on "mps"), "NV" computes what an NVIDIA GPU's torch.randn gives (_philox).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from openesd.generation.sampling._philox import PhiloxGenerator

RANDN_SOURCES = ("CPU", "GPU", "NV")

NoiseSampler = Callable[[Any, Any], Tensor]
"""`noise(sigma, sigma_next) -> Tensor`: the sampler protocol's step noise (k-diffusion's noise_sampler)."""

Generator = torch.Generator | PhiloxGenerator


class RandnSource:
    """One of the WebUI's `randn_source` values on one device: makes seeded generators and draws from them."""

    def __init__(self, name: str = "CPU", device: torch.device | str | None = None) -> None:
        if name not in RANDN_SOURCES:
            raise ValueError(f"randn_source must be one of {', '.join(RANDN_SOURCES)}, not {name!r}")
        self.name = name
        self.device = torch.device(device if device is not None else "cpu")
        # The WebUI draws "CPU" numbers on the CPU, and "GPU" ones on the device except on Apple's mps.
        on_cpu = name == "CPU" or self.device.type == "mps"
        self.generator_device = torch.device("cpu") if on_cpu else self.device

    def generator(self, seed: int) -> Generator:
        """A generator seeded with `seed` (the WebUI's create_generator)."""
        if self.name == "NV":
            return PhiloxGenerator(seed)
        return torch.Generator(self.generator_device).manual_seed(int(seed))

    def draw(self, generator: Generator, shape: Sequence[int]) -> Tensor:
        """The generator's next `shape` normals, float32, on the device."""
        if isinstance(generator, PhiloxGenerator):
            return torch.asarray(generator.randn(shape), device=self.device)
        numbers = torch.randn(tuple(shape), generator=generator, device=generator.device, dtype=torch.float32)
        return numbers.to(self.device)

    def randn(self, seed: int, shape: Sequence[int]) -> Tensor:
        """The first `shape` normals of a fresh generator seeded with `seed` (the WebUI's randn_local)."""
        return self.draw(self.generator(seed), shape)


def slerp(val: float, low: Tensor, high: Tensor) -> Tensor:
    """The WebUI's subseed blend of two (C, H, W) noises: spherical interpolation of the vectors along dim 1.

    Where the two are nearly parallel (mean cosine above 0.9995) the WebUI falls back to a linear blend whose
    weights are the other way round (`val` on `low`); kept, as it decides the picture.
    """
    low_unit = low / torch.norm(low, dim=1, keepdim=True)
    high_unit = high / torch.norm(high, dim=1, keepdim=True)
    cosine = (low_unit * high_unit).sum(1)
    if cosine.mean() > 0.9995:
        return low * val + high * (1 - val)
    omega = torch.acos(cosine)
    sin_omega = torch.sin(omega)
    low_weight = (torch.sin((1.0 - val) * omega) / sin_omega).unsqueeze(1)
    high_weight = (torch.sin(val * omega) / sin_omega).unsqueeze(1)
    return low_weight * low + high_weight * high


def paste_centered(base: Tensor, patch: Tensor) -> Tensor:
    """Seed resize: put `patch`'s centre on `base`'s centre (C, H, W), cropping whichever is larger; in place."""
    dy, dx = (base.shape[1] - patch.shape[1]) // 2, (base.shape[2] - patch.shape[2]) // 2
    h = patch.shape[1] if dy >= 0 else patch.shape[1] + 2 * dy
    w = patch.shape[2] if dx >= 0 else patch.shape[2] + 2 * dx
    ty, tx, sy, sx = max(dy, 0), max(dx, 0), max(-dy, 0), max(-dx, 0)
    base[:, ty : ty + h, tx : tx + w] = patch[:, sy : sy + h, sx : sx + w]
    return base


class ImageRNG:
    """The WebUI's per-image generators for one batch: the initial noise, then the step noise.

    `shape` is one image's latent (C, H, W); `seed_resize_from` is the latent (h, w) the seed was found at
    (the WebUI's "Seed resize from" in pixels // 8), or None.
    """

    def __init__(
        self,
        shape: Sequence[int],
        seeds: Sequence[int],
        subseeds: Sequence[int] | None = None,
        subseed_strength: float = 0.0,
        seed_resize_from: tuple[int, int] | None = None,
        source: str = "CPU",
        eta_noise_seed_delta: int = 0,
        device: torch.device | str | None = None,
    ) -> None:
        if len(shape) != 3:
            raise ValueError(f"shape must be one image's latent (C, H, W), not {tuple(shape)}")
        if not seeds:
            raise ValueError("seeds must name one seed per image, not none")
        self.shape = tuple(int(n) for n in shape)
        self.seeds = [int(seed) for seed in seeds]
        self.subseeds = None if subseeds is None else [int(seed) for seed in subseeds]
        self.subseed_strength = subseed_strength
        self.seed_shape = self.shape
        if seed_resize_from is not None and seed_resize_from[0] > 0 and seed_resize_from[1] > 0:
            self.seed_shape = (self.shape[0], int(seed_resize_from[0]), int(seed_resize_from[1]))
        self.eta_noise_seed_delta = eta_noise_seed_delta
        self.source = RandnSource(source, device)
        self._generators = [self.source.generator(seed) for seed in self.seeds]
        self._first_drawn = False

    def first(self) -> Tensor:
        """The initial noise (B, C, H, W) on the device; then a nonzero ENSD re-seeds the generators."""
        noises = [
            self._initial(i, seed, generator) for i, (seed, generator) in enumerate(zip(self.seeds, self._generators))
        ]
        self._first_drawn = True
        if self.eta_noise_seed_delta:
            self._generators = [self.source.generator(seed + self.eta_noise_seed_delta) for seed in self.seeds]
        return torch.stack(noises).to(self.source.device)

    def next(self) -> Tensor:
        """The initial noise if not drawn yet, else the next step noise (B, C, H, W) from the same generators."""
        if not self._first_drawn:
            return self.first()
        return torch.stack([self.source.draw(generator, self.shape) for generator in self._generators])

    def noise_sampler(self) -> NoiseSampler:
        """The sampler protocol's `noise(sigma, sigma_next)`: each call is `next()` (the WebUI's randn_like)."""
        return lambda sigma, sigma_next: self.next()

    def _initial(self, index: int, seed: int, generator: Generator) -> Tensor:
        resized = self.seed_shape != self.shape
        # Without seed resize the image's own generator makes the noise; with it, a fresh one makes the noise
        # at the old size and the image's generator the full-size noise it is pasted on.
        noise = self.source.randn(seed, self.seed_shape) if resized else self.source.draw(generator, self.shape)
        if self.subseeds is not None and self.subseed_strength != 0:
            subseed = self.subseeds[index] if index < len(self.subseeds) else 0
            noise = slerp(self.subseed_strength, noise, self.source.randn(subseed, self.seed_shape))
        if resized:
            noise = paste_centered(self.source.draw(generator, self.shape), noise)
        return noise


def brownian_noise(x: Tensor, sigmas: Sequence[float], seeds: Sequence[int], *, source: str = "CPU") -> NoiseSampler:
    """The WebUI's step noise for the `brownian_noise` samplers (DPM++ SDE, DPM++ 2M SDE): k-diffusion's
    BrownianTreeNoiseSampler over [min positive sigma, max sigma], one torchsde tree per image seeded with that
    image's seed (the WebUI's default, `no_dpmpp_sde_batch_determinism` off), the trees' numbers drawn from the
    randn `source` as the WebUI's torchsde patch does.

    `x` gives the batch's shape, device and dtype; sigmas are float32 values, as the WebUI's are tensors.
    """
    import torchsde  # type: ignore[import-untyped]

    if len(seeds) != x.shape[0]:
        raise ValueError(f"seeds must give one seed per image: {len(seeds)} seeds for a batch of {x.shape[0]}")
    positive = [float(s) for s in sigmas if s > 0]
    if not positive:
        raise ValueError("sigmas must hold a positive sigma for the Brownian tree's interval")
    randn = RandnSource(source, x.device)
    t0, t1 = _float32(min(positive)), _float32(max(float(s) for s in sigmas))
    w0 = torch.zeros_like(x[0])
    with _tree_numbers(randn):
        trees = [torchsde.BrownianTree(t0, w0, t1, entropy=int(seed)) for seed in seeds]

    def noise(sigma: Any, sigma_next: Any) -> Tensor:
        s, s_next = _float32(sigma), _float32(sigma_next)
        lo, hi, sign = (s, s_next, 1) if s < s_next else (s_next, s, -1)
        with _tree_numbers(randn):
            w = torch.stack([tree(lo, hi) for tree in trees]) * sign
        return w / (s_next - s).abs().sqrt()

    return noise


def _float32(value: Any) -> Tensor:
    """A sigma as k-diffusion sees it in the WebUI: a float32 scalar tensor."""
    return torch.as_tensor(value, dtype=torch.float32).detach().cpu()


# torchsde draws each tree node's numbers through its module function `_randn(size, dtype, device, seed)`; the
# WebUI replaces that function for good with its randn source. Here the replacement is installed once and uses
# the source of the Brownian noise being computed in this context, and torchsde's own draw everywhere else.
_TREE_SOURCE: contextvars.ContextVar[RandnSource | None] = contextvars.ContextVar("tree_randn_source", default=None)


class _tree_numbers:
    def __init__(self, source: RandnSource) -> None:
        self.source = source
        _install_tree_randn()

    def __enter__(self) -> None:
        self.token = _TREE_SOURCE.set(self.source)

    def __exit__(self, *exc: object) -> None:
        _TREE_SOURCE.reset(self.token)


def _install_tree_randn() -> None:
    from torchsde._brownian import brownian_interval  # type: ignore[import-untyped]

    torchsde_randn = brownian_interval._randn
    if getattr(torchsde_randn, "openesd_sources", False):
        return

    def randn(size: Sequence[int], dtype: torch.dtype, device: torch.device, seed: int) -> Tensor:
        source = _TREE_SOURCE.get()
        if source is None:
            drawn: Tensor = torchsde_randn(size, dtype, device, seed)
            return drawn
        return source.randn(seed, size).to(device=device, dtype=dtype)

    randn.openesd_sources = True  # type: ignore[attr-defined]
    brownian_interval._randn = randn
