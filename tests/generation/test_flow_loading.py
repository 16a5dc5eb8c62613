"""FLUX.1 and SD 3.5 files as users upload them load into pipelines that draw what the in-memory ones draw.

Every file is written by `tests.support.flow_files` from `tiny_flow`'s models; the reference pipeline
is built from the same models, with the shipped T5 tokenizer the loader also uses.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from openesd.errors import ModelError
from tests.support import flow_files as ff

torch = pytest.importorskip("torch")

CALL = dict(prompt="a photo of a red cat", height=64, width=64, num_inference_steps=2, output_type="np")


@pytest.fixture(scope="session")
def flow_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("flow-files")


@pytest.fixture(scope="session")
def loose_files(flow_dir) -> dict[str, Path]:
    """clip_l / clip_g / t5xxl / ae / sd3_vae as the separate files users download."""
    files = {
        "clip_l": flow_dir / "clip_l.safetensors",
        "clip_g": flow_dir / "clip_g.safetensors",
        "t5": flow_dir / "t5xxl_fp16.safetensors",
        "ae": flow_dir / "ae.safetensors",
        "sd3_vae": flow_dir / "sd3_vae.safetensors",
    }
    ff.write_tiny_clip_l(files["clip_l"])
    ff.write_tiny_clip_g(files["clip_g"])
    ff.write_tiny_t5(files["t5"])
    ff.write_tiny_flow_vae(files["ae"], "flux")
    ff.write_tiny_flow_vae(files["sd3_vae"], "sd3")
    return files


def _load(path: Path) -> object:
    from openesd.generation.models.loading import load_checkpoint

    return load_checkpoint(path, "cpu", torch.float32)


def _complete(loaded, models: dict, overrides: dict | None = None):
    from openesd.generation.models.flow import load_text_encoder
    from openesd.generation.models.flow_parts import complete_pipeline
    from openesd.generation.models.loading import load_vae

    return complete_pipeline(
        loaded,
        {k: [str(p) for p in v] for k, v in models.items()},
        overrides or {},
        lambda path, role: load_text_encoder(path, role, loaded.family, "cpu", torch.float32),
        lambda path: load_vae(path, "cpu", torch.float32, loaded.family),
    )


def _draw(pipe, **extra):
    return pipe(generator=torch.Generator().manual_seed(3), **CALL, **extra).images


def _reference(family: str, components: dict):
    from diffusers import FluxPipeline, StableDiffusion3Pipeline

    from openesd.generation.models._tokenizer import t5_tokenizer

    if family == "flux":
        pipe = FluxPipeline(**{**components, "tokenizer_2": t5_tokenizer()})
    else:
        pipe = StableDiffusion3Pipeline(**{**components, "tokenizer_3": t5_tokenizer()})
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def flux_bfl(flow_dir):
    path = flow_dir / "flux1-dev.safetensors"
    return path, ff.write_tiny_flux_checkpoint(path, layout="bfl")


def test_a_flux_all_in_one_file_draws_what_the_in_memory_pipeline_draws(flow_dir):
    path = flow_dir / "flux1-dev-fp8-aio.safetensors"
    components = ff.write_tiny_flux_checkpoint(path, layout="all_in_one")
    loaded = _load(path)
    assert (loaded.family, loaded.variant, type(loaded.pipe).__name__) == ("flux", "FLUX.1 dev", "FluxPipeline")
    assert _complete(loaded, {}) is None  # everything is inside: no extra file needed
    got = _draw(loaded.pipe, max_sequence_length=32)
    want = _draw(_reference("flux", components), max_sequence_length=32)
    assert abs(got - want).max() == 0.0


def test_a_bfl_transformer_file_runs_with_separate_text_encoders_and_vae(flux_bfl, loose_files):
    path, components = flux_bfl
    loaded = _load(path)
    assert loaded.pipe.text_encoder is None and loaded.pipe.vae is None
    models = {"text_encoder": [loose_files["t5"], loose_files["clip_l"]], "VAE": [loose_files["ae"]]}
    assert _complete(loaded, models) == loose_files["ae"]
    assert type(loaded.pipe.text_encoder).__name__ == "CLIPTextModel"  # FLUX takes CLIP-L's pooled output
    got = _draw(loaded.pipe, max_sequence_length=32)
    want = _draw(_reference("flux", components), max_sequence_length=32)
    assert abs(got - want).max() == 0.0


@pytest.mark.parametrize(
    ("models", "needed"),
    [
        ({"text_encoder": ["clip_l"], "VAE": ["ae"]}, "T5-XXL text encoder"),
        ({"text_encoder": ["t5"], "VAE": ["ae"]}, "CLIP-L text encoder"),
        ({"text_encoder": ["t5", "clip_l"]}, "VAE"),
    ],
)
def test_a_missing_part_fails_naming_the_file_type_it_needs(flux_bfl, loose_files, models, needed):
    loaded = _load(flux_bfl[0])
    with pytest.raises(ModelError) as error:
        _complete(loaded, {kind: [loose_files[n] for n in names] for kind, names in models.items()})
    message = str(error.value)
    assert needed in message and "flux1-dev.safetensors" in message
    file_type = "VAE" if needed == "VAE" else "text_encoder"
    assert f"models['{file_type}']" in message and "forge_additional_modules" in message


def test_forge_additional_modules_picks_the_files_by_path_or_name(flux_bfl, loose_files):
    loaded = _load(flux_bfl[0])
    models = {"text_encoder": [loose_files["t5"], loose_files["clip_l"]], "VAE": [loose_files["ae"]]}
    modules = ["/opt/forge/models/VAE/ae.safetensors", "models\\text_encoder\\clip_l.safetensors", "t5xxl_fp16"]
    assert _complete(loaded, models, {"forge_additional_modules": modules}) == loose_files["ae"]
    with pytest.raises(ModelError, match="'t5xxl_fp8.safetensors', which is not among"):
        _complete(loaded, models, {"forge_additional_modules": ["t5xxl_fp8.safetensors"]})


def test_flux_schnell_is_told_from_dev_by_its_missing_guidance_embedding(flow_dir):
    path = flow_dir / "flux1-schnell.safetensors"
    ff.write_tiny_flux_checkpoint(path, layout="all_in_one", guidance=False)
    loaded = _load(path)
    assert loaded.variant == "FLUX.1 schnell"
    assert loaded.pipe.transformer.config.guidance_embeds is False
    assert loaded.pipe.scheduler.config.use_dynamic_shifting is False and loaded.pipe.scheduler.config.shift == 1.0


def test_an_sd35_file_with_its_text_encoders_draws_what_the_in_memory_pipeline_draws(flow_dir):
    path = flow_dir / "sd3.5_medium_incl_clips_t5.safetensors"
    components = ff.write_tiny_sd35_checkpoint(path, with_text_encoders=True)
    loaded = _load(path)
    assert (loaded.family, loaded.variant) == ("sd3", "SD 3.5 Medium")
    assert list(loaded.pipe.transformer.config.dual_attention_layers) == [0]
    assert _complete(loaded, {}) is None
    got = _draw(loaded.pipe, max_sequence_length=32, guidance_scale=4.0)
    want = _draw(_reference("sd3", components), max_sequence_length=32, guidance_scale=4.0)
    assert abs(got - want).max() == 0.0


def test_an_sd35_file_without_encoders_takes_clip_l_clip_g_and_t5_files_by_their_widths(flow_dir, loose_files):
    path = flow_dir / "sd3.5_medium.safetensors"
    components = ff.write_tiny_sd35_checkpoint(path, with_text_encoders=False)
    loaded = _load(path)
    with pytest.raises(ModelError, match="CLIP-L text encoder"):
        _complete(loaded, {})
    # Listed in any order: each file goes where its shapes fit.
    models = {"text_encoder": [loose_files["clip_g"], loose_files["t5"], loose_files["clip_l"]]}
    assert _complete(loaded, models) is None  # the file's own VAE
    got = _draw(loaded.pipe, max_sequence_length=32)
    want = _draw(_reference("sd3", components), max_sequence_length=32)
    assert abs(got - want).max() == 0.0


def _bfl_with(extra: dict, flow_dir: Path, name: str, drop: tuple[str, ...] = ()) -> Path:
    from safetensors.torch import load_file, save_file

    source = flow_dir / "flux1-dev.safetensors"
    if not source.is_file():
        ff.write_tiny_flux_checkpoint(source, layout="bfl")
    state = {k: v for k, v in load_file(str(source)).items() if not k.startswith(drop)}
    save_file({**state, **extra}, str(flow_dir / name))
    return flow_dir / name


@pytest.mark.parametrize(
    ("name", "extra", "drop", "named"),
    [
        ("chroma.safetensors", {"distilled_guidance_layer.in_proj.weight": (8, 4)}, ("guidance_in",), "Chroma"),
        ("flux1-fill-dev.safetensors", {"img_in.weight": (32, 384)}, (), "FLUX.1 Fill/Depth/Canny"),
        (
            "aura.safetensors",
            {"cond_seq_linear.weight": (8, 4), "double_layers.0.attn.w1q.weight": (8, 8)},
            ("double_blocks", "single_blocks"),
            "AuraFlow",
        ),
    ],
)
def test_an_unsupported_family_is_refused_by_name(flow_dir, name, extra, drop, named):
    tensors = {k: torch.zeros(shape) for k, shape in extra.items()}
    path = _bfl_with(tensors, flow_dir, name, drop)
    with pytest.raises(ModelError) as error:
        _load(path)
    assert named in str(error.value) and name in str(error.value)


def test_the_shipped_t5_tokenizer_is_t5_v1_1s():
    from openesd.generation.models._tokenizer import t5_tokenizer

    tokenizer = t5_tokenizer()
    assert len(tokenizer) == 32100  # 32000 pieces + 100 extra ids
    assert tokenizer("a photo of a cat").input_ids == [3, 9, 1202, 13, 3, 9, 1712, 1]
    assert tokenizer.convert_ids_to_tokens(32099) == "<extra_id_0>"


def test_a_worker_loads_each_extra_file_once_and_puts_the_checkpoints_own_parts_back(generator, flow_dir, loose_files):
    path = flow_dir / "flux1-dev-aio-worker.safetensors"
    ff.write_tiny_flux_checkpoint(path, layout="all_in_one")
    loaded = generator._load(path)
    own_vae, own_t5 = loaded.own_parts["vae"], loaded.own_parts["text_encoder_2"]
    models = {"text_encoder": [str(loose_files["t5"])], "VAE": [str(loose_files["sd3_vae"])]}
    overrides = {"forge_additional_modules": ["t5xxl_fp16.safetensors", "sd3_vae.safetensors"]}
    assert generator._flow_parts(loaded, models, overrides) == loose_files["sd3_vae"]
    swapped = loaded.pipe
    assert swapped.vae is not own_vae and swapped.text_encoder_2 is not own_t5
    loads = generator.cache.loads
    generator._flow_parts(loaded, models, overrides)  # the same files again: nothing is loaded, nothing rebuilt
    assert generator.cache.loads == loads and loaded.pipe is swapped
    # A job listing files uses them even unnamed; one that lists none gets the file's own parts back.
    assert generator._flow_parts(loaded, {"VAE": models["VAE"]}, {}) is None
    assert loaded.pipe.text_encoder_2 is own_t5
    assert generator._flow_parts(loaded, {}, {}) is None
    assert loaded.pipe.vae is own_vae and loaded.pipe.text_encoder_2 is own_t5
    assert loaded.pipe.vae_scale_factor == 2  # derived from the VAE in the pipeline (tiny: two levels)


def test_an_fp8_stored_flux_file_computes_in_the_workers_precision(flow_dir):
    """Its block layers stay fp8 (tests/generation/quant/test_quant_loading.py); the rest is widened."""
    from openesd.generation.models.loading import load_checkpoint
    from safetensors.torch import load_file, save_file

    source = flow_dir / "flux1-dev-aio-source.safetensors"
    ff.write_tiny_flux_checkpoint(source, layout="all_in_one")
    state = {
        k: v.to(torch.float8_e4m3fn) if v.ndim == 2 and not k.startswith("vae.") else v
        for k, v in load_file(str(source)).items()
    }
    save_file(state, str(flow_dir / "flux1-dev-fp8.safetensors"))
    loaded = load_checkpoint(flow_dir / "flux1-dev-fp8.safetensors", "cpu", torch.bfloat16)
    assert {loaded.pipe.transformer.dtype, loaded.pipe.text_encoder_2.dtype} == {torch.bfloat16}
    image = _draw(loaded.pipe, max_sequence_length=32)
    assert bool((image == image).all()) and image.std() > 0.01  # a picture, not NaNs or a flat colour


def test_an_sd3_clip_l_saved_without_its_projection_gets_the_identity(flow_dir):
    from safetensors.torch import load_file, save_file

    source = flow_dir / "sd3.5_medium_incl_clips_t5.safetensors"
    if not source.is_file():
        ff.write_tiny_sd35_checkpoint(source, with_text_encoders=True)
    state = load_file(str(source))
    del state["text_encoders.clip_l.transformer.text_projection.weight"]
    save_file(state, str(flow_dir / "sd3-no-projection.safetensors"))
    loaded = _load(flow_dir / "sd3-no-projection.safetensors")
    projection = loaded.pipe.text_encoder.text_projection.weight
    assert torch.equal(projection, torch.eye(projection.shape[0]))
