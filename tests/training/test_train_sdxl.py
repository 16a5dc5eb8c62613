"""A tiny SDXL-style LoRA training with aspect-ratio buckets: kohya SDXL keys, loadable by diffusers."""

from __future__ import annotations

import math

from openesd.trainer import TrainingConfig, TrainingJob, train
from tests.training.conftest import make_dataset

SETTINGS = {
    "network_dim": 4,
    "network_alpha": 4,
    "resolution": "32,32",
    "enable_bucket": True,
    "min_bucket_reso": 16,
    "max_bucket_reso": 64,
    "bucket_reso_steps": 8,
    "max_train_steps": 2,
    "output_name": "xl_lora",
    "seed": 3,
    "learning_rate": 2e-2,
    "lr_scheduler": "constant_with_warmup",
    "lr_warmup_steps": 1,
    "shuffle_caption": True,
    "keep_tokens": 1,
    "noise_offset": 0.05,
    "min_snr_gamma": 5,
    "gradient_checkpointing": True,
}


def test_sdxl_training_writes_te1_te2_and_unet_keys_that_diffusers_loads(sdxl_checkpoint, tmp_path):
    import numpy as np
    import torch
    from safetensors import safe_open

    from openesd.generation.models.loading import load_checkpoint

    dataset = make_dataset(
        tmp_path / "data", {"1_dog": [("wide", (48, 32), "sks dog, grass"), ("tall", (32, 48), "sks dog, beach")]}
    )
    config = TrainingConfig.from_kohya({"training": SETTINGS}, {})
    reports = []
    result = train(
        TrainingJob(sdxl_checkpoint, "sd_xl", dataset, tmp_path / "out", config, device="cpu"), progress=reports.append
    )
    assert [p.name for p in result.files] == ["xl_lora.safetensors"] and result.steps == 2
    assert [r.step for r in reports] == [1, 2] and all(math.isfinite(r.loss) for r in reports)

    with safe_open(str(result.files[0]), "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
    assert {k.split("_text_model")[0] for k in keys if k.startswith("lora_te")} == {"lora_te1", "lora_te2"}
    # kohya's SDXL trainer names UNet modules by their LDM (sgm) paths.
    assert "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_down.weight" in keys
    assert "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.alpha" in keys
    assert meta["ss_base_model_version"] == "sdxl_base_v1-0"

    pipe = load_checkpoint(sdxl_checkpoint, "cpu", torch.float32).pipe

    def image():
        return pipe(
            "sks dog",
            num_inference_steps=2,
            height=32,
            width=32,
            output_type="np",
            generator=torch.Generator().manual_seed(0),
        ).images[0]

    before = image()
    pipe.load_lora_weights(str(result.files[0]), adapter_name="trained")
    assert {"unet", "text_encoder", "text_encoder_2"} <= set(pipe.get_list_adapters())
    assert np.abs(image() - before).max() > 1e-3
