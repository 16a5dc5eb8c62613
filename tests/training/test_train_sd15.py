"""A tiny SD 1.x-style LoRA training end to end: files, keys, progress, loading in diffusers, stop, seed."""

from __future__ import annotations

import math

import pytest

from openesd.trainer import TrainingConfig, TrainingError, TrainingJob, TrainingProgress, train

SETTINGS = {
    "network_dim": 4,
    "network_alpha": 2,
    "resolution": 32,
    "train_batch_size": 2,
    "max_train_epochs": 2,
    "save_every_n_epochs": 1,
    "output_name": "sks_cat",
    "seed": 7,
    "learning_rate": 2e-2,
    "text_encoder_lr": 1e-2,
    "optimizer_type": "AdamW8bit",
    "lr_scheduler": "cosine",
    "cache_latents": True,
    "clip_skip": 2,
    "mixed_precision": "fp16",
    "save_precision": "float",
}


def _job(checkpoint, dataset, out, model_type="sd_1_5", **settings):
    config = TrainingConfig.from_kohya({"training": {**SETTINGS, **settings}}, {})
    return TrainingJob(
        base_model=checkpoint, model_type=model_type, dataset_dir=dataset, output_dir=out, config=config, device="cpu"
    )


@pytest.fixture(scope="module")
def trained(sd15_checkpoint, tmp_path_factory):
    from tests.training.conftest import make_dataset

    root = tmp_path_factory.mktemp("sd15-run")
    dataset = make_dataset(root / "data", {"1_cat": [("a", (32, 32), "sks cat, sitting"), ("b", (40, 32), "sks cat")]})
    reports: list[TrainingProgress] = []
    result = train(_job(sd15_checkpoint, dataset, root / "out"), progress=reports.append)
    return result, reports, dataset


def _read(path):
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def test_writes_the_final_and_intermediate_epoch_files(trained):
    result, _, _ = trained
    assert [p.name for p in result.files] == ["sks_cat-000001.safetensors", "sks_cat.safetensors"]
    assert all(p.is_file() for p in result.files)
    assert result.steps == 2 and not result.stopped


def test_keys_follow_kohya_naming_with_alpha(trained):
    tensors, meta = _read(trained[0].files[-1])
    unet = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    text = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
    for module in (unet, text, "lora_unet_up_blocks_1_attentions_0_transformer_blocks_0_attn2_to_out_0"):
        assert {f"{module}.lora_down.weight", f"{module}.lora_up.weight", f"{module}.alpha"} <= set(tensors)
    assert tensors[f"{unet}.lora_down.weight"].shape[0] == 4 and float(tensors[f"{unet}.alpha"]) == 2.0
    assert all(k.startswith(("lora_unet_", "lora_te_")) for k in tensors)
    assert (meta["ss_network_dim"], meta["ss_network_alpha"], meta["ss_output_name"]) == ("4", "2.0", "sks_cat")
    assert meta["ss_base_model_version"] == "sd_v1"


def test_progress_advances_with_a_finite_loss(trained):
    _, reports, _ = trained
    assert [(r.step, r.epoch) for r in reports] == [(1, 1), (2, 2)]
    assert all(r.total_steps == 2 and r.total_epochs == 2 and math.isfinite(r.loss) for r in reports)
    assert reports[-1].eta_seconds == 0.0


def test_cpu_fallbacks_are_recorded(trained):
    assert trained[0].warnings == [
        "mixed_precision fp16 needs a CUDA device; trained in fp32 on the CPU",
        "optimizer_type AdamW8bit needs bitsandbytes and a CUDA device; trained with AdamW",
    ]


def test_the_lora_loads_in_diffusers_and_changes_the_image(trained, sd15_checkpoint):
    import numpy as np
    import torch

    from openesd.generation.models.loading import load_checkpoint

    pipe = load_checkpoint(sd15_checkpoint, "cpu", torch.float32).pipe

    def image():
        return pipe(
            "sks cat",
            num_inference_steps=2,
            height=32,
            width=32,
            output_type="np",
            generator=torch.Generator().manual_seed(0),
        ).images[0]

    before = image()
    pipe.load_lora_weights(str(trained[0].files[-1]), adapter_name="trained")
    after = image()
    assert np.abs(after - before).max() > 1e-3
    assert {"unet", "text_encoder"} <= set(pipe.get_list_adapters())


def test_same_seed_gives_the_same_file_and_should_stop_ends_early(trained, sd15_checkpoint, tmp_path):
    result, _, dataset = trained
    again = train(_job(sd15_checkpoint, dataset, tmp_path / "again"))
    # Tensor bytes and metadata must match; safetensors orders the metadata header at random itself.
    for mine, theirs in zip(again.files, result.files, strict=True):
        (a, meta_a), (b, meta_b) = _read(mine), _read(theirs)
        assert meta_a == meta_b and set(a) == set(b)
        assert all(a[k].numpy().tobytes() == b[k].numpy().tobytes() for k in a)

    polls = []
    stopped = train(
        _job(sd15_checkpoint, dataset, tmp_path / "stopped"), should_stop=lambda: polls.append(1) or len(polls) > 1
    )
    # Epoch 1 (one step) finished and was saved; the stop came before step 2, so no final file.
    assert stopped.stopped and stopped.steps == 1
    assert [p.name for p in stopped.files] == ["sks_cat-000001.safetensors"]
    assert not (tmp_path / "stopped" / "sks_cat.safetensors").exists()


def test_a_checkpoint_of_the_other_family_is_refused(trained, sd15_checkpoint, tmp_path):
    with pytest.raises(TrainingError, match="base model 'tiny-sd15.safetensors' is a sd1 checkpoint, not sd_xl"):
        train(_job(sd15_checkpoint, trained[2], tmp_path, model_type="sd_xl"))
    with pytest.raises(TrainingError, match="model_type 'sd_2' is invalid"):
        train(_job(sd15_checkpoint, trained[2], tmp_path, model_type="sd_2"))
