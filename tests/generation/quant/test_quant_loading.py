"""Quantised FLUX.1 / SD 3.5 files through the worker's loader: `load_checkpoint`, the job's parts, the settings.

The files are the ones users upload (tests.support.flow_files, tests.support.gguf_files), written from
`tiny_flow`'s seeded models; the reference is the full-precision BFL file loaded the same way.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from openesd.errors import ModelError
from openesd.generation.quant.transformer import BLOCKS
from tests.generation.quant.conftest import parameter_bytes, psnr
from tests.support import flow_files as ff
from tests.support.gguf_files import write_gguf

torch = pytest.importorskip("torch")

# As in test_quant_transformer.py: fp8 and GGUF Q8_0 draw within this of the full file's image (measured
# 65-72 dB); an unrelated transformer of the same shapes is at 18 dB.
NEARLY_SAME_DB = 50.0
CALL = {"prompt": "a photo of a red house", "height": 64, "width": 64, "num_inference_steps": 3}
CALL |= {"max_sequence_length": 32, "output_type": "np"}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """flux1-dev as BFL bf16/fp32, its fp8 and GGUF Q8_0 conversions, and the loose CLIP-L, T5 and VAE files."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("quant-loading")
    paths = {name: folder / name for name in ("flux1-dev.safetensors", "clip_l.safetensors", "t5xxl_fp16.safetensors")}
    components = ff.write_tiny_flux_checkpoint(paths["flux1-dev.safetensors"], layout="bfl")
    ff.write_tiny_clip_l(paths["clip_l.safetensors"])
    ff.write_tiny_t5(paths["t5xxl_fp16.safetensors"])
    ff.write_tiny_flow_vae(folder / "ae.safetensors", "flux")
    bfl = ff.flux_to_bfl(components["transformer"])
    fp8 = {k: v.to(torch.float8_e4m3fn) if _block_weight(k, v) else v for k, v in bfl.items()}
    save_file({k: v.contiguous() for k, v in fp8.items()}, str(folder / "flux1-dev-fp8.safetensors"))
    return {
        "full": paths["flux1-dev.safetensors"],
        "fp8": folder / "flux1-dev-fp8.safetensors",
        "Q8_0": write_gguf(bfl, folder / "flux1-dev-Q8_0.gguf", "Q8_0"),
        "clip_l": paths["clip_l.safetensors"],
        "t5": paths["t5xxl_fp16.safetensors"],
        "ae": folder / "ae.safetensors",
    }


def _block_weight(key: str, tensor) -> bool:
    return key.startswith(("double_blocks.", "single_blocks.")) and key.endswith(".weight") and tensor.ndim == 2


def _job(files: dict[str, Path]) -> dict[str, list[str]]:
    return {"text_encoder": [str(files["t5"]), str(files["clip_l"])], "VAE": [str(files["ae"])]}


def _load(path: Path, weights: str = "auto"):
    """load_checkpoint on the CPU in fp32, then the job's text encoders and VAE, as a worker does."""
    from openesd.generation.models.fastpath import FastPath
    from openesd.generation.models.flow import load_text_encoder
    from openesd.generation.models.flow_parts import complete_pipeline
    from openesd.generation.models.loading import load_checkpoint, load_vae

    loaded = load_checkpoint(path, "cpu", torch.float32, options=FastPath(flow_weights=weights))
    files = {"text_encoder": [path.with_name("t5xxl_fp16.safetensors"), path.with_name("clip_l.safetensors")]}
    complete_pipeline(
        loaded,
        {**files, "VAE": [path.with_name("ae.safetensors")]},
        {},
        lambda file, role: load_text_encoder(file, role, loaded.family, "cpu", torch.float32),
        lambda file: load_vae(file, "cpu", torch.float32, loaded.family),
    )
    return loaded


def _draw(pipe):
    return pipe(generator=torch.Generator().manual_seed(0), **CALL).images[0]


def _block_linears(transformer) -> list:
    return [m for n, m in transformer.named_modules() if isinstance(m, torch.nn.Linear) and n.startswith(BLOCKS)]


@pytest.fixture(scope="module")
def full(files):
    loaded = _load(files["full"])
    return loaded, _draw(loaded.pipe)


def test_a_gguf_q8_checkpoint_with_the_jobs_parts_draws_nearly_the_full_files_image(files, full):
    from diffusers.quantizers.gguf.utils import GGUFLinear

    reference, image = full
    loaded = _load(files["Q8_0"])
    assert (loaded.family, loaded.variant, type(loaded.pipe).__name__) == ("flux", "FLUX.1 dev", "FluxPipeline")
    assert loaded.own_parts == {"text_encoder": None, "text_encoder_2": None, "vae": None}  # the job brings them
    assert all(isinstance(m, GGUFLinear) for m in _block_linears(loaded.pipe.transformer))
    assert parameter_bytes(loaded.pipe.transformer) < 0.4 * parameter_bytes(reference.pipe.transformer)
    assert psnr(_draw(loaded.pipe), image) > NEARLY_SAME_DB


def test_an_fp8_file_stays_fp8_under_auto_and_is_widened_under_full(files, full):
    from openesd.generation.quant.fp8 import Fp8Linear

    reference, image = full
    kept = _load(files["fp8"], "auto")
    layers = _block_linears(kept.pipe.transformer)
    assert layers and all(isinstance(m, Fp8Linear) and m.weight.dtype == torch.uint8 for m in layers)
    assert kept.pipe.transformer.dtype == torch.float32  # computed in the worker's precision
    assert parameter_bytes(kept.pipe.transformer) < 0.6 * parameter_bytes(reference.pipe.transformer)
    assert psnr(_draw(kept.pipe), image) > NEARLY_SAME_DB
    widened = _load(files["fp8"], "full")
    assert not any(isinstance(m, Fp8Linear) for m in widened.pipe.transformer.modules())
    assert parameter_bytes(widened.pipe.transformer) == parameter_bytes(reference.pipe.transformer)


def test_the_worker_settings_choose_the_storage_and_offload_the_jobs_text_encoders(files, full, tmp_path):
    """OPENESD_FLOW_TRANSFORMER_WEIGHTS=fp8 stores a full file as fp8 (a GGUF file stays GGUF);
    OPENESD_TEXT_ENCODER_OFFLOAD=cpu hooks the job's encoders, and the picture is the one without offload."""
    from diffusers.quantizers.gguf.utils import GGUFLinear

    from openesd.generation import Generator
    from openesd.generation.models.fastpath import FastPath
    from openesd.generation.quant.fp8 import Fp8Linear
    from openesd.settings import Settings

    settings = Settings(data_dir=tmp_path, flow_transformer_weights="fp8", text_encoder_offload="cpu")
    generator = Generator(device="cpu", fastpath=FastPath.from_settings(settings))
    loaded = generator._load(files["full"])
    assert all(isinstance(m, Fp8Linear) for m in _block_linears(loaded.pipe.transformer))
    generator._flow_parts(loaded, _job(files), {})
    for encoder in (loaded.pipe.text_encoder, loaded.pipe.text_encoder_2):
        assert encoder._forward_pre_hooks and encoder.device.type == "cpu"
    fp8_image = _draw(loaded.pipe)
    assert psnr(fp8_image, full[1]) > NEARLY_SAME_DB
    plain = Generator(device="cpu", fastpath=FastPath(flow_weights="fp8"))
    without = plain._load(files["full"])
    plain._flow_parts(without, _job(files), {})
    assert not without.pipe.text_encoder_2._forward_pre_hooks
    assert psnr(_draw(without.pipe), fp8_image) == float("inf")
    gguf = generator._load(files["Q8_0"])
    assert isinstance(gguf.pipe.transformer.transformer_blocks[0].attn.to_q, GGUFLinear)  # the file decides


def test_an_sd35_gguf_checkpoint_is_detected_from_its_header(tmp_path):
    from diffusers.quantizers.gguf.utils import GGUFLinear

    from openesd.generation.models.loading import load_checkpoint
    from tests.support import tiny_flow

    mmdit = {f"model.diffusion_model.{k}": v for k, v in ff.sd3_to_mmdit(tiny_flow.tiny_sd3_transformer()).items()}
    path = write_gguf(mmdit, tmp_path / "sd3.5_medium-Q8_0.gguf", arch="sd3")
    loaded = load_checkpoint(path, "cpu", torch.float32)
    assert (loaded.family, loaded.variant, type(loaded.pipe).__name__) == (
        "sd3",
        "SD 3.5 Medium",
        "StableDiffusion3Pipeline",
    )
    assert isinstance(loaded.pipe.transformer.transformer_blocks[0].attn.to_q, GGUFLinear)
    assert loaded.pipe.text_encoder_3 is None and loaded.pipe.vae is None


def test_gguf_files_that_are_not_a_flow_transformer_fail_naming_the_file(tmp_path):
    from openesd.generation.models.loading import load_checkpoint

    broken = tmp_path / "flux1-dev-Q8_0.gguf"
    broken.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 40)
    with pytest.raises(ModelError, match=r"'flux1-dev-Q8_0\.gguf' is not a readable GGUF file"):
        load_checkpoint(broken, "cpu", torch.float32)
    llm = write_gguf({"token_embd.weight": torch.zeros(8, 32)}, tmp_path / "llama-Q8_0.gguf")
    with pytest.raises(ModelError, match=r"'llama-Q8_0\.gguf' holds no FLUX\.1 or SD 3\.5 transformer .*'token_embd"):
        load_checkpoint(llm, "cpu", torch.float32)
    chroma = {"distilled_guidance_layer.in_proj.weight": torch.zeros(8, 32), "img_in.weight": torch.zeros(8, 64)}
    with pytest.raises(ModelError, match=r"'chroma-Q8_0\.gguf' cannot be loaded: it is a Chroma model"):
        load_checkpoint(write_gguf(chroma, tmp_path / "chroma-Q8_0.gguf"), "cpu", torch.float32)


def test_an_all_in_one_files_own_text_encoders_are_offloaded_once_placed(tmp_path):
    """`swap` on the file's own CLIP-L and T5: hooked right after loading, and the picture does not change."""
    from openesd.generation.models.fastpath import FastPath
    from openesd.generation.models.loading import load_checkpoint

    path = tmp_path / "flux1-dev-aio.safetensors"
    ff.write_tiny_flux_checkpoint(path, layout="all_in_one")
    swapped = load_checkpoint(path, "cpu", torch.float32, options=FastPath(text_encoder_offload="swap"))
    assert swapped.pipe.text_encoder._forward_pre_hooks and swapped.pipe.text_encoder_2._forward_hooks
    resident = load_checkpoint(path, "cpu", torch.float32)
    assert not resident.pipe.text_encoder_2._forward_pre_hooks
    assert psnr(_draw(swapped.pipe), _draw(resident.pipe)) == float("inf")


def test_offloaded_encoders_never_go_to_the_device(tmp_path):
    """The meta device stands in for a GPU: what is put there loses its values, so an encoder that went there
    and back would fail. The transformer and VAE go; the file's own CLIP-L and T5 stay in CPU memory."""
    from openesd.generation.models.fastpath import FastPath
    from openesd.generation.models.loading import load_checkpoint

    path = tmp_path / "flux1-dev-aio.safetensors"
    ff.write_tiny_flux_checkpoint(path, layout="all_in_one")
    for mode in ("cpu", "swap"):
        loaded = load_checkpoint(path, "meta", torch.float32, options=FastPath(text_encoder_offload=mode))
        assert loaded.pipe.transformer.device.type == "meta" and loaded.pipe.vae.device.type == "meta"
        encoders = (loaded.pipe.text_encoder, loaded.pipe.text_encoder_2)
        assert all(e.device.type == "cpu" and not any(p.is_meta for p in e.parameters()) for e in encoders)
