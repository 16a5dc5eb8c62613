"""From a folder of images to a LoRA in an image on disk with the CLI, against a real server: upload a tiny
SD 1.5 model in parts, `datasets upload` a kohya folder, `train` on the CPU with live progress, `trainings
list|show`, txt2img with the LoRA, then remove everything — the commands of the README's quick start."""

from __future__ import annotations

import datetime
import time

import pytest

from tests.cli.test_generate_e2e import png_size
from tests.datasets.conftest import png
from tests.support.tiny_models import write_tiny_sd15_checkpoint

# Small and fast on a CPU, strong enough that the LoRA visibly changes a 1-step image (tests/trainings).
TINY = [
    "--set",
    "training.resolution=32,32",
    "--set",
    "training.enable_bucket=false",
    "--set",
    "network_dim=4",
    "--set",
    "network_alpha=4",
    "--set",
    "unet_lr=5e-2",
    "--set",
    "text_encoder_lr=2e-2",
    "--set",
    "optimizer_type=AdamW",
    "--set",
    "lr_scheduler=constant",
    "--set",
    "seed=3",
    "--set",
    "mixed_precision=no",
    "--set",
    "save_precision=float",
]
IMAGE = ["--steps", "1", "--width", "64", "--height", "64", "--seed", "5"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return write_tiny_sd15_checkpoint(tmp_path_factory.mktemp("models") / "tiny-sd15.safetensors")


def kohya_folder(root, concepts: dict[str, int]):
    """`root/<repeats>_<concept>/<n>.png` + `<n>.txt` captions, as kohya users keep their images."""
    for folder, count in concepts.items():
        (root / folder).mkdir(parents=True)
        for n in range(count):
            (root / folder / f"{n}.png").write_bytes(png(seed=n))
            (root / folder / f"{n}.txt").write_text(f"a photo of sks {folder.split('_')[1]}, number {n}")
    return root


def test_train_a_lora_on_a_folder_and_generate_with_it(logged_in, tiny_model, tmp_path):
    cli = logged_in
    uploaded = cli("checkpoints", "upload", tiny_model, "--type", "Stable-diffusion", "--part-size-mb", "4")
    assert "(4 of 4 parts sent now), status Active" in uploaded.stdout  # 13.5 MB in 4 MiB parts
    base_id = uploaded.stdout.split(" as ")[1].split()[0]

    # Two concept folders: 2 images x 2 repeats + 1 image x 1 repeat = 5 steps an epoch.
    folder = kohya_folder(tmp_path / "pets", {"2_cat": 2, "1_dog": 1})
    added = cli("datasets", "upload", folder, "--name", "pets", "--description", "my pets")
    assert added.stdout.strip() == "dataset pets is Enabled" and "6/6" in added.stderr
    [listed] = cli.json("datasets", "list")
    assert (listed["datasetName"], listed["status"], listed["description"]) == ("pets", "Enabled", "my pets")
    files = sorted(item["name"] for item in cli.json("datasets", "show", "pets")["data"])
    assert files == ["0.png", "0.png", "0.txt", "0.txt", "1.png", "1.txt"]

    trained = cli(
        "train",
        "--model",
        "tiny-sd15.safetensors",
        "--dataset",
        "pets",
        "--output-name",
        "sks_pet",
        "--instance-type",
        "cpu",
        "--epochs",
        "2",
        *TINY,
    )
    training_id = trained.stderr.split("training ", 1)[1].split()[0]
    assert f"training {training_id} Completed: LoRA sks_pet.safetensors is ready" in trained.stdout
    # The bar is fed by the server's progress record: steps, epoch, loss and its ETA (0 s at the end).
    bar = trained.stderr.splitlines()[-1]
    assert "10/10" in bar and "Completed epoch 2 loss " in bar and "eta 0s" in bar, trained.stderr

    [row] = cli.json("trainings", "list")
    assert (row["id"], row["status"], row["modelName"]) == (training_id, "Completed", "tiny-sd15.safetensors")
    listed = cli("trainings", "list").stdout  # for people: the whole id, the local date, not seconds since 1970
    day = datetime.datetime.fromtimestamp(float(row["created"])).strftime("%Y-%m-%d")
    assert training_id in listed and "Completed" in listed and day in listed and row["created"] not in listed, listed
    shown = cli("trainings", "show", training_id).stdout
    assert "job_status: Completed" in shown and '"step": 10, "total_steps": 10' in shown
    [lora] = [c for c in cli.json("checkpoints", "list") if c["id"] == training_id]
    assert (lora["type"], lora["status"]) == ("Lora", "Active")
    assert lora["name"] == ["sks_pet.safetensors", "sks_pet-000001.safetensors"]

    cli("endpoints", "create", "--name", "train", "--instance-type", "cpu", "--wait")
    try:
        plain = cli.json("txt2img", "sks cat", "--model", "tiny-sd15.safetensors", *IMAGE, "-o", tmp_path / "plain")
        made = cli(
            "txt2img",
            "sks cat",
            "--model",
            "tiny-sd15.safetensors",
            "--lora",
            "sks_pet:1",
            *IMAGE,
            "-o",
            tmp_path / "lora",
        )
        [image] = sorted((tmp_path / "lora").glob("*.png"))
        assert str(image) in made.stdout and png_size(image) == (64, 64)
        assert image.read_bytes() != open(plain["files"][0], "rb").read()  # the LoRA changed the image
    finally:
        cli("endpoints", "rm", "esd-async-train")

    cli("trainings", "rm", training_id)
    gone = cli("trainings", "show", training_id, ok=False)
    assert gone.exit_code == 1 and f"Job with id {training_id} not found" in gone.stderr
    assert cli.json("trainings", "list") == []
    cli("datasets", "rm", "pets")
    assert cli.json("datasets", "list") == []
    cli("checkpoints", "rm", training_id, base_id)  # the LoRA outlives its training record (§10.7)
    assert cli.json("checkpoints", "list") == []


def test_server_refusals_reach_the_user_as_its_message(logged_in, tmp_path):
    folder = kohya_folder(tmp_path / "broken", {"3_cat": 1})
    (folder / "3_cat" / "0.png").write_bytes(b"not an image")  # (an image without caption is fine, as in ESD)
    refused = logged_in("datasets", "upload", folder, ok=False)
    assert refused.exit_code == 1
    assert "dataset broken cannot be Enabled" in refused.stderr and "0.png" in refused.stderr
    logged_in("datasets", "rm", "broken")

    missing = logged_in("train", "--model", "nothing.safetensors", "--dataset", "pets", "--output-name", "x", ok=False)
    assert missing.exit_code == 1 and "Error: Model not found (HTTP 400)" in missing.stderr


def test_a_training_started_without_waiting_can_be_stopped(logged_in, tiny_model, tmp_path):
    cli = logged_in
    base_id = cli.json("checkpoints", "upload", tiny_model, "--type", "Stable-diffusion")["id"]
    cli("datasets", "upload", kohya_folder(tmp_path / "cats", {"1_cat": 1}))  # named `cats` after its folder
    bad = cli(
        "train",
        "--model",
        "tiny-sd15.safetensors",
        "--dataset",
        "cats",
        "--output-name",
        "long",
        "--set",
        "optimizer_type=Adamm",
        ok=False,
    )
    assert bad.exit_code == 1 and "optimizer_type" in bad.stderr and "'Adamm'" in bad.stderr, bad.stderr
    started = cli.json(
        "train",
        "--model",
        "tiny-sd15.safetensors",
        "--dataset",
        "cats",
        "--output-name",
        "long",
        "--instance-type",
        "cpu",
        "--epochs",
        "500",
        "--no-wait",
        *TINY,
    )
    training_id = started["id"]
    deadline = time.monotonic() + 60
    while not (cli.json("trainings", "show", training_id).get("progress") or {}).get("step"):
        assert time.monotonic() < deadline, "the training never reported a step"
        time.sleep(0.2)
    assert f"stopping {training_id}" in cli("trainings", "stop", training_id).stdout
    while (shown := cli.json("trainings", "show", training_id))["job_status"] != "Stopped":
        assert time.monotonic() < deadline + 30, shown
        time.sleep(0.2)
    assert shown["progress"]["step"] < 500 and shown["params"]["resp"]["error_msg"] == "stopped on request"
    again = cli("trainings", "stop", training_id, ok=False)
    assert again.exit_code == 1 and "is already Stopped" in again.stderr
    cli("trainings", "rm", training_id)
    cli("datasets", "rm", "cats")
    cli("checkpoints", "rm", training_id, base_id)
