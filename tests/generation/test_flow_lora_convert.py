"""The kohya FLUX.1 conversion agrees with diffusers' own converter at the released FLUX.1 size.

diffusers converts kohya FLUX files only at FLUX.1's real widths (3072 hidden, 12288 MLP); the worker's
converter reads the widths from the model. On a FLUX.1-sized transformer built on the meta device (no
memory, no weights), both must give the same delta (lora_B @ lora_A) for every diffusers module.
"""

from __future__ import annotations

import pytest

from openesd.generation.adapters import _flow_lora

torch = pytest.importorskip("torch")

RANK, ALPHA = 4, 8.0
BFL_MODULES = {  # (in, out) of FLUX.1's original modules, block 0 of each kind
    "double_blocks_0_img_attn_qkv": (3072, 9216),
    "double_blocks_0_txt_attn_qkv": (3072, 9216),
    "double_blocks_0_img_attn_proj": (3072, 3072),
    "double_blocks_0_txt_mlp_0": (3072, 12288),
    "double_blocks_0_img_mod_lin": (3072, 18432),
    "single_blocks_0_linear1": (3072, 21504),
    "single_blocks_0_linear2": (15360, 3072),
    "final_layer_adaLN_modulation_1": (3072, 6144),
}


class _Pipe:
    def __init__(self):
        from diffusers import FluxTransformer2DModel

        with torch.device("meta"):
            self.transformer = FluxTransformer2DModel(num_layers=1, num_single_layers=1)  # FLUX.1's defaults


def _kohya():
    generator = torch.Generator().manual_seed(3)
    state = {}
    for name, (width_in, width_out) in BFL_MODULES.items():
        state[f"lora_unet_{name}.lora_down.weight"] = torch.randn(RANK, width_in, generator=generator)
        state[f"lora_unet_{name}.lora_up.weight"] = torch.randn(width_out, RANK, generator=generator)
        state[f"lora_unet_{name}.alpha"] = torch.tensor(ALPHA)
    return state


def _deltas(state):
    return {
        key.removesuffix(".lora_A.weight"): state[key.replace(".lora_A.", ".lora_B.")].float() @ value.float()
        for key, value in state.items()
        if key.endswith(".lora_A.weight")
    }


def test_the_worker_and_diffusers_convert_a_flux_sized_kohya_lora_to_the_same_deltas():
    from diffusers.loaders.lora_conversion_utils import _convert_kohya_flux_lora_to_diffusers

    ours = _deltas(_flow_lora.to_diffusers(_kohya(), _Pipe(), "flux", "real.safetensors"))
    # diffusers names the embedders and final layer without the `transformer.` prefix its loader filters by
    theirs = {
        (k if k.startswith("transformer.") else f"transformer.{k}"): v
        for k, v in _deltas(_convert_kohya_flux_lora_to_diffusers(_kohya())).items()
    }
    assert set(ours) == set(theirs) and len(ours) == 15
    for module, delta in theirs.items():
        # diffusers leaves the final layer's alpha/rank out (a "TODO: alphas" there); kohya scales every module
        expected = delta * (ALPHA / RANK) if module == "transformer.norm_out.linear" else delta
        torch.testing.assert_close(ours[module], expected, rtol=1e-5, atol=1e-4, msg=module)
