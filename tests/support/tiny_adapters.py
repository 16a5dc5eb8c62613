"""LoRA, textual-inversion and ControlNet files matching `tiny_models.py`, written in the layouts users upload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support import tiny_models as tm

UNPICKLED: list[str] = []  # filled only if a loader ever runs pickled code (it must not)


def _seeded(seed: int) -> Any:
    import torch

    torch.manual_seed(seed)
    return torch


# ---- textual-inversion embeddings -------------------------------------------------------------


def embedding_vectors(count: int = 2, width: int = tm.TEXT_HIDDEN_SIZE, seed: int = 3) -> Any:
    """Vectors far from any real token's, so an embedding in the prompt changes the image."""
    return _seeded(seed).randn(count, width) * 2.0


def write_embedding_pt(path: Path, count: int = 2, seed: int = 3) -> Path:
    """The WebUI's own `.pt` layout: string_to_param {'*': (n, dim)} plus name/step metadata."""
    torch = _seeded(seed)
    data = {
        "string_to_token": {"*": 265},
        "string_to_param": {"*": embedding_vectors(count, seed=seed)},
        "name": Path(path).stem,
        "step": 500,
        "sd_checkpoint": "0123456789",
        "sd_checkpoint_name": "tiny",
    }
    return _save_pt(path, data, torch)


def write_embedding_safetensors(path: Path, count: int = 2, seed: int = 3) -> Path:
    """`.safetensors` with `emb_params` (n, dim), as the WebUI's training tab writes."""
    return _save_safetensors(path, {"emb_params": embedding_vectors(count, seed=seed)})


def write_sdxl_embedding(path: Path, count: int = 2, seed: int = 3) -> Path:
    """SDXL `.safetensors`: clip_l and clip_g vectors as wide as the tiny SDXL encoders."""
    return _save_safetensors(
        path,
        {
            "clip_l": embedding_vectors(count, seed=seed),
            "clip_g": embedding_vectors(count, tm.TEXT2_HIDDEN_SIZE, seed=seed + 1),
        },
    )


class PickledObject:
    """An object that a full unpickler would rebuild by calling `_mark_unpickled`."""

    def __reduce__(self) -> tuple:
        return (_mark_unpickled, ("PickledObject",))


def _mark_unpickled(name: str) -> str:
    UNPICKLED.append(name)
    return name


def write_pickled_embedding(path: Path) -> Path:
    """A `.pt` that carries a pickled object besides its tensors: loaders must refuse it."""
    torch = _seeded(3)
    data = {"string_to_param": {"*": embedding_vectors()}, "payload": PickledObject()}
    return _save_pt(path, data, torch)


def _save_pt(path: Path, data: dict, torch: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, str(path))
    return path


def _save_safetensors(path: Path, tensors: dict[str, Any]) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


# ---- LoRA -------------------------------------------------------------------------------------

LORA_RANK = 4
_UNET_TARGETS = (
    "attn1.to_q",
    "attn1.to_k",
    "attn1.to_v",
    "attn1.to_out.0",
    "attn2.to_q",
    "attn2.to_k",
    "attn2.to_v",
    "attn2.to_out.0",
    "proj_in",
    "proj_out",
)
_TEXT_TARGETS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2")


def kohya_lora_state_dict(
    components: dict[str, Any] | None = None, seed: int = 5, scale: float = 0.5
) -> dict[str, Any]:
    """Kohya/A1111 LoRA keys (`lora_unet_*`, `lora_te_*` with lora_down/lora_up/alpha) for the tiny SD 1.x model."""
    components = components or tm.tiny_sd15_components()
    torch = _seeded(seed)
    state: dict[str, Any] = {}
    for name, module in components["unet"].named_modules():
        if name.endswith(_UNET_TARGETS) and hasattr(module, "weight"):
            _add_lora(state, "lora_unet_" + name.replace(".", "_"), module.weight, torch, scale)
    for name, module in components["text_encoder"].named_modules():
        if name.endswith(_TEXT_TARGETS):
            # Kohya names text-encoder modules under `text_model.` as transformers 4 did.
            _add_lora(state, "lora_te_text_model_" + name.replace(".", "_"), module.weight, torch, scale)
    return state


def kohya_sdxl_lora_state_dict(
    components: dict[str, Any] | None = None, seed: int = 8, scale: float = 0.5
) -> dict[str, Any]:
    """Kohya's SDXL layout: UNet modules by their sgm/LDM names (`lora_unet_input_blocks_4_1_...`), two text
    encoders."""
    from openesd.modeltools.export import _map_unet_module, _unet_key_map

    components = components or tm.tiny_sdxl_components()
    torch = _seeded(seed)
    unet = components["unet"]
    names = _unet_key_map(dict(unet.config))
    state: dict[str, Any] = {}
    for name, module in unet.named_modules():
        if name.endswith(_UNET_TARGETS) and hasattr(module, "weight"):
            _add_lora(
                state, "lora_unet_" + _map_unet_module(name, names).replace(".", "_"), module.weight, torch, scale
            )
    for prefix, encoder in (("lora_te1_", components["text_encoder"]), ("lora_te2_", components["text_encoder_2"])):
        for name, module in encoder.named_modules():
            if name.endswith(_TEXT_TARGETS):
                name = name.removeprefix(
                    "text_model."
                )  # CLIPTextModelWithProjection keeps the prefix, CLIPTextModel not
                _add_lora(state, prefix + "text_model_" + name.replace(".", "_"), module.weight, torch, scale)
    return state


def _add_lora(state: dict[str, Any], key: str, weight: Any, torch: Any, scale: float) -> None:
    out_features, in_features = weight.shape[:2]
    kernel = tuple(weight.shape[2:])  # 1x1 convolutions (proj_in/out in SD 1.x) keep their 4-D shape
    state[f"{key}.lora_down.weight"] = torch.randn(LORA_RANK, in_features, *kernel) * scale
    state[f"{key}.lora_up.weight"] = torch.randn(out_features, LORA_RANK, *kernel) * scale
    state[f"{key}.alpha"] = torch.tensor(float(LORA_RANK))


def write_kohya_lora(path: Path, seed: int = 5, scale: float = 0.5) -> Path:
    """A kohya-format `.safetensors` LoRA for the tiny SD 1.x checkpoint (non-zero up weights)."""
    return _save_safetensors(path, kohya_lora_state_dict(seed=seed, scale=scale))


# ---- ControlNet -------------------------------------------------------------------------------


def tiny_controlnet(seed: int = 11, family: str = "sd15") -> Any:
    """A diffusers ControlNetModel matching the tiny SD 1.x (or SDXL) UNet, its zero convolutions made non-zero."""
    from diffusers import ControlNetModel

    torch = _seeded(seed)
    # One stride-2 step per VAE level, so the control image lands on the latent grid (real: 8x, four levels).
    levels = tm.VAE_SCALE_FACTOR.bit_length()
    net = ControlNetModel.from_unet(
        tm.tiny_unet(family), conditioning_embedding_out_channels=(16, 32, 96, 256)[:levels]
    )
    torch.manual_seed(seed)
    with torch.no_grad():
        zero_init = [*net.controlnet_down_blocks, net.controlnet_mid_block, net.controlnet_cond_embedding.conv_out]
        for conv in zero_init:
            conv.weight.normal_(0.0, 0.3)
            conv.bias.normal_(0.0, 0.3)
    return net.eval()


def controlnet_to_ldm(net: Any) -> dict[str, Any]:
    """diffusers ControlNetModel state dict -> A1111 `control_model.*` keys (the inverse of diffusers' conversion)."""
    from openesd.modeltools.export import _map_unet_module, _unet_key_map

    config = dict(net.config)
    config["up_block_types"] = ["UpBlock2D"] * len(config["block_out_channels"])  # no up half; names unused
    names = _unet_key_map(config)
    hint_blocks = len(net.controlnet_cond_embedding.blocks)
    special = {
        "controlnet_cond_embedding.conv_in": "input_hint_block.0",
        "controlnet_cond_embedding.conv_out": f"input_hint_block.{2 * (hint_blocks + 1)}",
        "controlnet_mid_block": "middle_block_out.0",
    }
    special.update(
        {f"controlnet_cond_embedding.blocks.{i}": f"input_hint_block.{2 * (i + 1)}" for i in range(hint_blocks)}
    )
    special.update({f"controlnet_down_blocks.{i}": f"zero_convs.{i}.0" for i in range(len(net.controlnet_down_blocks))})
    out = {}
    for key, tensor in net.state_dict().items():
        module, _, leaf = key.rpartition(".")
        target = special.get(module) or _map_unet_module(module, names)
        out[f"control_model.{target}.{leaf}"] = tensor
    return out


def write_tiny_controlnet(path: Path, seed: int = 11, family: str = "sd15", layout: str = "a1111") -> Path:
    """The tiny ControlNet as users upload it: "a1111" (`control_model.*`), "bare" (LDM keys, no prefix,
    like lllyasviel's `.pth` files) or "diffusers" (diffusers keys, the file alone); `.pth` paths are pickled."""
    net = tiny_controlnet(seed, family)
    state = net.state_dict() if layout == "diffusers" else controlnet_to_ldm(net)
    if layout == "bare":
        state = {k.removeprefix("control_model."): v for k, v in state.items()}
    if Path(path).suffix == ".pth":
        return _save_pt(path, state, _seeded(seed))
    return _save_safetensors(path, state)


def write_kohya_sdxl_lora(path: Path, seed: int = 8, scale: float = 0.5) -> Path:
    """A kohya-format SDXL `.safetensors` LoRA for the tiny SDXL checkpoint."""
    return _save_safetensors(path, kohya_sdxl_lora_state_dict(seed=seed, scale=scale))


def write_diffusers_lora(path: Path, seed: int = 5, scale: float = 0.5) -> Path:
    """The kohya LoRA of `write_kohya_lora(seed)` re-saved by diffusers in its peft key format (`unet.…lora_A`)."""
    from diffusers import StableDiffusionPipeline
    from peft.utils import get_peft_model_state_dict

    pipe = StableDiffusionPipeline(**tm.tiny_sd15_components())
    pipe.load_lora_weights(kohya_lora_state_dict(seed=seed, scale=scale), adapter_name="fixture")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(
        str(path.parent),
        weight_name=path.name,
        safe_serialization=True,
        unet_lora_layers=get_peft_model_state_dict(pipe.unet, adapter_name="fixture"),
        text_encoder_lora_layers=get_peft_model_state_dict(pipe.text_encoder, adapter_name="fixture"),
    )
    return path
