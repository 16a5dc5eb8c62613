"""ControlNet's reference_adain(+attn): the extension's blocks found in diffusers' UNet, the renormalised
statistics, and jobs on the tiny SD 1.5 (the change, weight 0, no state left in the shared UNet)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from openesd.generation.adapters import _adain, _reference
from tests.support import tiny_models as tm
from tests.support.generation_jobs import b64png, run, txt2img_payload

torch = pytest.importorskip("torch")


def test_the_extensions_blocks_and_weights_on_a_full_size_sd15_unet():
    """input_blocks 4, 5, 7, 8, 10, 11, output_blocks 0-7 and the middle block, weights as the extension's x2."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel()  # the SD 1.x layout
    found = _adain.block_weights(unet)
    down, up = unet.down_blocks, unet.up_blocks
    want = [
        (unet.mid_block, 0.0),
        (down[1].attentions[0], 2.0),
        (down[1].attentions[1], 2 * (1 - 1 / 6)),
        (down[2].attentions[0], 2 * (1 - 2 / 6)),
        (down[2].attentions[1], 2 * (1 - 3 / 6)),
        (down[3].resnets[0], 2 * (1 - 4 / 6)),
        (down[3].resnets[1], 2 * (1 - 5 / 6)),
        (up[0].resnets[0], 0.0),
        (up[0].resnets[1], 2 / 8),
        (up[0].upsamplers[0], 4 / 8),  # output block 2 ends with the level's upsampler
        (up[1].attentions[0], 6 / 8),
        (up[1].attentions[1], 8 / 8),
        (up[1].upsamplers[0], 10 / 8),
        (up[2].attentions[0], 12 / 8),
        (up[2].attentions[1], 14 / 8),
    ]
    assert len(found) == len(want)
    for (module, weight), (expected, expected_weight) in zip(found, want):
        assert module is expected and weight == pytest.approx(expected_weight)


def test_renormalised_rows_take_the_stored_statistics_and_fidelity_keeps_the_negative_rows():
    x = torch.randn(2, 3, 8, 8) * 3 + 1
    var, mean = torch.var_mean(torch.randn(2, 3, 8, 8) * 0.5 - 2, dim=(2, 3), keepdim=True, correction=0)
    uncond = torch.tensor([False, True])
    y = _adain.renormalised(x, mean, var, uncond, 0.0)
    got_var, got_mean = torch.var_mean(y, dim=(2, 3), keepdim=True, correction=0)
    assert float((got_mean - mean).abs().max()) < 1e-4 and float((got_var.sqrt() - var.sqrt()).abs().max()) < 1e-4
    kept = _adain.renormalised(x, mean, var, uncond, 1.0)
    assert torch.equal(kept[1], x[1]) and float((kept[0] - y[0]).abs().max()) < 1e-6


def test_the_hooked_blocks_carry_the_references_statistics_in_the_main_pass():
    """Style fidelity 0: every hooked block's output in the main pass has, per row and channel, the mean and std
    the reference pass stored there (within 1e-4); the next call without the bank's read is the plain UNet."""
    unet = tm.tiny_sd15_components()["unet"].eval()
    bank = _reference._Bank()
    bank.attention, bank.adain, bank.weight, bank.fidelity = False, True, 1.0, 0.0
    bank.uncond_rows = torch.tensor([False, True])
    _reference.install(unet, bank)
    seen: dict[int, torch.Tensor] = {}
    blocks = [module for module, _ in _adain.block_weights(unet)]
    probes = [m.register_forward_hook(_probe(seen, n)) for n, m in enumerate(blocks)]  # after the AdaIN hooks
    hidden = torch.randn(2, 8, unet.config.cross_attention_dim)
    x, reference = torch.randn(2, 4, 16, 16), torch.randn(2, 4, 16, 16) * 2 + 1
    t = torch.tensor([500.0, 500.0])
    try:
        with torch.no_grad():
            plain = unet(x, t, hidden, return_dict=False)[0]
            bank.mode = "write"
            unet(reference, t, hidden, return_dict=False)
            stored = dict(bank.gn_stored)
            bank.mode = "read"
            injected = unet(x, t, hidden, return_dict=False)[0]
    finally:
        for probe in probes:
            probe.remove()
        _reference.release(unet)
    gated = [n for n, (_, w) in enumerate(_adain.block_weights(unet)) if 1.0 > w]
    assert sorted(stored) == gated and len(gated) >= 3  # weight 1 reaches the blocks whose gn_weight is below 1
    for number in gated:
        var, mean = torch.var_mean(seen[number], dim=(2, 3), keepdim=True, correction=0)
        assert float((mean - stored[number][0]).abs().max()) < 1e-4
        assert float((var.sqrt() - stored[number][1].sqrt()).abs().max()) < 1e-4
    assert float((injected - plain).abs().max()) > 1e-3
    with torch.no_grad():
        assert torch.equal(unet(x, t, hidden, return_dict=False)[0], plain)  # hooks removed


def _probe(seen: dict, number: int):
    def hook(module, args, output):
        seen[number] = (output[0] if isinstance(output, tuple) else output).detach().float()

    return hook


def photo() -> Image.Image:
    rng = np.random.default_rng(7)
    return Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))


def scripts(module: str, **extra) -> dict:
    unit = {"enabled": True, "module": module, "model": "None", "image": b64png(photo()), **extra}
    return {"alwayson_scripts": {"controlnet": {"args": [unit]}}}


def test_reference_adain_changes_the_latent_weight_zero_does_not_and_nothing_stays(generator, sd15_checkpoint):
    """Measured on the final latent; +attn adds reference_only's attention injection on top."""
    models = {"Stable-diffusion": [sd15_checkpoint]}
    pipe = generator._load(sd15_checkpoint).pipe
    latents: list = []
    handle = pipe.vae.post_quant_conv.register_forward_pre_hook(lambda m, args: latents.append(args[0].clone()))
    jobs = ({}, scripts("reference_adain"), scripts("reference_adain", weight=0), scripts("reference_adain+attn"), {})
    try:
        for extra in jobs:
            run(generator, "txt2img", txt2img_payload(**extra), models)
    finally:
        handle.remove()
    plain, adain, zero, both, again = (latent.float() for latent in latents)
    assert float((adain - plain).abs().max()) > 1e-2
    assert float((both - adain).abs().max()) > 1e-2
    assert float((zero - plain).abs().max()) == 0.0  # weight 0: no block stores statistics
    assert float((again - plain).abs().max()) == 0.0  # the next job runs on the plain UNet
