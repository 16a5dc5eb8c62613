"""kohya keys -> TrainingConfig: the §10.4 template, request overrides, ignored keys, bad values."""

from __future__ import annotations

import pytest

from openesd.trainer import TrainingConfig, TrainingError
from openesd.trainer import _optim

# esd-api.md §10.4, the sd_1_5 template's [training] table.
TEMPLATE = {
    "training": {
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
}


def test_template_maps_to_typed_values():
    config = TrainingConfig.from_kohya(TEMPLATE, {})
    assert (config.network_dim, config.network_alpha) == (32, 16.0)
    assert (config.unet_lr, config.text_encoder_lr) == (1e-4, 1e-5)
    assert config.optimizer_type == "AdamW8bit" and config.lr_scheduler == "cosine_with_restarts"
    assert config.resolution == (512, 512) and config.enable_bucket and config.cache_latents
    assert (config.max_train_epochs, config.clip_skip, config.seed) == (10, 2, 1337)
    assert (config.mixed_precision, config.save_precision, config.save_last_n_epochs) == ("fp16", "fp16", 499)
    assert config.train_text_encoder and config.train_unet


def test_template_lists_only_the_keys_it_does_not_act_on():
    config = TrainingConfig.from_kohya(TEMPLATE, {})
    assert config.ignored_keys == ["training.log_prefix", "training.logging_dir", "training.max_token_length"]


def test_request_sections_override_the_template_and_unknown_keys_are_listed():
    overrides = {
        "saving_arguments": {"output_name": "my_lora", "save_every_n_epochs": "2"},
        "training_arguments": {"max_train_epochs": "3", "optimizer_type": "adamw", "color_aug": True},
        "additional_network": {"network_dim": 8, "network_args": ["conv_dim=4"]},
    }
    config = TrainingConfig.from_kohya(TEMPLATE, overrides)
    assert (config.output_name, config.save_every_n_epochs, config.max_train_epochs) == ("my_lora", 2, 3)
    assert config.optimizer_type == "AdamW" and config.network_dim == 8
    assert "training_arguments.color_aug" in config.ignored_keys
    assert "additional_network.network_args" in config.ignored_keys


def test_unet_only_and_zero_text_encoder_lr_leave_the_text_encoder_alone():
    assert not TrainingConfig.from_kohya(TEMPLATE, {"t": {"network_train_unet_only": "true"}}).train_text_encoder
    assert not TrainingConfig.from_kohya(TEMPLATE, {"t": {"text_encoder_lr": 0}}).train_text_encoder


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"resolution": "500,512"}, "resolution 500,512 is invalid"),
        ({"resolution": "big"}, "resolution 'big' is not a valid"),
        ({"resolution": "2048"}, "must lie between min_bucket_reso 256 and max_bucket_reso 1024"),
        ({"optimizer_type": "Sophia"}, "optimizer_type 'Sophia' is not supported; use one of AdamW, AdamW8bit"),
        ({"lr_scheduler": "exponential"}, "lr_scheduler 'exponential' is not supported"),
        ({"save_model_as": "ckpt"}, "save_model_as 'ckpt' is not supported"),
        ({"network_dim": "x"}, "network_dim 'x' is not a valid int"),
        ({"max_train_epochs": 0}, "max_train_epochs must be at least 1, got 0"),
        ({"network_module": "lycoris.kohya"}, "network_module 'lycoris.kohya' is not supported"),
        ({"output_name": "../escape"}, "output_name '../escape' must be a file name"),
    ],
)
def test_bad_values_raise_a_training_error_naming_the_value(override, message):
    with pytest.raises(TrainingError, match=message.replace("(", r"\(").replace(".", r"\.")) as info:
        TrainingConfig.from_kohya(TEMPLATE, {"training_arguments": override})
    assert info.value.status_code == 400


def test_adamw8bit_without_cuda_falls_back_to_adamw_and_says_so():
    import torch

    warnings: list[str] = []
    param = torch.nn.Parameter(torch.zeros(2))
    optimizer = _optim.build_optimizer("AdamW8bit", [{"params": [param], "lr": 1e-3}], cuda=False, warnings=warnings)
    assert type(optimizer) is torch.optim.AdamW
    assert warnings == ["optimizer_type AdamW8bit needs bitsandbytes and a CUDA device; trained with AdamW"]


def test_warmup_below_one_is_a_ratio_of_the_total_steps():
    import torch

    config = TrainingConfig.from_kohya(
        {"t": {"lr_scheduler": "constant_with_warmup", "lr_warmup_steps": 0.5, "learning_rate": 1.0}}, {}
    )
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = _optim.build_scheduler(config, optimizer, total_steps=10)
    rates = []
    for _ in range(6):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
