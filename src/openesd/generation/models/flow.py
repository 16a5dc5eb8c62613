"""Load FLUX.1 and SD 3.x files offline into diffusers FluxPipeline / StableDiffusion3Pipeline.

A checkpoint may be the transformer alone (BFL's `flux1-dev.safetensors`, Stability's file without
encoders) or all-in-one (Forge/ComfyUI, Stability's with encoders): the parts a file lacks stay
None on the cached pipeline and are filled per job from `text_encoder` and `VAE` files
(`complete_pipeline`). The transformer is built through diffusers' single-file loader; the text
encoders are transformers models in their own key layout; the tokenizers ship with the package.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from openesd.errors import ModelError
from openesd.generation.models import _flow_detect as fd
from openesd.generation.models._flux_keys import bfl_to_diffusers

TRANSFORMER_CLASSES = {"flux": "FluxTransformer2DModel", "sd3": "SD3Transformer2DModel"}


def flow_dtype(dtype: Any) -> Any:
    """FLUX.1 and T5 overflow in float16 (black or NaN images): half precision means bfloat16 for them."""
    import torch

    return torch.bfloat16 if dtype == torch.float16 else dtype


def detect(shapes: fd.Shapes, path: Path) -> fd.FlowArchitecture:
    try:
        return fd.detect_flow(shapes)
    except (fd.UnsupportedFlowFile, KeyError, IndexError, ValueError) as exc:
        raise ModelError(f"checkpoint {Path(path).name!r} cannot be loaded: {exc}") from exc


def load_flow_checkpoint(state: dict[str, Any], path: Path, device: Any, dtype: Any) -> Any:
    """A LoadedModel for a FLUX.1/SD 3 file; the parts it lacks are None until a job brings them."""
    from openesd.generation.models._common import LoadedModel, place, pipeline_class, shapes_of

    dtype = flow_dtype(dtype)
    arch = detect(shapes_of(state), path)
    parts: dict[str, Any] = {
        "transformer": build_transformer(state, arch, dtype),
        "scheduler": scheduler_for(arch),
        **tokenizers(arch.family),
    }
    for component, role in fd.ENCODERS[arch.family]:
        prefix = arch.text_encoders.get(role)
        parts[component] = None if prefix is None else text_encoder_from_state(state, prefix, role, arch, dtype)
    parts["vae"] = vae_from_state(state, arch, dtype) if arch.vae_prefix else None
    pipe = pipeline_class(arch.family)(**parts)
    place(pipe, device, dtype, None)
    own = {name: parts[name] for name, _ in fd.ENCODERS[arch.family]} | {"vae": parts["vae"]}
    return LoadedModel(
        pipe=pipe, family=arch.family, inpainting=False, path=Path(path), own_parts=own, variant=arch.variant
    )


def transformer_config(arch: fd.FlowArchitecture) -> dict[str, Any]:
    from openesd.generation.models._common import families

    return {**families()[arch.family].get("transformer", {}), **arch.transformer}


def transformer_state(state: dict[str, Any], arch: fd.FlowArchitecture) -> dict[str, Any]:
    """The transformer's tensors in diffusers' keys (FLUX.1) or Stability's (SD 3, converted by diffusers)."""
    inner = {k[len(arch.transformer_prefix) :]: v for k, v in state.items() if k.startswith(arch.transformer_prefix)}
    if arch.family == "flux":
        # diffusers' own FLUX converter assumes the 3072-wide model; this one reads the widths from the config.
        return bfl_to_diffusers(inner, arch.transformer["num_layers"], arch.transformer["num_single_layers"])
    return inner


def build_transformer(state: dict[str, Any], arch: fd.FlowArchitecture, dtype: Any) -> Any:
    import diffusers

    folder = _config_folder("transformer", transformer_config(arch))
    cls = getattr(diffusers, TRANSFORMER_CLASSES[arch.family])
    tensors = transformer_state(state, arch)
    try:
        return cls.from_single_file(
            tensors, config=str(folder), subfolder="transformer", local_files_only=True, torch_dtype=dtype
        )
    except (KeyError, RuntimeError, ValueError) as exc:
        raise ModelError(f"the {arch.variant} transformer's weights do not fit its detected shape: {exc}") from exc


def _config_folder(subfolder: str, config: dict[str, Any]) -> Path:
    from openesd.generation.models._common import config_cache_dir

    blob = json.dumps(config, sort_keys=True).encode()
    folder = config_cache_dir() / f"flow-{hashlib.sha256(blob).hexdigest()[:16]}"
    target = folder / subfolder / "config.json"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_suffix(f".{hashlib.sha256(str(id(config)).encode()).hexdigest()[:8]}.tmp")
        staging.write_text(json.dumps(config, indent=1, sort_keys=True))
        staging.replace(target)  # atomic: two workers writing the same config both end up with one
    return folder


def scheduler_for(arch: fd.FlowArchitecture) -> Any:
    """FLUX.1 dev's resolution-dependent shift; schnell's fixed shift 1; SD 3's shift 3."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from openesd.generation.models._common import families

    family = families()[arch.family]
    config = dict(family["scheduler"])
    if arch.family == "flux" and not arch.transformer["guidance_embeds"]:
        config.update(family["scheduler_without_guidance"])
    config.pop("_class_name")
    return FlowMatchEulerDiscreteScheduler(**config)


def tokenizers(family: str) -> dict[str, Any]:
    """The shipped CLIP tokenizer(s) and the shipped T5 tokenizer, under the pipeline's names."""
    from transformers import CLIPTokenizer

    from openesd.generation.models._tokenizer import t5_tokenizer, write_tokenizer
    from openesd.generation.models._common import config_cache_dir, families

    out: dict[str, Any] = {}
    for name in ("tokenizer", "tokenizer_2"):
        if name not in families()[family]:
            continue
        settings = {**families()["tokenizer"], **families()[family][name]}
        blob = json.dumps(settings, sort_keys=True).encode()
        folder = config_cache_dir() / f"tokenizer-{hashlib.sha256(blob).hexdigest()[:16]}"
        if not (folder / "tokenizer_config.json").is_file():
            write_tokenizer(folder, settings)
        out[name] = CLIPTokenizer.from_pretrained(str(folder))
    out["tokenizer_2" if family == "flux" else "tokenizer_3"] = t5_tokenizer()
    return out


def text_encoder_from_state(state: dict[str, Any], prefix: str, role: str, arch_or_family: Any, dtype: Any) -> Any:
    """A transformers text encoder from its keys under `prefix` (transformers' own layout)."""
    family = arch_or_family if isinstance(arch_or_family, str) else arch_or_family.family
    tensors = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return build_text_encoder(tensors, role, family, dtype)


def build_text_encoder(tensors: dict[str, Any], role: str, family: str, dtype: Any) -> Any:
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    from openesd.generation.models._common import families, shapes_of

    shapes = shapes_of(tensors)
    settings = families()[family][role]
    if role == "t5":
        config: Any = T5Config(**{**fd.t5_config(shapes), **settings})
        cls: Any = T5EncoderModel
        tensors = {k: v for k, v in tensors.items() if k != "encoder.embed_tokens.weight"}  # tied to `shared`
    else:
        config = CLIPTextConfig(**{**fd.clip_config(shapes), **settings})
        if family == "flux":  # FLUX.1 takes CLIP-L's pooled output: no projection
            cls = CLIPTextModel
            tensors = {
                k.removeprefix("text_model."): v for k, v in tensors.items() if not k.startswith("text_projection")
            }
        else:
            cls = CLIPTextModelWithProjection
            if "text_projection.weight" not in tensors:  # SD 3's CLIP-L is often saved without it: the identity
                tensors = {**tensors, "text_projection.weight": torch.eye(config.hidden_size)}
    model, info = cls.from_pretrained(
        None, config=config, state_dict=tensors, torch_dtype=dtype, output_loading_info=True
    )
    missing = [k for k in info["missing_keys"] if "embed_tokens" not in k and "position_ids" not in k]
    if missing:
        raise ModelError(f"the {fd.ROLE_NAMES[role]} text encoder lacks weights: {', '.join(sorted(missing)[:5])}")
    return model.eval()


def load_text_encoder(path: Path, role: str, family: str, device: Any, dtype: Any) -> Any:
    """A `text_encoder` file (transformers' keys, as `clip_l.safetensors` and `t5xxl_fp16.safetensors` are
    shared; also under a `text_encoders.<name>.transformer.` prefix) as the `role` encoder of `family`."""
    from openesd.generation.models._common import read_state_dict

    state = read_state_dict(Path(path))
    prefix = fd.TEXT_PREFIXES[role] if any(k.startswith(fd.TEXT_PREFIXES[role]) for k in state) else ""
    try:
        model = text_encoder_from_state(state, prefix, role, family, flow_dtype(dtype))
    except (KeyError, IndexError) as exc:
        raise ModelError(
            f"text_encoder file {Path(path).name!r} is not a {fd.ROLE_NAMES[role]}: missing {exc}"
        ) from exc
    return model.to(device)


def vae_from_state(state: dict[str, Any], arch: fd.FlowArchitecture, dtype: Any) -> Any:
    """The 16-channel VAE inside an all-in-one file (`vae.*` or `first_stage_model.*`)."""
    from openesd.generation.models._common import vae_from_ldm

    prefix = arch.vae_prefix or ""
    return vae_from_ldm({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}, arch.family, dtype)
