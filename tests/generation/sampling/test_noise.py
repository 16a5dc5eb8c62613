"""The WebUI's random numbers: initial noise, step noise, the CPU / GPU / NV sources, ENSD, Brownian noise.

Expected values are built here from the WebUI's behaviour (a CPU torch generator per image, the NV source's
Philox stream written out in Python integers, Random123's published answers, k-diffusion's own Brownian
sampler), not from the module under test.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
import torch

from openesd.generation.sampling import noise
from openesd.generation.sampling._philox import philox4x32
from openesd.generation.tasks import seeds as task_seeds
from tests.support.kdiffusion import sampling as kdiffusion_sampling

SHAPE = (4, 8, 10)  # one image's latent: a 80x64 picture


def cpu_draws(seed: int, *shapes: tuple[int, ...]) -> list[torch.Tensor]:
    """Successive draws of one CPU torch generator seeded with `seed`."""
    generator = torch.Generator("cpu").manual_seed(seed)
    return [torch.randn(shape, generator=generator) for shape in shapes]


# --- Philox 4x32-10 and the NV source -------------------------------------------------------------------------

# Random123's kat_vectors for philox4x32_10: counter, key -> output.
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize(("counter", "key", "expected"), KAT)
def test_philox4x32_10_gives_random123s_known_answers(counter, key, expected):
    words = philox4x32(np.array(counter, dtype=np.uint32)[:, None], np.array(key, dtype=np.uint32)[:, None])
    assert tuple(int(w) for w in words[:, 0]) == expected


def _f32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


def _philox_words(counter: list[int], key: list[int]) -> list[int]:
    """Philox4x32-10 in Python integers, step by step from Salmon et al. (2011)."""
    mask = 0xFFFFFFFF
    c, k = list(counter), list(key)
    for r in range(10):
        if r:
            k = [(k[0] + 0x9E3779B9) & mask, (k[1] + 0xBB67AE85) & mask]
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k[0], p1 & mask, (p0 >> 32) ^ c[3] ^ k[1], p0 & mask]
    return c


def nv_number(seed: int, call: int, index: int) -> float:
    """The NV source's `index`-th number of its `call`-th draw: Philox at counter (call, 0, index, 0) under
    key (seed low, seed high), then the first Box-Muller normal with the WebUI's float32 scales, rounded to float32."""
    w = _philox_words([call, 0, index, 0], [seed & 0xFFFFFFFF, seed >> 32])
    u_scale, v_scale = _f32(2.3283064e-10), _f32(2.3283064e-10 * 6.2831855)
    u, v = w[0] * u_scale + u_scale / 2, w[1] * v_scale + v_scale / 2
    return _f32(math.sqrt(-2.0 * math.log(u)) * math.sin(v))


def test_nv_source_matches_the_webuis_documented_values():
    # modules/rng_philox.py's docstring: Generator(seed=0).randn((3, 4)). Those figures were printed from
    # the exact 2**-32 scale in float64; the code (and so the WebUI's pictures) uses float32 scales, a few
    # float32 ulps away: the bound below, while a wrong counter or key layout is off by order 1.
    documented = [
        [-0.92466259, -0.42534415, -2.6438457, 0.14518388],
        [-0.12086647, -0.57972564, -0.62285122, -0.32838709],
        [-1.07454231, -0.36314407, -1.67105067, 2.26550497],
    ]
    first = noise.ImageRNG((1, 3, 4), [0], source="NV").first()[0, 0]
    np.testing.assert_allclose(first.numpy(), documented, rtol=0, atol=4e-7)


def test_nv_source_is_the_philox_stream_one_call_per_draw():
    seed = 2**32 + 123456789  # a high word in the key too (seed + ENSD may pass 2**32)
    rng = noise.ImageRNG((2, 3, 5), [seed], source="NV")
    first, second = rng.first()[0].flatten(), rng.next()[0].flatten()
    assert first.dtype == torch.float32
    assert first.tolist() == [nv_number(seed, 0, i) for i in range(30)]
    assert second.tolist() == [nv_number(seed, 1, i) for i in range(30)]


# --- the CPU and GPU sources, per-image seeds -----------------------------------------------------------------


def test_cpu_source_is_one_cpu_generator_per_image_seeded_with_its_seed():
    image_seeds = task_seeds.image_seeds(1234, 3)
    assert image_seeds == [1234, 1235, 1236]
    x = noise.ImageRNG(SHAPE, image_seeds).first()
    assert x.shape == (3, *SHAPE) and x.dtype == torch.float32
    for i, seed in enumerate(image_seeds):
        assert torch.equal(x[i], cpu_draws(seed, SHAPE)[0])


def test_an_image_comes_out_the_same_alone_or_in_a_batch():
    batch = noise.ImageRNG(SHAPE, [7, 8, 9], source="NV")
    alone = noise.ImageRNG(SHAPE, [8], source="NV")
    assert torch.equal(batch.first()[1], alone.first()[0])
    assert torch.equal(batch.next()[1], alone.next()[0])


def test_gpu_source_on_a_cpu_worker_is_the_cpu_generator():
    gpu = noise.ImageRNG(SHAPE, [42, 43], source="GPU", device="cpu")
    cpu = noise.ImageRNG(SHAPE, [42, 43], source="CPU")
    assert torch.equal(gpu.first(), cpu.first())
    assert torch.equal(gpu.next(), cpu.next())


def test_an_unknown_source_is_refused_by_name():
    with pytest.raises(ValueError, match="CPU, GPU, NV, not 'cuda'"):
        noise.ImageRNG(SHAPE, [1], source="cuda")


# --- subseed and seed resize ----------------------------------------------------------------------------------


def webui_slerp(val: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """The WebUI's slerp in float64, column by column: along dim 1 (H) of (C, H, W)."""
    low, high = low.double(), high.double()
    out = torch.empty_like(low)
    for c in range(low.shape[0]):
        for w in range(low.shape[2]):
            a, b = low[c, :, w], high[c, :, w]
            omega = math.acos(float((a / a.norm()) @ (b / b.norm())))
            out[c, :, w] = (math.sin((1 - val) * omega) * a + math.sin(val * omega) * b) / math.sin(omega)
    return out


def test_subseed_blends_each_images_noise_with_its_subseeds():
    x = noise.ImageRNG(SHAPE, [100, 101], subseeds=[500, 501], subseed_strength=0.3).first()
    for i in range(2):
        expected = webui_slerp(0.3, cpu_draws(100 + i, SHAPE)[0], cpu_draws(500 + i, SHAPE)[0])
        torch.testing.assert_close(x[i].double(), expected, rtol=0, atol=2e-6)
    # a missing subseed is subseed 0, as in the WebUI
    short = noise.ImageRNG(SHAPE, [100, 101], subseeds=[500], subseed_strength=0.3).first()
    torch.testing.assert_close(short[1].double(), webui_slerp(0.3, cpu_draws(101, SHAPE)[0], cpu_draws(0, SHAPE)[0]))


def test_subseed_strength_zero_leaves_the_seed_noise():
    x = noise.ImageRNG(SHAPE, [100], subseeds=[500], subseed_strength=0.0).first()
    assert torch.equal(x[0], cpu_draws(100, SHAPE)[0])


def test_seed_resize_pastes_the_old_sizes_noise_in_the_middle():
    x = noise.ImageRNG(SHAPE, [77], seed_resize_from=(4, 6)).first()[0]
    expected = cpu_draws(77, SHAPE)[0]
    expected[:, 2:6, 2:8] = cpu_draws(77, (4, 4, 6))[0]  # (8 - 4) // 2 = 2 rows, (10 - 6) // 2 = 2 columns in
    assert torch.equal(x, expected)


def test_seed_resize_from_a_larger_size_crops_its_middle():
    x = noise.ImageRNG(SHAPE, [77], seed_resize_from=(12, 6)).first()[0]
    expected = cpu_draws(77, SHAPE)[0]
    expected[:, :, 2:8] = cpu_draws(77, (4, 12, 6))[0][:, 2:10, :]  # 12 rows cropped to the middle 8
    assert torch.equal(x, expected)


def test_seed_resize_with_subseed_blends_at_the_old_size():
    x = noise.ImageRNG(SHAPE, [77], subseeds=[88], subseed_strength=0.5, seed_resize_from=(4, 6)).first()[0]
    blended = webui_slerp(0.5, cpu_draws(77, (4, 4, 6))[0], cpu_draws(88, (4, 4, 6))[0])
    torch.testing.assert_close(x[:, 2:6, 2:8].double(), blended, rtol=0, atol=2e-6)
    assert torch.equal(x[:, :2], cpu_draws(77, SHAPE)[0][:, :2])


# --- step noise and ENSD --------------------------------------------------------------------------------------


def test_step_noise_continues_each_images_generator():
    rng = noise.ImageRNG(SHAPE, [5, 6])
    initial, step1, step2 = rng.next(), rng.next(), rng.next()  # the WebUI's first next() is the initial noise
    for i, seed in enumerate([5, 6]):
        draws = cpu_draws(seed, SHAPE, SHAPE, SHAPE)
        assert torch.equal(initial[i], draws[0])
        assert torch.equal(step1[i], draws[1])
        assert torch.equal(step2[i], draws[2])
    assert not torch.equal(step1, initial)


def test_noise_sampler_after_first_gives_the_second_draw():
    rng = noise.ImageRNG(SHAPE, [5])
    initial = rng.first()
    step = rng.noise_sampler()(14.6, 10.0)
    assert torch.equal(step[0], cpu_draws(5, SHAPE, SHAPE)[1])
    assert not torch.equal(step, initial)


def test_step_noise_after_seed_resize_is_the_generators_second_full_size_draw():
    rng = noise.ImageRNG(SHAPE, [77], seed_resize_from=(4, 6))
    rng.first()
    assert torch.equal(rng.next()[0], cpu_draws(77, SHAPE, SHAPE)[1])


@pytest.mark.parametrize("source", ["CPU", "NV"])
def test_ensd_reseeds_the_step_noise_with_seed_plus_delta(source):
    rng = noise.ImageRNG(SHAPE, [1000, 1001], source=source, eta_noise_seed_delta=31337)
    plain = noise.ImageRNG(SHAPE, [1000, 1001], source=source)
    shifted = noise.ImageRNG(SHAPE, [32337, 32338], source=source)
    assert torch.equal(rng.first(), plain.first())  # the initial noise keeps the seed
    shifted_initial = shifted.first()
    assert torch.equal(rng.next(), shifted_initial)  # then each generator restarts at seed + ENSD
    assert torch.equal(rng.next(), shifted.next())


# --- Brownian noise -------------------------------------------------------------------------------------------

SIGMAS = [14.614642, 7.4772453, 3.9120345, 2.1029782, 1.1400816, 0.6012547, 0.28730446, 0.0]


def test_brownian_noise_is_k_diffusions_brownian_tree_sampler():
    k = kdiffusion_sampling()
    x = torch.randn((2, *SHAPE), generator=torch.Generator().manual_seed(0))
    image_seeds = [3000, 3001]
    sigmas = torch.tensor(SIGMAS, dtype=torch.float32)
    ours = noise.brownian_noise(x, sigmas.tolist(), image_seeds)
    theirs = k.BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=image_seeds)
    # the steps, a DPM++ SDE midpoint, and a step back up (the sign flip)
    calls = [(sigmas[i], sigmas[i + 1]) for i in range(len(SIGMAS) - 1)]
    calls += [(sigmas[1], (sigmas[1] * sigmas[2]).sqrt()), (sigmas[3], sigmas[2])]
    for sigma, sigma_next in calls:
        expected = theirs(sigma, sigma_next)
        got = ours(float(sigma), float(sigma_next))
        assert torch.equal(got, expected)


def test_brownian_noise_per_image_trees_and_nv_source():
    x = torch.zeros((2, *SHAPE))
    pair = noise.brownian_noise(x, SIGMAS, [11, 12])(SIGMAS[0], SIGMAS[1])
    alone = noise.brownian_noise(x[:1], SIGMAS, [12])(SIGMAS[0], SIGMAS[1])
    assert torch.equal(pair[1], alone[0])
    nv = noise.brownian_noise(x, SIGMAS, [11, 12], source="NV")(SIGMAS[0], SIGMAS[1])
    assert not torch.allclose(nv, pair)  # the tree's numbers come from the randn source
    assert torch.equal(nv, noise.brownian_noise(x, SIGMAS, [11, 12], source="NV")(SIGMAS[0], SIGMAS[1]))


# --- on an NVIDIA GPU -----------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_sources_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    shape = (4, 64, 64)
    expected = torch.randn(shape, generator=torch.Generator("cuda").manual_seed(1234), device="cuda")
    gpu = noise.ImageRNG(shape, [1234], source="GPU", device="cuda").first()[0]
    assert torch.equal(gpu, expected)
    cpu = noise.ImageRNG(shape, [1234], source="CPU", device="cuda").first()[0]
    assert cpu.device.type == "cuda" and torch.equal(cpu.cpu(), cpu_draws(1234, shape)[0])
    # NV: an NVIDIA GPU's torch.randn, up to the WebUI's Box-Muller being float64 where curand's is float32
    # (emulated in numpy float32: at most 3e-6 apart over 65536 numbers, median 6e-8)
    nv = noise.ImageRNG(shape, [1234], source="NV", device="cuda").first()[0]
    assert nv.device.type == "cuda"
    torch.testing.assert_close(nv, expected, rtol=0, atol=1e-5)
