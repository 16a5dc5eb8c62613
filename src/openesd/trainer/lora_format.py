"""peft adapter weights -> a kohya/A1111 LoRA `.safetensors` (lora_down/lora_up/alpha, `ss_*` metadata).

SD 1.x keys use diffusers module names (`lora_unet_down_blocks_0_attentions_0_...`), as kohya-ss
writes for SD 1.x; SDXL keys use the LDM names kohya's sdxl_train_network writes
(`lora_unet_input_blocks_4_1_...`), with `lora_te1_`/`lora_te2_` for the two text encoders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

BASE_MODEL_VERSIONS = {"sd1": "sd_v1", "sd2": "sd_v2", "sdxl": "sdxl_base_v1-0"}
_PEFT_SUFFIXES = {".lora_A.weight": ".lora_down.weight", ".lora_B.weight": ".lora_up.weight"}


def kohya_state_dict(parts: dict[str, Any], family: str, alpha: float, dtype: Any) -> dict[str, Any]:
    """Kohya tensors from peft state dicts per part ("unet", "text_encoder", "text_encoder_2").

    `parts` maps a part name to (module, peft state dict); the module supplies the UNet config the
    SDXL renaming needs.
    """
    import torch

    out: dict[str, Any] = {}
    for part, (module, state) in parts.items():
        rename = _unet_namer(module, family) if part == "unet" else _text_namer(part, family)
        for key, tensor in state.items():
            module_name, suffix = _split_peft_key(key)
            kohya = rename(module_name)
            out[kohya + _PEFT_SUFFIXES[suffix]] = tensor.detach().to("cpu", dtype).contiguous()
            out[kohya + ".alpha"] = torch.tensor(float(alpha), dtype=dtype)
    return dict(sorted(out.items()))


def _split_peft_key(key: str) -> tuple[str, str]:
    for suffix in _PEFT_SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)], suffix
    raise ValueError(f"unexpected peft LoRA key {key!r}")


def _unet_namer(unet: Any, family: str) -> Any:
    if family != "sdxl":
        return lambda name: "lora_unet_" + name.replace(".", "_")
    # Reuse the generation package's diffusers->LDM UNet map (the one its single-file export uses).
    from openesd.modeltools.export import _map_unet_module, _unet_key_map

    names = _unet_key_map(dict(unet.config))
    return lambda name: "lora_unet_" + _map_unet_module(name, names).replace(".", "_")


def _text_namer(part: str, family: str) -> Any:
    prefix = {"text_encoder": "lora_te1_", "text_encoder_2": "lora_te2_"}[part] if family == "sdxl" else "lora_te_"
    # kohya names CLIP modules under `text_model.`; transformers 5 drops that level on CLIPTextModel.
    return lambda name: prefix + "text_model_" + name.removeprefix("text_model.").replace(".", "_")


def metadata(config: Any, family: str, *, epoch: int, steps: int, base_model: Path, images: int) -> dict[str, str]:
    """kohya's `ss_*` training metadata (A1111 and the WebUI's LoRA card read these); no timestamps,
    so one seed gives the same file bytes."""
    data = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(config.network_dim),
        "ss_network_alpha": _number(config.network_alpha),
        "ss_output_name": config.output_name,
        "ss_base_model_version": BASE_MODEL_VERSIONS.get(family, family),
        "ss_sd_model_name": Path(base_model).name,
        "ss_v2": str(family == "sd2"),
        "ss_epoch": str(epoch),
        "ss_steps": str(steps),
        "ss_num_train_images": str(images),
        "ss_resolution": f"({config.resolution[0]}, {config.resolution[1]})",
        "ss_learning_rate": _number(config.learning_rate),
        "ss_unet_lr": _number(config.unet_lr if config.unet_lr is not None else config.learning_rate),
        "ss_text_encoder_lr": _number(
            config.text_encoder_lr if config.text_encoder_lr is not None else config.learning_rate
        ),
        "ss_network_train_unet_only": str(not config.train_text_encoder),
        "ss_optimizer": config.optimizer_type,
        "ss_lr_scheduler": config.lr_scheduler,
        "ss_clip_skip": str(config.clip_skip),
        "ss_mixed_precision": config.mixed_precision,
        "ss_seed": str(config.seed),
        "ss_noise_offset": _number(config.noise_offset),
        "ss_enable_bucket": str(config.enable_bucket),
        "ss_max_train_epochs": str(config.max_train_epochs),
        "modelspec.architecture": "stable-diffusion-xl-v1-base/lora"
        if family == "sdxl"
        else "stable-diffusion-v1/lora",
    }
    if config.training_comment:
        data["ss_training_comment"] = config.training_comment
    return data


def _number(value: float) -> str:
    return repr(float(value)) if value is not None else "None"


def save(path: Path, tensors: dict[str, Any], meta: dict[str, str]) -> Path:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)  # a reader (the engine uploading outputs) never sees half a file
    return path
