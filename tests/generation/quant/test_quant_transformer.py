"""fp8 and GGUF storage of the FLUX.1 / SD 3.5 transformer: (nearly) the same image in fewer bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from openesd.errors import ModelError
from openesd.generation.quant import load_flow_transformer
from openesd.generation.quant.fp8 import Fp8Linear, quantise
from openesd.generation.quant.transformer import BLOCKS
from tests.generation.quant.conftest import image_with, parameter_bytes, psnr
from tests.support import flow_files, tiny_flow
from tests.support.gguf_files import write_gguf

torch = pytest.importorskip("torch")

# PSNR against the fp32 reference's image, measured on the tiny model (seed 0, 3 steps, 64x64): fp8 files
# 69 dB, the fp8 setting on an fp32 file 72 dB, GGUF Q8_0 65 dB, Q4_0 41 dB; an unrelated transformer of the
# same shapes 18 dB. The bound leaves room for other CPUs' float rounding.
NEARLY_SAME_DB = 50.0


def _block_linears(module) -> list[str]:
    return [n for n, m in module.named_modules() if isinstance(m, torch.nn.Linear) and n.startswith(BLOCKS)]


def _fp8_file(bfl: dict, path: Path, scaled: bool) -> Path:
    """A BFL file whose block weights are e4m3, as the shared `flux1-dev-fp8.safetensors`; `scaled`: ComfyUI's
    "scaled fp8" files, with a `scale_weight` per layer and the `scaled_fp8` marker."""
    from safetensors.torch import save_file

    state = {}
    for key, tensor in bfl.items():
        block_weight = key.startswith(("double_blocks.", "single_blocks.")) and key.endswith(".weight")
        if block_weight and tensor.ndim == 2:
            if scaled:
                state[key], state[key.removesuffix("weight") + "scale_weight"] = quantise(tensor)
            else:
                state[key] = tensor.to(torch.float8_e4m3fn)
        else:
            state[key] = tensor.to(torch.bfloat16)
    if scaled:
        state["scaled_fp8"] = torch.zeros(0, dtype=torch.float8_e4m3fn)
    save_file(state, str(path))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory, flux_bfl) -> dict[str, Path]:
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("quant")
    save_file({k: v.contiguous() for k, v in flux_bfl.items()}, str(folder / "flux1-dev.safetensors"))
    return {
        "bf16": folder / "flux1-dev.safetensors",
        "fp8": _fp8_file(flux_bfl, folder / "flux1-dev-fp8.safetensors", scaled=False),
        "fp8_scaled": _fp8_file(flux_bfl, folder / "flux1-dev-fp8-scaled.safetensors", scaled=True),
        "Q8_0": write_gguf(flux_bfl, folder / "flux1-dev-Q8_0.gguf", "Q8_0"),
        "Q4_0": write_gguf(flux_bfl, folder / "flux1-dev-Q4_0.gguf", "Q4_0"),
    }


def test_the_full_storage_reproduces_the_reference_exactly(files, flux_config, flux_components, flux_image):
    transformer = load_flow_transformer(files["bf16"], "flux", flux_config, "full", torch.float32)
    assert psnr(image_with(flux_components, transformer), flux_image) == float("inf")
    assert parameter_bytes(transformer) == parameter_bytes(flux_components["transformer"])


@pytest.mark.parametrize("name", ["fp8", "fp8_scaled"])
def test_an_fp8_file_stays_fp8_and_draws_nearly_the_same_image(name, files, flux_config, flux_components, flux_image):
    transformer = load_flow_transformer(files[name], "flux", flux_config, "auto", torch.float32)
    layers = _block_linears(transformer)
    assert layers and all(isinstance(transformer.get_submodule(n), Fp8Linear) for n in layers)
    assert transformer.get_submodule(layers[0]).weight.dtype == torch.uint8  # one byte a weight in memory
    full = parameter_bytes(flux_components["transformer"])
    assert parameter_bytes(transformer) < 0.6 * full
    assert psnr(image_with(flux_components, transformer), flux_image) > NEARLY_SAME_DB


def test_fp8_tensors_are_used_as_they_are_not_widened(flux_bfl, flux_config):
    """An fp8 file's weights become the layers' storage without a copy: the model is never held wider."""
    state = {k: v.to(torch.float8_e4m3fn) if k.endswith("qkv.weight") else v for k, v in flux_bfl.items()}
    transformer = load_flow_transformer(dict(state), "flux", flux_config, "auto", torch.float32)
    fused = state["double_blocks.0.img_attn.qkv.weight"]
    to_k = transformer.transformer_blocks[0].attn.to_k
    assert (
        isinstance(to_k, Fp8Linear) and to_k.weight.untyped_storage().data_ptr() == fused.untyped_storage().data_ptr()
    )
    assert not isinstance(transformer.transformer_blocks[0].ff.net[2], Fp8Linear)  # not fp8 in the file: kept full


def test_the_fp8_setting_quantises_a_full_precision_file(files, flux_config, flux_components, flux_image):
    from openesd.generation.models.fastpath import FastPath
    from openesd.settings import Settings

    mode = FastPath.from_settings(Settings(flow_transformer_weights="fp8")).flow_weights
    transformer = load_flow_transformer(files["bf16"], "flux", flux_config, mode, torch.float32)
    assert all(isinstance(transformer.get_submodule(n), Fp8Linear) for n in _block_linears(transformer))
    assert parameter_bytes(transformer) < 0.6 * parameter_bytes(flux_components["transformer"])
    assert psnr(image_with(flux_components, transformer), flux_image) > NEARLY_SAME_DB


def test_a_loaded_transformer_goes_to_fp8_in_place(flux_bfl, flux_config, flux_components, flux_image):
    from openesd.generation.quant import to_fp8

    loaded = load_flow_transformer(dict(flux_bfl), "flux", flux_config, "full", torch.float32)
    assert to_fp8(loaded) is loaded
    assert all(isinstance(loaded.get_submodule(n), Fp8Linear) for n in _block_linears(loaded))
    assert parameter_bytes(loaded) < 0.6 * parameter_bytes(flux_components["transformer"])
    assert psnr(image_with(flux_components, loaded), flux_image) > NEARLY_SAME_DB


def test_an_all_in_one_file_gives_its_transformer(flux_bfl, flux_config, flux_components, flux_image):
    """Forge/ComfyUI's files: the transformer under `model.diffusion_model.`, text encoders and VAE beside it."""
    state = {f"model.diffusion_model.{k}": v for k, v in flux_bfl.items()}
    state["text_encoders.clip_l.transformer.text_model.final_layer_norm.weight"] = torch.ones(4)
    state["vae.decoder.conv_out.bias"] = torch.zeros(3)
    transformer = load_flow_transformer(state, "flux", flux_config, "fp8", torch.float32)
    assert psnr(image_with(flux_components, transformer), flux_image) > NEARLY_SAME_DB


def test_the_full_setting_widens_an_fp8_file(files, flux_config, flux_components):
    transformer = load_flow_transformer(files["fp8"], "flux", flux_config, "full", torch.float32)
    assert not any(isinstance(m, Fp8Linear) for m in transformer.modules())
    assert parameter_bytes(transformer) == parameter_bytes(flux_components["transformer"])


def test_a_gguf_q8_file_draws_nearly_the_same_image_in_fewer_bytes(files, flux_config, flux_components, flux_image):
    from diffusers.quantizers.gguf.utils import GGUFLinear

    q8 = load_flow_transformer(files["Q8_0"], "flux", flux_config, "fp8", torch.float32)  # the file decides
    q4 = load_flow_transformer(files["Q4_0"], "flux", flux_config, "auto", torch.float32)
    assert isinstance(q8.transformer_blocks[0].attn.to_q, GGUFLinear)
    full = parameter_bytes(flux_components["transformer"])
    assert parameter_bytes(q4) < parameter_bytes(q8) < 0.4 * full
    q8_db, q4_db = psnr(image_with(flux_components, q8), flux_image), psnr(image_with(flux_components, q4), flux_image)
    assert q8_db > NEARLY_SAME_DB
    assert q4_db < q8_db  # 4 bits are coarser than 8: the stored quantisation is what runs


def test_an_unrelated_transformer_is_far_from_the_reference(flux_components, flux_image):
    """The bound above can fail: other weights of the same shapes draw a different image."""
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(123)
    other = FluxTransformer2DModel.from_config(flux_components["transformer"].config).eval()
    assert psnr(image_with(flux_components, other), flux_image) < NEARLY_SAME_DB - 20


def test_sd35_transformer_in_fp8_and_gguf_computes_nearly_the_same(tmp_path):
    reference = tiny_flow.tiny_sd3_transformer()
    mmdit = flow_files.sd3_to_mmdit(reference)
    config = dict(reference.config)
    fp8 = load_flow_transformer(dict(mmdit), "sd3", config, "fp8", torch.float32)
    gguf = load_flow_transformer(write_gguf(mmdit, tmp_path / "sd3.5-Q8_0.gguf", arch="sd3"), "sd3", config)
    torch.manual_seed(0)
    inputs = {
        "hidden_states": torch.randn(1, tiny_flow.FLOW_LATENT_CHANNELS, 16, 16),
        "encoder_hidden_states": torch.randn(1, 8, tiny_flow.T5_D_MODEL),
        "pooled_projections": torch.randn(1, reference.config.pooled_projection_dim),
        "timestep": torch.tensor([500.0]),
        "return_dict": False,
    }
    expected = reference(**inputs)[0]
    for model in (fp8, gguf):
        difference = (model(**inputs)[0] - expected).abs().max().item()
        assert difference < 0.05 * expected.abs().max().item()
    assert parameter_bytes(fp8) < 0.6 * parameter_bytes(reference)


def test_the_converter_matches_diffusers_at_flux_real_width():
    """diffusers' own converter only reads 3072-wide files; ours must place every row where it does.
    One-column stand-ins with distinct values keep this cheap at the real width."""
    from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers

    from openesd.generation.quant._bfl import convert_flux

    rows = _real_flux_rows()
    counter = iter(range(10**9))
    state = {k: torch.tensor([[float(next(counter))] for _ in range(n)]) for k, n in rows.items()}
    ours = convert_flux(dict(state))
    theirs = convert_flux_transformer_checkpoint_to_diffusers(dict(state))
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def _real_flux_rows() -> dict[str, int]:
    """Rows of every tensor of a FLUX.1-dev BFL file with one double and one single block."""
    h, mlp = 3072, 12288
    rows = {"img_in.weight": h, "img_in.bias": h, "txt_in.weight": h, "txt_in.bias": h}
    for part in ("time_in", "vector_in", "guidance_in"):
        rows |= {f"{part}.in_layer.weight": h, f"{part}.in_layer.bias": h}
        rows |= {f"{part}.out_layer.weight": h, f"{part}.out_layer.bias": h}
    for stream in ("img", "txt"):
        p = f"double_blocks.0.{stream}_"
        rows |= {f"{p}mod.lin.weight": 6 * h, f"{p}mod.lin.bias": 6 * h}
        rows |= {f"{p}attn.qkv.weight": 3 * h, f"{p}attn.qkv.bias": 3 * h}
        rows |= {f"{p}attn.norm.query_norm.scale": 128, f"{p}attn.norm.key_norm.scale": 128}
        rows |= {f"{p}attn.proj.weight": h, f"{p}attn.proj.bias": h}
        rows |= {f"{p}mlp.0.weight": mlp, f"{p}mlp.0.bias": mlp, f"{p}mlp.2.weight": h, f"{p}mlp.2.bias": h}
    s = "single_blocks.0."
    rows |= {f"{s}modulation.lin.weight": 3 * h, f"{s}modulation.lin.bias": 3 * h}
    rows |= {f"{s}linear1.weight": 3 * h + mlp, f"{s}linear1.bias": 3 * h + mlp}
    rows |= {f"{s}norm.query_norm.scale": 128, f"{s}norm.key_norm.scale": 128}
    rows |= {f"{s}linear2.weight": h, f"{s}linear2.bias": h}
    rows |= {"final_layer.linear.weight": 64, "final_layer.linear.bias": 64}
    rows |= {"final_layer.adaLN_modulation.1.weight": 2 * h, "final_layer.adaLN_modulation.1.bias": 2 * h}
    return rows


def test_files_that_are_not_the_family_fail_naming_the_file(tmp_path, flux_config):
    sd3 = flow_files.sd3_to_mmdit(tiny_flow.tiny_sd3_transformer())
    with pytest.raises(
        ModelError,
        match=r"the transformer's tensors is not a FLUX\.1 \(BFL layout\) transformer: it lacks the tensor 'img_in",
    ):
        load_flow_transformer(sd3, "flux", flux_config)
    broken = tmp_path / "flux1-dev-Q8_0.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 10)
    with pytest.raises(ModelError, match="'flux1-dev-Q8_0.gguf' is not a readable GGUF file"):
        load_flow_transformer(broken, "flux", flux_config)
    with pytest.raises(ModelError, match="unknown transformer storage 'nf4'; valid: auto, fp8, full"):
        load_flow_transformer(sd3, "flux", flux_config, "nf4")
    nf4 = {"double_blocks.0.img_attn.qkv.weight.quant_state.bitsandbytes__nf4": torch.zeros(8, dtype=torch.uint8)}
    with pytest.raises(ModelError, match="is a bitsandbytes NF4/FP4 file .* use the model's GGUF"):
        load_flow_transformer(nf4, "flux", flux_config)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_fp8_storage_computes_in_bf16_with_half_the_memory(files, flux_config, flux_components):
    """The goal's setting (bf16 compute) on the device: fp8 bytes on the GPU, an image close to bf16's."""
    import numpy as np
    from diffusers import FluxPipeline

    def draw(transformer):
        parts = {k: v.to("cuda", torch.bfloat16) if hasattr(v, "parameters") else v for k, v in flux_components.items()}
        pipe = FluxPipeline(**{**parts, "transformer": transformer.to("cuda")})
        pipe.set_progress_bar_config(disable=True)
        generator = torch.Generator("cuda").manual_seed(0)
        kwargs = {"height": 64, "width": 64, "num_inference_steps": 3, "max_sequence_length": 32}
        return pipe("a photo", generator=generator, output_type="np", **kwargs).images[0]

    bf16 = load_flow_transformer(files["bf16"], "flux", flux_config, "full", torch.bfloat16)
    fp8 = load_flow_transformer(files["bf16"], "flux", flux_config, "fp8", torch.bfloat16)
    assert parameter_bytes(fp8) < 0.75 * parameter_bytes(bf16)
    assert psnr(draw(fp8), draw(bf16)) > 35 and np.isfinite(draw(fp8)).all()


def test_a_lora_applies_on_an_fp8_transformer(files, flux_config, flux_components):
    """peft wraps the fp8 layers like plain ones (as diffusers' GGUF ones): the LoRA changes the image, weight 0
    undoes it, and the LoRA's own weights stay in the compute precision (not fp8)."""
    from diffusers import FluxPipeline

    transformer = load_flow_transformer(files["fp8"], "flux", flux_config, "auto", torch.float32)
    pipe = FluxPipeline(**{**flux_components, "transformer": transformer})
    before = image_with(flux_components, transformer)
    torch.manual_seed(1)
    lora = {}
    for layer in ("transformer_blocks.0.attn.to_q", "single_transformer_blocks.0.proj_mlp"):
        linear = transformer.get_submodule(layer)
        lora[f"transformer.{layer}.lora_A.weight"] = torch.randn(4, linear.in_features) * 0.5
        lora[f"transformer.{layer}.lora_B.weight"] = torch.randn(linear.out_features, 4) * 0.5
    pipe.load_lora_weights(lora, adapter_name="style")
    pipe.set_adapters(["style"], adapter_weights=[1.0])
    assert transformer.transformer_blocks[0].attn.to_q.lora_A["style"].weight.dtype == torch.float32
    assert psnr(image_with(flux_components, pipe.transformer), before) < 40
    pipe.set_adapters(["style"], adapter_weights=[0.0])
    assert psnr(image_with(flux_components, pipe.transformer), before) == float("inf")
