"""kohya-ss configuration keys (the esd-api.md §10.4 template merged with a request's config_params) -> TrainingConfig.

kohya flattens every TOML table into one namespace, so this does too; keys OpenESD does not act on
are kept, dotted with their table, in `ignored_keys` so the job can show them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from openesd.trainer.errors import TrainingError

OPTIMIZERS = ("AdamW", "AdamW8bit", "Lion", "Prodigy", "SGDNesterov", "Adafactor")
SCHEDULERS = ("constant", "constant_with_warmup", "cosine", "linear", "polynomial", "cosine_with_restarts")
PRECISIONS = ("no", "fp16", "bf16")
SAVE_PRECISIONS = ("float", "fp16", "bf16")
NETWORK_MODULE = "networks.lora"


def _empty(value: Any) -> bool:
    return not value


def _always(value: Any) -> bool:
    return True


# Keys whose job is done elsewhere, or that change nothing at the given value; not "ignored".
_HARMLESS: dict[str, Callable[[Any], bool]] = {
    "pretrained_model_name_or_path": _always,  # the job's base_model is the checkpoint
    "train_data_dir": _always,  # the job's dataset_dir
    "output_dir": _always,  # the job's output_dir
    "v2": _always,  # the architecture is detected from the checkpoint itself
    "xformers": _always,  # PyTorch SDPA is the memory-efficient attention used instead
    "sdpa": _always,
    "lowram": _always,
    "no_half_vae": _always,  # the VAE always runs in fp32 (it only encodes, once per image when cached)
    "network_module": lambda v: v == NETWORK_MODULE,
    "reg_data_dir": _empty,
    "prior_loss_weight": _always,  # only weighs regularisation images, which need reg_data_dir
    "network_args": _empty,
    "save_state": _empty,
    "save_n_epoch_ratio": _empty,
    "persistent_data_loader_workers": _always,
    "max_data_loader_n_workers": _always,  # images are read in-process; latents are usually cached
}

_ALIASES = {"lr_scheduler_num_cycles": "lr_restart_cycles"}  # kohya renamed it; the template keeps the old name


@dataclass
class TrainingConfig:
    """The kohya keys OpenESD acts on, typed; defaults are kohya-ss's own unless noted."""

    network_dim: int = 32
    network_alpha: float = 16.0
    network_train_unet_only: bool = False
    network_train_text_encoder_only: bool = False
    learning_rate: float = 1e-4
    unet_lr: float | None = None
    text_encoder_lr: float | None = None
    optimizer_type: str = "AdamW"
    lr_scheduler: str = "constant"
    lr_warmup_steps: float = 0  # kohya: an int, or a ratio of the total steps when below 1
    lr_restart_cycles: int = 1
    lr_scheduler_power: float = 1.0
    resolution: tuple[int, int] = (512, 512)  # (width, height)
    enable_bucket: bool = False
    min_bucket_reso: int = 256
    max_bucket_reso: int = 1024
    bucket_reso_steps: int = 64
    train_batch_size: int = 1
    max_train_epochs: int | None = None
    max_train_steps: int = 1600
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool = False
    max_grad_norm: float = 1.0
    clip_skip: int = 1
    mixed_precision: str = "no"
    save_precision: str = "float"
    cache_latents: bool = False
    caption_extension: str = ".txt"  # kohya's default is ".caption"; ESD datasets ship ".txt"
    shuffle_caption: bool = False
    keep_tokens: int = 0
    seed: int | None = None
    save_every_n_epochs: int | None = None
    save_last_n_epochs: int | None = None
    output_name: str = "last"
    save_model_as: str = "safetensors"
    noise_offset: float = 0.0
    min_snr_gamma: float | None = None
    v_parameterization: bool = False
    training_comment: str | None = None
    ignored_keys: list[str] = field(default_factory=list)

    @classmethod
    def from_kohya(cls, template: dict[str, Any], overrides: dict[str, Any] | None = None) -> TrainingConfig:
        """Flatten the template's tables, merge the overrides over them, type every known key."""
        flat = _flatten(template)
        flat.update(_flatten(overrides or {}))
        values: dict[str, Any] = {}
        ignored: list[str] = []
        names = {f.name: f for f in dataclasses.fields(cls) if f.name != "ignored_keys"}
        for dotted, value in flat.items():
            key = _ALIASES.get(dotted.rsplit(".", 1)[-1], dotted.rsplit(".", 1)[-1])
            if key in names:
                values[key] = _coerce(key, value, names[key].type)
            elif key in _HARMLESS and _HARMLESS[key](value):
                continue
            elif key == "network_module":
                raise TrainingError(f"network_module {value!r} is not supported; the only one is {NETWORK_MODULE!r}")
            else:
                ignored.append(dotted)
        config = cls(**values, ignored_keys=sorted(ignored))
        config.validate()
        return config

    @property
    def train_text_encoder(self) -> bool:
        return not self.network_train_unet_only and (self.text_encoder_lr is None or self.text_encoder_lr > 0)

    @property
    def train_unet(self) -> bool:
        return not self.network_train_text_encoder_only

    def validate(self) -> None:
        """Reject values kohya would reject, naming the key and the value."""
        _check_choice("optimizer_type", self.optimizer_type, OPTIMIZERS)
        _check_choice("lr_scheduler", self.lr_scheduler, SCHEDULERS)
        _check_choice("mixed_precision", self.mixed_precision, PRECISIONS)
        _check_choice("save_precision", self.save_precision, SAVE_PRECISIONS)
        if self.save_model_as != "safetensors":
            raise TrainingError(
                f"save_model_as {self.save_model_as!r} is not supported; LoRAs are saved as 'safetensors'"
            )
        for key in (
            "network_dim",
            "train_batch_size",
            "max_train_steps",
            "gradient_accumulation_steps",
            "bucket_reso_steps",
            "clip_skip",
        ):
            if getattr(self, key) < 1:
                raise TrainingError(f"{key} must be at least 1, got {getattr(self, key)}")
        if self.max_train_epochs is not None and self.max_train_epochs < 1:
            raise TrainingError(f"max_train_epochs must be at least 1, got {self.max_train_epochs}")
        if not self.output_name or "/" in self.output_name or "\\" in self.output_name:
            raise TrainingError(f"output_name {self.output_name!r} must be a file name without folders")
        self._validate_resolution()

    def _validate_resolution(self) -> None:
        width, height = self.resolution
        if width < 32 or height < 32 or width % 8 or height % 8:
            raise TrainingError(
                f"resolution {width},{height} is invalid: each side must be a multiple of 8, at least 32"
            )
        if self.enable_bucket and not (
            self.min_bucket_reso <= min(width, height) and max(width, height) <= self.max_bucket_reso
        ):
            raise TrainingError(
                f"resolution {width},{height} must lie between min_bucket_reso "
                f"{self.min_bucket_reso} and max_bucket_reso {self.max_bucket_reso}"
            )


def _flatten(tables: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tables.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise TrainingError(f"{key} {value!r} is not supported; use one of {', '.join(choices)}")


def _coerce(key: str, value: Any, annotation: str) -> Any:
    """TOML and JSON clients send numbers as strings at times ("1"); kohya's argparse took those too."""
    try:
        if key == "resolution":
            return _resolution(value)
        if key in ("optimizer_type", "lr_scheduler", "mixed_precision", "save_precision"):
            return _canonical(key, str(value))
        if value is None or value == "":
            return None if "None" in annotation else _coerce_plain(key, value, annotation)
        return _coerce_plain(key, value, annotation)
    except (TypeError, ValueError) as exc:
        raise TrainingError(f"{key} {value!r} is not a valid {annotation.split(' |')[0]}") from exc


def _coerce_plain(key: str, value: Any, annotation: str) -> Any:
    kind = annotation.split(" |")[0]
    if kind == "bool":
        if isinstance(value, str):
            if value.strip().lower() not in ("true", "false", "1", "0"):
                raise ValueError(value)
            return value.strip().lower() in ("true", "1")
        return bool(value)
    if kind == "int":
        number = float(value)
        if number != int(number):
            raise ValueError(value)
        return int(number)
    if kind == "float":
        return float(value)
    return str(value)


def _canonical(key: str, value: str) -> str:
    """kohya matches these names case-insensitively ("adamw8bit", "FP16")."""
    choices = {
        "optimizer_type": OPTIMIZERS,
        "lr_scheduler": SCHEDULERS,
        "mixed_precision": PRECISIONS,
        "save_precision": SAVE_PRECISIONS,
    }[key]
    return next((c for c in choices if c.lower() == value.strip().lower()), value)


def _resolution(value: Any) -> tuple[int, int]:
    """kohya accepts "512", "512,768" (width,height) or a number."""
    if isinstance(value, (list, tuple)):
        parts = [int(v) for v in value]
    else:
        parts = [int(float(p)) for p in str(value).split(",")]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise ValueError(value)
    return parts[0], parts[1]
