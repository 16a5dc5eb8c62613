"""Load user-uploaded checkpoints offline: A1111 single files, `.ckpt` (weights only), diffusers folders, VAEs.

A single file's architecture is detected from its tensor shapes; the detected diffusers config folder
(with the shipped CLIP tokenizer) is written once to a cache directory and each part is built
through diffusers' own single-file conversion, with no network.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openesd.errors import ModelError
from openesd.generation.models import _detect
from openesd.generation.models._common import (  # noqa: F401  (the loader's public names, kept here)
    CONFIGS,
    PICKLE_SUFFIXES,
    SAFE_SUFFIXES,
    LoadedModel,
    config_cache_dir,
    families,
    pipeline_class,
    place,
    read_state_dict,
    shapes_of,
    shapes_of_file,
    vae_from_ldm,
    write_json,
)
from openesd.generation.models._flow_detect import FLOW_FAMILIES
from openesd.generation.models._tokenizer import write_tokenizer

if TYPE_CHECKING:
    from openesd.generation.models.fastpath import FastPath

GGUF_SUFFIX = ".gguf"


def detect_architecture(state: dict[str, Any], path: Path) -> _detect.Architecture:
    try:
        arch = _detect.detect(shapes_of(state))
    except (_detect.UnknownArchitecture, KeyError, IndexError) as exc:
        raise ModelError(f"checkpoint {Path(path).name!r} is not an SD 1.x, SD 2.x or SDXL checkpoint: {exc}") from exc
    arch.prediction_type = _prediction(Path(path), arch.family)
    return arch


def _prediction(path: Path, family: str) -> str | None:
    """A sidecar `<name>.yaml` (A1111's convention) decides; without one, SD 2.x means v-prediction
    (the 768-v models are the common ones) and every other family means epsilon."""
    sidecar = path.with_suffix(".yaml")
    if sidecar.is_file():
        v = re.search(r"parameterization:\s*[\"']?v[\"']?\s*$", sidecar.read_text(), re.MULTILINE)
        return "v_prediction" if v else "epsilon"
    return "v_prediction" if family == "sd2" else None


def write_config_folder(arch: _detect.Architecture) -> Path:
    """The diffusers-format folder for `arch`, written once per distinct config (content-addressed)."""
    family = families()[arch.family]
    parts = {name: {**family.get(name, {}), **cfg} for name, cfg in arch.configs.items()}
    scheduler = {**families()["scheduler"], **family["scheduler"]}
    if arch.prediction_type:
        scheduler["prediction_type"] = arch.prediction_type
    tokenizers = {n: family[n] for n in ("tokenizer", "tokenizer_2") if n in family}
    blob = json.dumps([arch.family, parts, scheduler, tokenizers], sort_keys=True).encode()
    folder = config_cache_dir() / f"{arch.family}-{hashlib.sha256(blob).hexdigest()[:16]}"
    if (folder / "model_index.json").is_file():
        return folder
    config_cache_dir().mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=config_cache_dir(), prefix=".staging-"))
    for name, cfg in parts.items():
        write_json(staging / name / "config.json", cfg)
    write_json(staging / "scheduler" / "scheduler_config.json", scheduler)
    for name, overrides in tokenizers.items():
        write_tokenizer(staging / name, {**families()["tokenizer"], **overrides})
    write_json(staging / "model_index.json", {"_class_name": family["pipeline"], "_diffusers_version": "0.42.1"})
    try:
        staging.rename(folder)  # atomic: two workers writing the same folder both end up with one
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another worker won the race; its folder is the same
    return folder


def load_checkpoint(
    path: Path, device: Any, dtype: Any, vae_dtype: Any = None, options: FastPath | None = None
) -> LoadedModel:
    """A txt2img pipeline for the checkpoint at `path` (single file, GGUF transformer or diffusers folder) on
    `device`.

    `vae_dtype`: SDXL's VAE overflows in fp16, so on CUDA it may be kept in another precision. `options`: the
    worker's fast path; FLUX.1/SD 3 files read their transformer storage and text encoder offload from it."""
    path = Path(path)
    if path.is_dir():
        return _load_diffusers_folder(path, device, dtype, vae_dtype)
    if path.suffix.lower() == GGUF_SUFFIX:  # quantised FLUX.1 / SD 3.5 transformers (city96's conversions)
        from openesd.generation.models.flow import load_flow_gguf

        return load_flow_gguf(path, device, dtype, options)
    state = read_state_dict(path)
    if _detect.checkpoint_family(state.keys()) in FLOW_FAMILIES:
        from openesd.generation.models.flow import load_flow_checkpoint

        return load_flow_checkpoint(state, path, device, dtype, options)
    arch = detect_architecture(state, path)
    folder = write_config_folder(arch)
    components = _build_components(state, arch, folder, dtype)
    del state
    pipe = pipeline_class(arch.family)(**components)
    place(pipe, device, dtype, vae_dtype if arch.family.startswith("sdxl") else None)
    return LoadedModel(pipe=pipe, family=arch.family, inpainting=arch.inpainting, path=path)


def _build_components(state: dict[str, Any], arch: _detect.Architecture, folder: Path, dtype: Any) -> dict[str, Any]:
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    common = {"config": str(folder), "local_files_only": True, "torch_dtype": dtype}
    parts: dict[str, Any] = {
        "unet": UNet2DConditionModel.from_single_file(state, subfolder="unet", **common),
        "vae": AutoencoderKL.from_single_file(state, subfolder="vae", **common),
        "scheduler": EulerDiscreteScheduler.from_pretrained(str(folder), subfolder="scheduler"),
    }
    if "text_encoder" in arch.configs:
        parts["text_encoder"] = create_diffusers_clip_model_from_ldm(
            CLIPTextModel, state, subfolder="text_encoder", **common
        )
        parts["tokenizer"] = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"))
    if "text_encoder_2" in arch.configs:
        parts["text_encoder_2"] = create_diffusers_clip_model_from_ldm(
            CLIPTextModelWithProjection, state, subfolder="text_encoder_2", **common
        )
        parts["tokenizer_2"] = CLIPTokenizer.from_pretrained(str(folder / "tokenizer_2"))
    if arch.family == "sdxl_refiner":
        parts.update(text_encoder=None, tokenizer=None, requires_aesthetics_score=True)
    if arch.family in ("sd1", "sd2"):
        parts.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    return parts


def _load_diffusers_folder(path: Path, device: Any, dtype: Any, vae_dtype: Any = None) -> LoadedModel:
    import diffusers

    index = path / "model_index.json"
    if not index.is_file():
        raise ModelError(f"model folder {path.name!r} has no model_index.json (not a diffusers folder)")
    class_name = json.loads(index.read_text()).get("_class_name", "")
    family = {"StableDiffusionXLPipeline": "sdxl", "StableDiffusionXLImg2ImgPipeline": "sdxl_refiner"}.get(
        class_name, "sd1"
    )
    cls = getattr(diffusers, class_name, None) or diffusers.StableDiffusionPipeline
    kwargs = {"safety_checker": None, "requires_safety_checker": False} if family == "sd1" else {}
    pipe = cls.from_pretrained(str(path), local_files_only=True, torch_dtype=dtype, **kwargs)
    place(pipe, device, dtype, vae_dtype if family.startswith("sdxl") else None)
    inpainting = pipe.unet.config.in_channels == 9
    return LoadedModel(pipe=pipe, family=family, inpainting=inpainting, path=path)


def load_vae(path: Path, device: Any, dtype: Any, family: str) -> Any:
    """An A1111 VAE file (`.safetensors`/`.pt`, with or without the `first_stage_model.`/`vae.` prefix)."""
    state = read_state_dict(Path(path))
    state = {k.removeprefix(_detect.VAE).removeprefix("vae."): v for k, v in state.items()}
    try:
        vae = vae_from_ldm(state, family, dtype)
    except (KeyError, IndexError) as exc:
        raise ModelError(f"VAE file {Path(path).name!r} is not an AutoencoderKL VAE: missing {exc}") from exc
    return vae.to(device)
