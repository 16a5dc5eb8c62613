"""Load FLUX.1 and SD 3.x files offline into diffusers FluxPipeline / StableDiffusion3Pipeline.

A checkpoint may be the transformer alone (BFL's `flux1-dev.safetensors`, Stability's file without
encoders) or all-in-one (Forge/ComfyUI, Stability's with encoders), or a GGUF transformer (city96's
`flux1-dev-Q8_0.gguf`): the parts a file lacks stay None on the cached pipeline and are filled per
job from `text_encoder` and `VAE` files (`complete_pipeline`). The transformer is built by
`generation.quant` in the storage the worker's settings ask for (fp8, GGUF or full); the text
encoders are transformers models in their own key layout; the tokenizers ship with the package.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openesd.errors import ModelError
from openesd.generation.models import _flow_detect as fd
from openesd.modelfiles.keys import checkpoint_family

if TYPE_CHECKING:
    from openesd.generation.models._common import LoadedModel
    from openesd.generation.models.fastpath import FastPath


def flow_dtype(dtype: Any) -> Any:
    """FLUX.1 and T5 overflow in float16 (black or NaN images): half precision means bfloat16 for them."""
    import torch

    return torch.bfloat16 if dtype == torch.float16 else dtype


def detect(shapes: fd.Shapes, path: Path) -> fd.FlowArchitecture:
    try:
        return fd.detect_flow(shapes)
    except (fd.UnsupportedFlowFile, KeyError, IndexError, ValueError) as exc:
        raise ModelError(f"checkpoint {Path(path).name!r} cannot be loaded: {exc}") from exc


def load_flow_checkpoint(
    state: dict[str, Any], path: Path, device: Any, dtype: Any, options: FastPath | None = None
) -> LoadedModel:
    """A LoadedModel for a FLUX.1/SD 3 file; the parts it lacks are None until a job brings them."""
    from openesd.generation.models._common import shapes_of
    from openesd.generation.models.fastpath import FastPath

    options = options or FastPath()
    dtype = flow_dtype(dtype)
    arch = detect(shapes_of(state), path)
    transformer = build_transformer(state, arch, dtype, options.flow_weights)
    return _assemble(arch, transformer, state, path, device, dtype, options)


def load_flow_gguf(path: Path, device: Any, dtype: Any, options: FastPath | None = None) -> LoadedModel:
    """A LoadedModel for a GGUF transformer file (detected from its header; the text encoders and VAE come
    per job, as for a BFL transformer-only file). Its layers stay in the file's quantisation."""
    from openesd.generation.models.fastpath import FastPath
    from openesd.generation.quant import load_flow_transformer

    options = options or FastPath()
    dtype = flow_dtype(dtype)
    shapes = gguf_shapes(path)
    if checkpoint_family(shapes.keys()) == "unknown":  # an LLM's or a UNet's GGUF: name what was expected
        first = next(iter(shapes), "none")
        raise ModelError(
            f"GGUF file {Path(path).name!r} holds no FLUX.1 or SD 3.5 transformer (its first tensor is {first!r}); "
            "a .gguf checkpoint must be a FLUX.1 or SD 3.5 transformer in the BFL or Stability layout"
        )
    arch = detect(shapes, path)
    arch.text_encoders, arch.vae_prefix = {}, None  # GGUF files hold the transformer alone
    config = transformer_config(arch)
    with _misfit(arch):
        transformer = load_flow_transformer(Path(path), arch.family, config, options.flow_weights, dtype)
    return _assemble(arch, transformer, {}, path, device, dtype, options)


def gguf_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> logical shape (torch order) from a GGUF file's header; no tensor data is read."""
    from openesd.modelfiles.ggufheaders import read_gguf_header
    from openesd.modelfiles.headers import InvalidModelFile

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path.name!r} not found")
    try:
        with path.open("rb") as stream:
            return read_gguf_header(stream, path.stat().st_size).shapes
    except InvalidModelFile as exc:
        raise ModelError(f"model file {path.name!r} is not a readable GGUF file: {exc}") from exc


def _assemble(
    arch: fd.FlowArchitecture,
    transformer: Any,
    state: dict[str, Any],
    path: Path,
    device: Any,
    dtype: Any,
    options: FastPath,
) -> LoadedModel:
    """The pipeline around `transformer`, with the text encoders and VAE `state` holds, on `device`."""
    from openesd.generation.models._common import LoadedModel, pipeline_class, place
    from openesd.generation.quant import offload_text_encoders

    parts: dict[str, Any] = {"transformer": transformer, "scheduler": scheduler_for(arch), **tokenizers(arch.family)}
    for component, role in fd.ENCODERS[arch.family]:
        prefix = arch.text_encoders.get(role)
        parts[component] = None if prefix is None else text_encoder_from_state(state, prefix, role, arch, dtype)
    parts["vae"] = vae_from_state(state, arch, dtype) if arch.vae_prefix else None
    pipe = pipeline_class(arch.family)(**parts)
    encoders = {name for name, _ in fd.ENCODERS[arch.family]}
    if options.text_encoder_offload == "none":
        place(pipe, device, dtype, None)
    else:  # the encoders never land on the device whole: T5-XXL beside an fp8 FLUX.1 would not fit 24 GB
        for name, module in pipe.components.items():
            if name not in encoders and hasattr(module, "parameters"):
                module.to(device)
        pipe.set_progress_bar_config(disable=True)
    offload_text_encoders(pipe, options.text_encoder_offload, device)
    own = {name: parts[name] for name, _ in fd.ENCODERS[arch.family]} | {"vae": parts["vae"]}
    return LoadedModel(
        pipe=pipe, family=arch.family, inpainting=False, path=Path(path), own_parts=own, variant=arch.variant
    )


def transformer_config(arch: fd.FlowArchitecture) -> dict[str, Any]:
    from openesd.generation.models._common import families

    return {**families()[arch.family].get("transformer", {}), **arch.transformer}


def build_transformer(state: dict[str, Any], arch: fd.FlowArchitecture, dtype: Any, mode: str = "auto") -> Any:
    """The transformer in the storage `mode` asks for (FastPath.flow_weights): `auto` keeps an fp8 file fp8,
    `fp8` stores a full file's block layers as e4m3, `full` widens to `dtype`."""
    from openesd.generation.quant import load_flow_transformer

    inner = {k[len(arch.transformer_prefix) :]: v for k, v in state.items() if k.startswith(arch.transformer_prefix)}
    with _misfit(arch):
        return load_flow_transformer(inner, arch.family, transformer_config(arch), mode, dtype)


@contextmanager
def _misfit(arch: fd.FlowArchitecture) -> Iterator[None]:
    """torch's and diffusers' errors for weights that do not fit the detected config, as a ModelError."""
    try:
        yield
    except (KeyError, RuntimeError, ValueError) as exc:
        raise ModelError(f"the {arch.variant} transformer's weights do not fit its detected shape: {exc}") from exc


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
