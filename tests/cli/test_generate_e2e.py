"""From a model file to an image on disk with the CLI, against a real server and its local workers:
upload a tiny SD 1.5 checkpoint, create an endpoint and wait for it, txt2img, img2img, jobs, clean up."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.support.tiny_models import write_tiny_sd15_checkpoint


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return write_tiny_sd15_checkpoint(tmp_path_factory.mktemp("models") / "tiny-sd15.safetensors")


def test_upload_a_model_and_generate_images_to_files(logged_in, tiny_model, tmp_path):
    cli = logged_in
    uploaded = cli("checkpoints", "upload", tiny_model, "--type", "Stable-diffusion")
    checkpoint_id = uploaded.stdout.split(" as ")[1].split()[0]
    endpoint = cli.json("endpoints", "create", "--name", "cli", "--instance-type", "cpu", "--wait")
    assert endpoint["endpoint_status"] == "InService"
    try:
        out = tmp_path / "out"
        made = cli(
            "txt2img",
            "a cat",
            "--model",
            "tiny-sd15.safetensors",
            "--steps",
            "2",
            "--width",
            "64",
            "--height",
            "64",
            "--seed",
            "3",
            "-o",
            out,
        )
        assert "2/2" in made.stderr  # the step bar, full when the job is done
        files = sorted(out.glob("*.png"))
        assert len(files) == 1 and str(files[0]) in made.stdout
        assert png_size(files[0]) == (64, 64)
        job_id = files[0].name.split("_")[0]

        shown = cli.json("jobs", "show", job_id)
        assert shown["status"] == "succeed" and shown["taskType"] == "txt2img"
        assert job_id in [j["InferenceJobId"] for j in cli.json("jobs", "list")]

        again = cli.json(
            "img2img",
            files[0],
            "a dog",
            "--model",
            "tiny-sd15.safetensors",
            "--steps",
            "2",
            "--width",
            "64",
            "--height",
            "64",
            "--denoise",
            "0.5",
            "-o",
            out,
        )
        assert again["status"] == "succeed" and png_size(Path(again["files"][0])) == (64, 64)

        cli("jobs", "rm", job_id, again["InferenceJobId"])
        gone = cli("jobs", "show", job_id, ok=False)
        assert gone.exit_code == 1 and f"inference with id {job_id} not found" in gone.stderr
    finally:
        cli("endpoints", "rm", "esd-async-cli")
        cli("checkpoints", "rm", checkpoint_id)
    assert cli.json("endpoints", "list") == []
