"""A FLUX.1 or SD 3.5 transformer file as a diffusers module, stored as its file or the worker's setting asks.

Storage modes (`flow_transformer_weights`): `auto` keeps what the file holds (an fp8 file stays fp8, a
bf16 file is used in the pipeline's precision), `fp8` stores every linear layer of the transformer
blocks as e4m3 with a per-tensor scale whatever the file holds, `full` widens an fp8 file to the
pipeline's precision. A `.gguf` file is always used as GGUF (its quantisation is the file's).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from openesd.errors import ModelError
from openesd.generation.quant._bfl import PREFIX
from openesd.generation.quant._layouts import CLASSES, convert

Mode = Literal["auto", "fp8", "full"]
MODES: tuple[str, ...] = ("auto", "fp8", "full")
# Only the blocks' linear layers go to fp8: the embedders and the final layer are small and the most sensitive.
BLOCKS = ("transformer_blocks.", "single_transformer_blocks.")
# ComfyUI's "scaled fp8" files: `<layer>.scale_weight` multiplies `<layer>.weight`; the rest is for fp8 matmuls.
SCALE_SUFFIX = ".scale_weight"
DROPPED_SUFFIXES = (".scale_input",)
DROPPED_KEYS = ("scaled_fp8",)


def load_flow_transformer(
    source: Path | Mapping[str, Any], family: str, config: Mapping[str, Any], mode: str = "auto", dtype: Any = None
) -> Any:
    """The diffusers transformer for a BFL (FLUX.1) or Stability (SD 3.5) file, or for its tensors already read.

    `source`: a `.safetensors`/`.gguf` path, or the transformer's tensors (keys with or without the
    `model.diffusion_model.` prefix of the all-in-one files). `config`: the diffusers config of the
    transformer. `dtype`: the pipeline's compute precision (bf16 on a GPU, fp32 on the CPU). The module is
    on the CPU; the caller moves it to the device with the rest of the pipeline.
    """
    import torch

    if family not in CLASSES:
        raise ModelError(f"no transformer for family {family!r}; valid: {', '.join(CLASSES)}")
    if mode not in MODES:
        raise ModelError(f"unknown transformer storage {mode!r}; valid: {', '.join(MODES)}")
    dtype = dtype or torch.float32
    if isinstance(source, Path) and source.suffix.lower() == ".gguf":
        from openesd.generation.quant.ggml import load_gguf_transformer

        return load_gguf_transformer(source, family, config, dtype)
    state = _transformer_only(_read(source))
    _refuse_nf4(state, source)
    scales = {k.removesuffix(SCALE_SUFFIX) + ".weight": state.pop(k) for k in list(state) if k.endswith(SCALE_SUFFIX)}
    for key in [k for k in state if k.endswith(DROPPED_SUFFIXES) or k.rpartition(".")[2] in DROPPED_KEYS]:
        del state[key]
    converted = convert(family, state, source)
    converted_scales = _convert_scales(family, state, scales, source) if scales else {}
    return _build(family, config, converted, converted_scales, mode, dtype)


def to_fp8(transformer: Any) -> Any:
    """A transformer already loaded (in any precision) with its blocks' linear layers stored as e4m3, in place."""
    from openesd.generation.quant import fp8

    return fp8.to_fp8(transformer, BLOCKS)


def _transformer_only(state: dict[str, Any]) -> dict[str, Any]:
    """An all-in-one file's transformer tensors (`model.diffusion_model.*`, prefix dropped); the text encoders
    and VAE beside them are the loader's. A transformer-only file is returned as it is."""
    if not any(k.startswith(PREFIX) for k in state):
        return state
    return {k[len(PREFIX) :]: v for k, v in state.items() if k.startswith(PREFIX)}


def _refuse_nf4(state: Mapping[str, Any], source: Any) -> None:
    """Forge's `flux1-dev-bnb-nf4` files need bitsandbytes on a GPU (diffusers' loader for them refuses a CPU)."""
    marker = next((k for k in state if "bitsandbytes__nf4" in k or "bitsandbytes__fp4" in k), None)
    if marker is not None:
        name = repr(source.name) if isinstance(source, Path) else "the transformer's tensors"
        raise ModelError(
            f"{name} is a bitsandbytes NF4/FP4 file (key {marker!r}), which this worker does not load: use the "
            "model's GGUF (Q4_0, Q4_K_S, Q8_0) or fp8 file instead"
        )


def _read(source: Path | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(source, Mapping):
        return dict(source)
    from openesd.generation.models._common import read_state_dict

    return read_state_dict(Path(source))


def _convert_scales(family: str, state: Mapping[str, Any], scales: dict[str, Any], source: Any) -> dict[str, Any]:
    """Each scale under its diffusers weight's key: the layout's row moves applied to one-column stand-ins
    (a weight split into q, k and v shares its scale), at a few bytes a row instead of the weights' size."""
    import torch

    stand_ins = {}
    for key, tensor in state.items():
        rows = tensor.shape[0] if tensor.ndim else 1
        value = float(scales[key].float().reshape(-1)[0]) if key in scales else 1.0
        stand_ins[key] = torch.full((rows, 1), value, dtype=torch.float32)
    moved = convert(family, stand_ins, source)
    return {key: stand_in[0, 0].clone() for key, stand_in in moved.items() if key.endswith(".weight")}


def _build(
    family: str, config: Mapping[str, Any], state: dict[str, Any], scales: dict[str, Any], mode: str, dtype: Any
) -> Any:
    import diffusers
    import torch
    from accelerate import init_empty_weights

    from openesd.generation.quant import fp8

    with init_empty_weights():
        model = getattr(diffusers, CLASSES[family]).from_config(dict(config))
    linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n.startswith(BLOCKS)]
    stored = {n: state.get(n + ".weight") for n in linears}
    if mode == "fp8":
        chosen = set(linears)
    elif mode == "auto":
        chosen = {n for n, t in stored.items() if fp8.is_fp8(t)}
    else:
        chosen = set()
    file_dtypes = {n: t.dtype if fp8.is_fp8(t) else torch.float8_e4m3fn for n, t in stored.items() if n in chosen}
    fp8.replace_linears(model, chosen, file_dtypes)
    params: dict[str, Any] = {}
    for key, tensor in state.items():
        layer, _, leaf = key.rpartition(".")
        if layer in chosen and leaf == "weight":
            values, scale = (tensor, scales.get(key)) if fp8.is_fp8(tensor) else fp8.quantise(tensor)
            params[key] = values.contiguous().view(torch.uint8)
            params[f"{layer}.weight_scale"] = torch.ones(()) if scale is None else scale.float().reshape(())
        else:
            params[key] = _widen(tensor, scales.get(key), dtype)
    _assign(model, params)
    return model.eval().requires_grad_(False)


def _widen(tensor: Any, scale: Any, dtype: Any) -> Any:
    """A tensor kept in the pipeline's precision (an fp8 one widened, times its scale when it has one)."""
    from openesd.generation.quant import fp8

    if fp8.is_fp8(tensor):
        wide = tensor.float()
        return (wide * scale.float() if scale is not None else wide).to(dtype)
    return tensor.to(dtype) if tensor.is_floating_point() else tensor


def _assign(model: Any, params: dict[str, Any]) -> None:
    result = model.load_state_dict(params, strict=False, assign=True)
    if result.missing_keys:
        raise ModelError(
            f"the transformer file lacks {result.missing_keys[0]!r} (and {len(result.missing_keys) - 1} more)"
        )
    if result.unexpected_keys:
        raise ModelError(f"the transformer file has {result.unexpected_keys[0]!r}, which its config has no place for")
