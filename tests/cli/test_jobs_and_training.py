"""`txt2img`, `jobs`, `endpoints`, `datasets upload` and `train` as a user sees them, against the
spec-shaped fake of tests/client/fake_esd.py: fast checks of what the CLI sends and prints; the real-server
flows are in test_generate_e2e.py and test_training_e2e.py."""

from __future__ import annotations

import json

import pytest

from openesd.cli import _session
from openesd.client import Client
from tests.client.fake_esd import FakeESD


@pytest.fixture
def fake(monkeypatch, cli) -> FakeESD:
    esd = FakeESD()
    monkeypatch.setattr(_session, "client", lambda: Client("http://testserver", "key", transport=esd.transport()))
    return esd


def test_txt2img_shows_step_progress_and_prints_where_the_images_went(cli, fake, tmp_path):
    out = tmp_path / "out"
    result = cli(
        "txt2img", "a cat", "--model", "m.safetensors", "--steps", "4", "--seed", "1", "--lora", "cat:0.5", "-o", out
    )
    job_id = next(iter(fake.jobs))
    assert f"job {job_id} succeeded; images:" in result.stdout
    assert str(out / f"{job_id}_image_0.png") in result.stdout
    assert (out / f"{job_id}_image_0.png").read_bytes() == b"\x89PNG fake image"
    assert "4/4" in result.stderr  # the step bar, sized from the job's progress
    sent = json.loads(fake.jobs[job_id]["payload"])
    assert sent["prompt"] == "a cat <lora:cat:0.5>" and sent["steps"] == 4
    assert fake.jobs[job_id]["models"]["Lora"] == ["cat.safetensors"]


def test_a_flux_job_names_its_text_encoders_vae_scheduler_and_any_other_field(cli, fake, tmp_path):
    cli(
        "txt2img", "a cat", "--model", "flux1-dev.safetensors", "--sampler", "Euler", "--scheduler", "Simple",
        "--vae", "ae.safetensors", "--text-encoder", "clip_l.safetensors", "--text-encoder", "t5xxl_fp16.safetensors",
        "--set", "distilled_cfg_scale=3.5", "--set", "enable_hr=true", "--set", "hr_upscaler=Latent", "-o", tmp_path,
    )  # fmt: skip
    job = next(iter(fake.jobs.values()))
    assert job["models"]["text_encoder"] == ["clip_l.safetensors", "t5xxl_fp16.safetensors"]
    assert job["models"]["VAE"] == ["ae.safetensors"]
    sent = json.loads(job["payload"])
    assert (sent["scheduler"], sent["distilled_cfg_scale"], sent["enable_hr"], sent["hr_upscaler"]) == (
        "Simple",
        3.5,
        True,
        "Latent",
    )
    refused = cli("txt2img", "x", "--model", "m.safetensors", "--set", "steps", "-o", tmp_path, ok=False)
    assert refused.exit_code == 2 and "is not KEY=VALUE" in refused.stderr


def test_a_failed_job_exits_non_zero_with_the_reason(cli, fake, tmp_path):
    fake.fail_jobs = True
    result = cli("txt2img", "x", "--model", "m.safetensors", "--sampler", "Nope", "-o", tmp_path, ok=False)
    assert result.exit_code == 1
    assert "Sampler 'Nope' is not one of: Euler, DDIM" in result.stderr


def test_img2img_sends_the_image_as_a_data_url(cli, fake, tmp_path):
    image = tmp_path / "in.png"
    image.write_bytes(b"\x89PNG input")
    cli("img2img", image, "a painting", "--model", "m.safetensors", "--denoise", "0.4", "-o", tmp_path / "o")
    sent = json.loads(next(iter(fake.jobs.values()))["payload"])
    assert sent["init_images"] == ["data:image/png;base64,iVBORyBpbnB1dA=="] and sent["denoising_strength"] == 0.4


def test_endpoints_create_wait_list_rm(cli, fake):
    fake.polls_until_done = 0
    assert "endpoint esd-async-test is Creating" in cli("endpoints", "create", "--name", "test").stdout
    assert "endpoint esd-async-test is InService" in cli("endpoints", "wait", "test").stdout
    assert [e["endpoint_name"] for e in cli.json("endpoints", "list")] == ["esd-async-test"]
    cli("endpoints", "rm", "esd-async-test")
    assert cli.json("endpoints", "list") == []


def test_jobs_show_prints_the_job(cli, fake, tmp_path):
    cli("txt2img", "a cat", "--model", "m.safetensors", "-o", tmp_path)
    job_id = next(iter(fake.jobs))
    shown = cli.json("jobs", "show", job_id)
    assert shown["InferenceJobId"] == job_id and shown["status"] == "succeed"
    missing = cli("jobs", "show", "nope", ok=False)
    assert missing.exit_code == 1 and "inference with id nope not found" in missing.stderr


def test_dataset_upload_then_train_with_live_progress(cli, fake, tmp_path):
    folder = tmp_path / "10_cat"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"png")
    (folder / "a.txt").write_text("cat")
    assert "dataset cat is Enabled" in cli("datasets", "upload", folder).stdout

    result = cli(
        "train",
        "--model",
        "base.safetensors",
        "--dataset",
        "cat",
        "--output-name",
        "cat_lora",
        "--epochs",
        "2",
        "--set",
        "training.resolution=32,32",
        "--set",
        "network_dim=4",
        "--set",
        "training.enable_bucket=false",
        "--set",
        "additional_network.unet_lr=5e-2",
    )
    assert "Completed: LoRA cat_lora.safetensors is ready" in result.stdout
    assert "loss 0.25" in result.stderr
    training = next(iter(fake.trainings.values()))
    config = training["params"]["config_params"]
    assert config["training_arguments"] == {"max_train_epochs": 2}
    assert config["training"] == {"resolution": "32,32", "network_dim": 4, "enable_bucket": False}
    assert config["additional_network"] == {"unet_lr": 0.05}


def test_a_kohya_setting_without_a_value_is_a_usage_error(cli, fake):
    result = cli(
        "train", "--model", "b.safetensors", "--dataset", "cat", "--output-name", "x", "--set", "network_dim", ok=False
    )
    assert result.exit_code == 2 and "'network_dim' is not KEY=VALUE" in result.output
    assert fake.trainings == {}
