"""The kohya configuration of a training: ESD's template (esd-api.md §10.4), merged and written as TOML."""

from __future__ import annotations

import copy
import json
from typing import Any

_SD15 = {
    "v2": False,
    "v_parameterization": False,
    "pretrained_model_name_or_path": "./sd-models/v1-5-pruned-emaonly.safetensors",
    "train_data_dir": "./train/input",
    "reg_data_dir": "",
    "prior_loss_weight": 1,
    "cache_latents": True,
    "shuffle_caption": True,
    "enable_bucket": True,
    "network_dim": 32,
    "network_alpha": 16,
    "network_train_unet_only": False,
    "network_train_text_encoder_only": False,
    "network_module": "networks.lora",
    "network_args": [],
    "unet_lr": 1e-4,
    "text_encoder_lr": 1e-5,
    "optimizer_type": "AdamW8bit",
    "lr_scheduler": "cosine_with_restarts",
    "lr_warmup_steps": 0,
    "lr_restart_cycles": 1,
    "resolution": "512,512",
    "train_batch_size": 1,
    "max_train_epochs": 10,
    "noise_offset": 0.0,
    "keep_tokens": 0,
    "xformers": True,
    "lowram": False,
    "clip_skip": 2,
    "mixed_precision": "fp16",
    "save_precision": "fp16",
    "output_name": "output_name",
    "save_every_n_epochs": 1,
    "save_n_epoch_ratio": 0,
    "save_last_n_epochs": 499,
    "save_state": False,
    "save_model_as": "safetensors",
    "output_dir": "output",
    "logging_dir": "./logs",
    "log_prefix": "output_name",
    "min_bucket_reso": 256,
    "max_bucket_reso": 1024,
    "caption_extension": ".txt",
    "max_token_length": 225,
    "seed": 1337,
}
_SDXL = {
    **_SD15,
    "pretrained_model_name_or_path": "models/Stable-diffusion/sd_xl_base_1.0.safetensors",
    "no_half_vae": True,
}
TEMPLATES = {"sd_1_5": {"training": _SD15}, "sd_xl": {"training": _SDXL}}
TOML_NAMES = {"sd_1_5": "kohya_config_cloud.toml", "sd_xl": "kohya_config_cloud_xl.toml"}


def merged(fm_type: str, config_params: dict[str, Any]) -> dict[str, dict]:
    """The template with every config_params section merged in; an unknown section becomes a new table."""
    tables = copy.deepcopy(TEMPLATES[fm_type])
    for section, values in config_params.items():
        if isinstance(values, dict):
            tables.setdefault(section, {}).update(values)
        else:  # a bare key: kohya flattens the tables anyway
            tables["training"][section] = values
    return tables


def to_toml(tables: dict[str, dict]) -> str:
    """TOML for tables of plain values (strings, numbers, booleans, flat lists), as the template holds."""
    lines: list[str] = []
    for name, values in tables.items():
        lines.append(f"[{_key(name)}]")
        lines.extend(f"{_key(key)} = {_value(value)}" for key, value in values.items() if value is not None)
        lines.append("")
    return "\n".join(lines)


def _key(name: str) -> str:
    bare = name.replace("_", "").replace("-", "").isalnum()
    return name if bare else json.dumps(name)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value))
